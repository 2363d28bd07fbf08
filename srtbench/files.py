"""What srtbench reads and writes: regular files only (never a device, a FIFO or a socket), and names taken from
data (sweep values, labels) kept to safe characters and inside the folder they belong to."""

from __future__ import annotations

import fcntl
import os
import re
import stat
from pathlib import Path
from typing import IO

from srtbench.errors import SrtbenchError

KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))
UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def _kind(mode: int) -> str:
    return next((name for test, name in KINDS if test(mode)), "not a regular file")


def regular_or_absent(path: str | os.PathLike, what: str = "--out") -> None:
    """`path` (links followed) is a regular file or nothing yet: srtbench never writes over anything else, so
    `--out /dev/null` cannot replace the system's /dev/null with a file."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet (a file in the way is the writer's to name)
        return
    except OSError as err:
        raise SrtbenchError(f"{what} {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(mode):
        raise SrtbenchError(f"{what} {path} is {_kind(mode)}, not a regular file")


def open_regular(path: str | os.PathLike, mode: str = "r", what: str = "", encoding: str = "utf-8") -> IO:
    """Open `path` for reading, refusing anything but a regular file without blocking on it (a FIFO named *.csv
    would hang a plain open(), a link to /dev/zero would never end)."""
    label = f"{what} {path}".strip()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise SrtbenchError(f"cannot read {label}: {err.strerror or err}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise SrtbenchError(f"cannot read {label}: it is {_kind(st.st_mode)}, not a regular file")
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return os.fdopen(fd, mode) if "b" in mode else os.fdopen(fd, mode, encoding=encoding, newline="")


def safe_name(text: str) -> str:
    """A value from a data file as part of a file name: letters, digits and `._+-` only (anything else, `/` and
    `..` included, becomes `_`), never empty, never starting with a dot."""
    name = UNSAFE.sub("_", str(text)).replace("..", "_")
    return ("_" + name[1:] if name.startswith(".") else name) or "_"


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name` with -2, -3, ... before its suffix where it is taken (two labels that differ only in
    characters `safe_name` replaces); added to `taken`."""
    stem, dot, suffix = name.rpartition(".") if "." in name else (name, "", "")
    out, i = name, 1
    while out in taken:
        i += 1
        out = f"{stem}-{i}{dot}{suffix}"
    taken.add(out)
    return out


def inside(folder: str | os.PathLike, path: str | os.PathLike, what: str) -> Path:
    """`path`, refused unless it resolves inside `folder` (links followed)."""
    root, resolved = Path(folder).resolve(), Path(path).resolve()
    if resolved != root and root not in resolved.parents:
        raise SrtbenchError(f"{what} {path} lies outside {folder}")
    return Path(path)
