"""The one exception type a user may see (it carries a one-line message and the CLI turns it into exit 2), and how
an unexpected one is reported: one line naming the file that holds its traceback (`SRTBENCH_DEBUG=1` prints it).
Shared by the command line and the workers that run recipe steps, so it lives below both."""

import os
import tempfile
import traceback


class SrtbenchError(Exception):
    """Bad input or a broken file: printed as one line by the CLI, never as a traceback."""

    exit_code = 2


def debug() -> bool:
    """SRTBENCH_DEBUG set (not 0): print tracebacks instead of saving them."""
    return os.environ.get("SRTBENCH_DEBUG", "").strip() not in ("", "0")


def save_traceback() -> str:
    """The current exception's traceback in a fresh file under the temp folder: its path, or why not."""
    try:
        fd, path = tempfile.mkstemp(prefix="srtbench-traceback-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            fh.write(traceback.format_exc())
        return f"full traceback in {path}"
    except OSError as err:
        return f"the traceback could not be saved ({err.strerror or err})"


def describe(err: BaseException, limit: int = 200) -> str:
    """`TypeName: first line of the message`, cut to `limit` characters: a foreign exception inside one line."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
