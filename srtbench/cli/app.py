"""The `srtbench` command group and what every command shares: one way to print text from files, one way to fail.

Every SrtbenchError becomes one `error: ...` line on stderr and exit code 2; any other exception (a bug, or
a failure nobody foresaw) becomes one line naming the file that holds its traceback, and exit code 1.
`SRTBENCH_DEBUG=1` prints the traceback instead.
"""

from __future__ import annotations

import sys
import traceback

import click

from srtbench import __version__
from srtbench.errors import SrtbenchError, debug, describe, save_traceback


def echo(message: object = "", err: bool = False, nl: bool = True) -> None:
    """click.echo of text that may hold paths and labels from files: terminal escape sequences and control
    characters removed, invisible and direction characters written out (`results.shown`), line by line."""
    from srtbench.results import shown

    click.echo(shown(str(message)), err=err, nl=nl)


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SrtbenchError as err:
            if debug():
                traceback.print_exc()
            echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # the reader stopped (`srtbench reproduce --dry-run | head`): nothing to report
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error as Python flushes
            sys.exit(141)  # as a shell reports a command killed by SIGPIPE
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # usage errors, --help, --version: click prints them its own way
        except Exception as err:  # noqa: BLE001 - the last net: no user sees a traceback unasked
            if debug():
                traceback.print_exc()
                sys.exit(1)
            echo(f"error: unexpected {describe(err)} ({save_traceback()}; "
                       "SRTBENCH_DEBUG=1 prints it)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="srtbench")
def main():
    """Train SRT and its rivals, attack every checkpoint with one battery, get the paper's tables."""
