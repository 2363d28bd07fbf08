"""The import graph of `srtbench`: no circle and no upward arrow, counting imports inside functions too (a shared
helper lives below everyone who uses it, as errors.py, runtime.py and files.py do)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "srtbench"


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The srtbench modules `name` imports (`from srtbench import x`: x where x is a module, else the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: that many packages up from this one
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *filter(None, [base])])
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in found if m in known and m != name}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    return next(filter(None, (visit(n) for n in sorted(graph) if n not in state)), None)


# the layers of srtbench's top-level modules and packages, lowest first: a module imports its own layer or lower ones.
# The data flows up through them (data -> model -> neighborhood -> defense -> trainer -> attack -> evaluation -> table
# -> recipe -> cli); the file formats (checkpoint, results) and plain records sit low, since both the stage that
# writes them and the stages that read them import them.
LAYERS = (
    ("srtbench", "errors", "registry", "files", "config", "runtime", "progress", "distributed", "usercode"),
    ("data", "models", "broken", "presets", "outcomes", "results", "measurements"),
    ("checkpoint", "exported", "sources"),
    ("neighborhoods",),
    ("maximizers",),
    ("attacks", "defenses", "checks"),
    ("indicators",),
    ("trainer",),
    ("evaluate",),
    ("audit",),
    ("tables", "cards"),
    ("plots", "surfaces", "convergence", "site"),
    ("modelcard",),
    ("recipes", "worker"),
    ("sweep", "scheduler"),
    ("cli", "__main__"),
)


def layer(module: str) -> int:
    """The layer of a module: that of its top-level module or package under srtbench."""
    top = module.split(".")[1] if "." in module else module
    found = [i for i, names in enumerate(LAYERS) if top in names]
    assert found, f"{top} has no layer in tests/test_imports.py's LAYERS: place it where the data flow puts it"
    return found[0]


def test_no_module_imports_a_layer_above_its_own():
    known = modules()
    upward = [f"{name} -> {m}" for name, path in known.items() for m in imports(name, path, known)
              if layer(m) > layer(name)]
    assert not upward, "upward imports: " + "; ".join(sorted(upward))


def test_the_import_graph_has_no_circle():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert sum(map(len, graph.values())) > 50  # the graph was read
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_the_circle_finder_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
