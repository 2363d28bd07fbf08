"""The compute behind every number (issue 22): each results row records the forward and backward passes its attack
made, counted where the model is called, its wall time and peak memory; `srtbench table --show cost` shows them per
example, so an attack can be checked against its pass floor."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from srtbench import results
from srtbench.attacks import build
from srtbench.cli import main
from srtbench.evaluate import run_attack
from srtbench.evaluate.cost import CountingModel, peak_memory
from tests import shipped

DATASET = "fashion-mnist"


class Unbreakable(nn.Module):
    """Predicts class 0 whatever the input, with a gradient that moves nothing: no attack breaks an example, so
    every iterative attack runs all its steps on every example."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([10.0] + [0.0] * 9))

    def forward(self, x):
        return self.bias + 1e-3 * x.flatten(1).mean(1, keepdim=True)


def test_counting_counts_images_forward_and_backward():
    counted = CountingModel(Unbreakable())
    x = torch.rand(5, 1, 28, 28, requires_grad=True)
    counted(x).sum().backward()
    with torch.no_grad():
        counted(x[:3])
    assert (counted.forward_images, counted.backward_images) == (8, 5)


@pytest.mark.parametrize("steps", [1, 7])
def test_pgd_that_breaks_nothing_makes_exactly_its_steps_of_backward_passes(steps):
    x = torch.rand(6, 1, 28, 28)
    counted = CountingModel(Unbreakable())
    target = torch.zeros(6, dtype=torch.long)
    out = run_attack(counted, build(f"pgd[steps={steps},start=none]", DATASET), x, target, 4, torch.device("cpu"), 0)
    assert (counted(out.x_adv).argmax(1) == 0).all()
    assert counted.backward_images == steps * len(x)  # the floor of PGD-K: K gradients per example
    assert counted.forward_images >= steps * len(x)


def test_peak_memory_is_measured_on_the_cpu():
    with peak_memory(torch.device("cpu")) as memory:
        torch.ones(1000, 1000).sum()
    assert memory["mb"] > 1


def test_rows_record_the_passes_and_the_cost_table_shows_them_per_example(tmp_path):
    ckpt = shipped.tree() / "models" / "fmnist-standard.pt"
    out = tmp_path / "r.csv"
    ran = CliRunner().invoke(main, ["evaluate", str(ckpt), "--attacks", "fgsm,pgd[steps=4]", "--n", "20",
                                    "--no-sanity", "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    rows = results.read(out).set_index("attack")
    assert rows.loc["fgsm", "backward_passes"] == 20  # one gradient per example
    assert 0 < rows.loc["pgd", "backward_passes"] <= 4 * 20  # early stop: at most K per example
    assert (rows["forward_passes"] >= rows["backward_passes"]).all() and (rows["peak_memory_mb"] > 0).all()
    shown = CliRunner().invoke(main, ["table", str(out), "--show", "cost", "--format", "csv"])
    assert shown.exit_code == 0, shown.output
    table = pd.read_csv(pd.io.common.StringIO(shown.output))
    pgd = table[table["attack"] == "pgd"].iloc[0]
    assert pgd["backward / example"] == pytest.approx(rows.loc["pgd", "backward_passes"] / 20, abs=0.05)


def test_a_row_written_before_passes_were_counted_shows_none():
    old = shipped.tree() / "models" / "reference.csv"
    shown = CliRunner().invoke(main, ["table", str(old), "--show", "cost"])
    assert shown.exit_code == 0, shown.output
    assert "–" in shown.output and "fmnist-at.pt" in shown.output
