"""README.md as written: every source, benchmark, example, test and model path it names is in the repository (its
commands run in tests/test_hostile_results.py and tests/test_newcomer.py)."""

from __future__ import annotations

import fnmatch
import re

import pytest

from tests import shipped

# paths that name what ships (outputs such as results/srt.csv or runs/... are written by the commands themselves)
SHIPPED = re.compile(r"(?<![\w/.-])((?:srtbench|benchmarks|examples|tests|models)/[\w./*{},+-]*[\w*}])")


def named_paths(text: str) -> list[str]:
    return list(dict.fromkeys(m.group(1) for m in SHIPPED.finditer(text)))


def expand(path: str) -> list[str]:
    braces = re.search(r"\{([^{}]*)\}", path)
    if not braces:
        return [path]
    return [p for alt in braces.group(1).split(",") for p in expand(path[:braces.start()] + alt + path[braces.end():])]


def test_the_readme_names_paths():
    paths = named_paths(shipped.REPO.joinpath("README.md").read_text())
    assert "srtbench/neighborhoods" in paths and "benchmarks/attacks.py" in paths


@pytest.mark.parametrize("path", named_paths(shipped.REPO.joinpath("README.md").read_text()))
def test_every_path_the_readme_names_exists(path):
    """...as a file git tracks, or a folder holding one (not a file that happens to lie in this working tree)."""
    tracked = shipped.tracked()
    for candidate in expand(path):
        assert any(fnmatch.fnmatch(f, candidate) or f.startswith(candidate.rstrip("/") + "/") for f in tracked), \
            f"README.md names {candidate}, which the repository does not hold"
