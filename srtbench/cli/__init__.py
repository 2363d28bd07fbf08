"""`srtbench` command line: thin click commands that parse, build a config, call the library, print.

Every SrtbenchError becomes one `error: ...` line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import click

from srtbench import __version__
from srtbench.errors import SrtbenchError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SrtbenchError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="srtbench")
def main():
    """Train SRT and its rivals, attack every checkpoint with one battery, get the paper's tables."""


from srtbench.cli import data as _data  # noqa: E402,F401  (registers `data`)
from srtbench.cli import evaluate as _evaluate  # noqa: E402,F401  (registers `evaluate`, `attacks`)
from srtbench.cli import plot as _plot  # noqa: E402,F401  (registers `plot`)
from srtbench.cli import reproduce as _reproduce  # noqa: E402,F401  (registers `reproduce`)
from srtbench.cli import table as _table  # noqa: E402,F401  (registers `table`)
from srtbench.cli import train as _train  # noqa: E402,F401  (registers `train`, `presets`)
from srtbench.cli import zoo as _zoo  # noqa: E402,F401  (registers `models`, `threats`)
