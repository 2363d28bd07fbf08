"""`python -m srtbench.worker`: run one recipe step in this fresh process (the step pickled on stdin or in the file
named by the first argument).  `recipes.run` starts one per step, as when the step's command is typed by hand, so
threads, seeds and memory start clean; the Ray scheduler calls `run_step` in a worker that runs one step and exits.

Exit codes follow the command line's: 0 done, 2 a one-line error (`error: ...`), 1 an unexpected failure (one line
naming the file that holds its traceback; `SRTBENCH_DEBUG=1` prints it), 130 interrupted.
"""

from __future__ import annotations

import pickle
import sys
import traceback

from srtbench.errors import SrtbenchError, debug, describe, save_traceback
from srtbench.results import shown


def run_step(step) -> int:
    """Execute a `recipes.Step` here, with this process's share of the cores; its exit code."""
    from srtbench.runtime import set_threads

    sys.argv = list(step.argv)  # provenance (a checkpoint's `command`) records the equivalent command line
    try:
        set_threads()
        step.execute(lambda line: print(line, flush=True))
    except SrtbenchError as err:
        print(shown(f"error: {err}"), file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as err:  # noqa: BLE001 - the step's own failure: one line, the traceback kept (as the CLI does)
        if debug():
            traceback.print_exc()
        print(shown(f"error: unexpected {describe(err)} ({save_traceback()}; SRTBENCH_DEBUG=1 prints it)"),
              file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        with open(argv[0], "rb") as fh:
            payload = fh.read()
    else:
        payload = sys.stdin.buffer.read()
    return run_step(pickle.loads(payload))


if __name__ == "__main__":
    sys.exit(main())
