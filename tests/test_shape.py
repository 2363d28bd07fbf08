"""The package's rooms: one concept per file, which its first docstring line names, and no file, class or function
outgrowing the size at which it usually holds two (CONTRIBUTING.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "srtbench"
LIMITS = {"file": 400, "class": 120, "function": 60}  # lines


def sizes(path: Path) -> list[tuple[str, str, int]]:
    """(kind, name, lines) of the file and of every class and function in it."""
    text = path.read_text()
    out = [("file", path.name, len(text.splitlines()))]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            out.append(("class", node.name, node.end_lineno - node.lineno + 1))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append(("function", node.name, node.end_lineno - node.lineno + 1))
    return out


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_file_class_or_function_outgrows_its_limit(path):
    over = [f"{kind} {name}: {n} lines" for kind, name, n in sizes(path) if n > LIMITS[kind]]
    assert not over, over


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_file_says_in_its_first_line_what_it_holds(path):
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and len(doc.splitlines()[0]) >= 20, "a module docstring whose first line names what the file holds"


def test_the_size_check_finds_an_oversized_function(tmp_path):
    long = tmp_path / "long.py"
    long.write_text('"""A file."""\n\n\ndef f():\n' + "    x = 1\n" * 60)
    assert ("function", "f", 61) in sizes(long)
