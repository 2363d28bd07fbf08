"""The repository as shipped: a copy of the files git tracks, so that tests of the committed results, models and
README commands read what a fresh clone holds, never what `make demo`, `make reproduction` or any README command
wrote since into results/, runs/, figures/ or models/."""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("results", "models", "examples")  # what the tests of shipped data read
FILES = ("README.md", "REPRODUCTION.md", "pyproject.toml")


class NotACheckout(RuntimeError):
    """The tests run outside a git checkout: what was shipped cannot be told from what was written since."""


def tracked(*paths: str) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", *paths], cwd=REPO, capture_output=True, check=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise NotACheckout(f"{REPO} is not a git checkout ({err})") from err
    return [p for p in out.decode().split("\0") if p]


@functools.cache
def tree() -> Path:
    """A temporary folder holding every tracked file under FOLDERS, and FILES, at their paths in the repository
    (made once per test process, removed at its exit)."""
    root = Path(tempfile.mkdtemp(prefix="srtbench-shipped-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    for rel in tracked(*FOLDERS, *FILES):
        src, dst = REPO / rel, root / rel
        if src.is_file():  # a tracked file deleted in the working tree is simply absent
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return root


def tree_or_none() -> Path | None:
    """`tree()`, or None outside a git checkout (for collection-time parametrization, which must not fail)."""
    try:
        return tree()
    except NotACheckout:
        return None
