from dataclasses import dataclass

import click
from click.testing import CliRunner

from srtbench.config import click_options, field, from_options


@dataclass
class Example:
    lam: float = field(1.0, "weight", flag="lambda")
    steps: int = field(10, "steps")
    fractions: tuple[float, ...] = field((0.5, 1.0), "fractions")
    fast: bool = field(False, "fast mode")


def parse(*args):
    seen = {}

    @click.command()
    @click_options(Example)
    def cmd(**options):
        seen["cfg"] = from_options(Example, options)

    result = CliRunner().invoke(cmd, list(args))
    assert result.exit_code == 0, result.output
    return seen["cfg"]


def test_defaults_come_from_the_dataclass():
    assert parse() == Example()


def test_renamed_flags_reach_their_field():
    cfg = parse("--lambda", "0.3", "--steps", "4", "--fractions", "0.2,1", "--fast")
    assert cfg == Example(lam=0.3, steps=4, fractions=(0.2, 1.0), fast=True)
