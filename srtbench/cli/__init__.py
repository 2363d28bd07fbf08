"""`srtbench` command line: thin click commands that parse, build a config, call the library, print.

Every SrtbenchError becomes one `error: ...` line on stderr and exit code 2; any other exception (a bug, or
a failure nobody foresaw) becomes one line naming the file that holds its traceback, and exit code 1.
`SRTBENCH_DEBUG=1` prints the traceback instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback

import click

from srtbench import __version__
from srtbench.errors import SrtbenchError, describe


def echo(message: object = "", err: bool = False, nl: bool = True) -> None:
    """click.echo of text that may hold paths and labels from files: terminal escape sequences and control
    characters removed, invisible and direction characters written out (`results.shown`), line by line."""
    from srtbench.results import shown

    click.echo(shown(str(message)), err=err, nl=nl)


def _debug() -> bool:
    return os.environ.get("SRTBENCH_DEBUG", "").strip() not in ("", "0")


def _save_traceback() -> str:
    """The current exception's traceback in a fresh file under the temp folder: its path, or why not."""
    try:
        fd, path = tempfile.mkstemp(prefix="srtbench-traceback-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            fh.write(traceback.format_exc())
        return f"full traceback in {path}"
    except OSError as err:
        return f"the traceback could not be saved ({err.strerror or err})"


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SrtbenchError as err:
            if _debug():
                traceback.print_exc()
            echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # usage errors, --help, --version: click prints them its own way
        except Exception as err:  # noqa: BLE001 - the last net: no user sees a traceback unasked
            if _debug():
                traceback.print_exc()
                sys.exit(1)
            echo(f"error: unexpected {describe(err)} ({_save_traceback()}; "
                       "SRTBENCH_DEBUG=1 prints it)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="srtbench")
def main():
    """Train SRT and its rivals, attack every checkpoint with one battery, get the paper's tables."""


from srtbench.cli import data as _data  # noqa: E402,F401  (registers `data`)
from srtbench.cli import evaluate as _evaluate  # noqa: E402,F401  (registers `evaluate`, `attacks`)
from srtbench.cli import plot as _plot  # noqa: E402,F401  (registers `plot`)
from srtbench.cli import reproduce as _reproduce  # noqa: E402,F401  (registers `reproduce`)
from srtbench.cli import sweep as _sweep  # noqa: E402,F401  (registers `sweep`)
from srtbench.cli import table as _table  # noqa: E402,F401  (registers `table`)
from srtbench.cli import train as _train  # noqa: E402,F401  (registers `train`, `presets`)
from srtbench.cli import zoo as _zoo  # noqa: E402,F401  (registers `models`, `threats`)
