"""The committed reproduction: results/fmnist/ renders with every layout that applies, and the reference
checkpoints in models/ still score what models/reference.csv recorded for them."""

import glob
import hashlib
import re
import shlex
from pathlib import Path

import pytest

from srtbench import evaluate, recipes, results, tables
from srtbench.evaluate import EvalConfig
from tests import shipped

# the tracked files, never the working tree: `make demo` or a rerun may have written beside them since
ROOT = shipped.tree_or_none() or Path("/nonexistent")
MODELS = ROOT / "models"
REFERENCE = MODELS / "reference.csv"
REFERENCE_ROWS = list(results.read(REFERENCE).itertuples()) if REFERENCE.exists() else []
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason="not a git checkout: the shipped files are unknown")


def _experiment_csvs(name: str) -> list[Path]:
    """The CSVs an experiment's table or figure reads (results/fmnist/, one per checkpoint), as its recipe says
    under equal epochs, the protocol every experiment has committed results for."""
    last = recipes.plan(name, "cpu", "epochs")[-1].argv
    return [ROOT / a for a in last if a.endswith(".csv")]


# every cpu-scale experiment whose results are committed (quick is the README's demo: its results are not)
DONE = [name for name in recipes.RECIPES.names()
        if name != "quick" and all(p.exists() for p in _experiment_csvs(name)) and _experiment_csvs(name)]


def test_the_reproduction_and_the_reference_models_are_committed():
    # every experiment of the issue whose output is a table or a budget/unlabeled figure (Figure 3's
    # surfaces are drawn from checkpoints, not CSVs)
    assert {"table3", "table4", "table5", "table6", "table8", "table9", "figure1", "figure2", "figure7"} <= set(DONE)
    shipped = {Path(r.checkpoint).name for r in REFERENCE_ROWS}
    assert {"fmnist-standard.pt", "fmnist-at.pt", "fmnist-srt-pixel.pt", "fmnist-srt-spatial.pt",
            "fmnist-srt-plus.pt"} <= shipped
    assert set(recipes.QUICK_REFERENCE) <= {r.checkpoint for r in REFERENCE_ROWS}  # the README's demo needs them


def _applies(layout: tables.Layout, frame) -> bool:
    full = frame[frame["fraction"].astype(float) == 1.0]
    return not layout.attacks or bool(set(layout.attacks) & set(full["attack"]))


def _attack_cells(table: tables.Table):
    for group in table.groups:
        for row in group.rows:
            for cell, column in zip(row.cells, table.columns):
                if column.kind == "attack" and isinstance(cell.value, float):
                    yield group.dataset, column.attack, column.fraction, cell.value


@pytest.mark.parametrize("name", DONE)
def test_committed_results_render_with_every_layout_that_applies(name):
    frame = results.collect(_experiment_csvs(name))
    frame["fraction"] = frame["fraction"].astype(float)
    recorded = {(d, a, f): set(g["robust_acc"].astype(float).round(6))
                for (d, a, f), g in frame.groupby(["dataset", "attack", "fraction"])}
    applied = []
    for layout_name in tables.LAYOUTS.names():
        layout = tables.LAYOUTS.get(layout_name)
        if not _applies(layout, frame):
            continue
        applied.append(layout_name)
        table = tables.build(frame, layout)
        cells = list(_attack_cells(table))
        assert cells or layout_name not in (name, "auto"), f"{name} as {layout_name}: no numbers shown"
        for dataset, attack, fraction, value in cells:  # every number shown is one the CSVs hold, at its budget
            assert round(value, 6) in recorded[(dataset, attack, fraction)], (name, layout_name, attack, value)
        text = {fmt: tables.FORMATS.get(fmt)(table) for fmt in ("markdown", "latex", "csv")}
        for *_, value in cells:
            assert all(tables.format_value(value, tables.Column("attack", "")) in t for t in text.values())
        if layout.paper:  # beside the paper's MNIST numbers, as in REPRODUCTION.md
            compared = tables.to_markdown(tables.build(frame, layout, tables.reference_results("paper")))
            assert "ours / paper" in compared
    assert "auto" in applied and (name not in tables.LAYOUTS.names() or name in applied)


def _attack_spec(command: str) -> str:
    argv = shlex.split(command)
    return argv[argv.index("--attacks") + 1]


# the demo (`srtbench reproduce quick`) makes the same measurement of the models it attacks: tests/test_newcomer.py
# checks those against models/reference.csv, so each is measured once per test run
NOT_IN_THE_DEMO = [r for r in REFERENCE_ROWS if r.checkpoint not in recipes.QUICK_REFERENCE]


@pytest.mark.parametrize("row", NOT_IN_THE_DEMO, ids=[Path(r.checkpoint).stem for r in NOT_IN_THE_DEMO])
def test_reference_model_still_scores_its_recorded_metrics(row, tmp_path):
    path = ROOT / row.checkpoint
    assert hashlib.sha256(path.read_bytes()).hexdigest() == row.checkpoint_sha256, f"{row.checkpoint} was replaced"
    out = tmp_path / "again.csv"
    evaluate.evaluate([str(path)], EvalConfig(attacks=_attack_spec(row.command), n=int(row.n), seed=int(row.seed),
                                              device="cpu", out=str(out), sanity=False))
    again = results.read(out).iloc[0]
    assert again["attack"] == row.attack
    assert abs(float(again["clean_acc"]) - float(row.clean_acc)) <= 1.0
    assert abs(float(again["robust_acc"]) - float(row.robust_acc)) <= 1.0


def test_models_readme_lists_the_recorded_metrics():
    readme = (MODELS / "README.md").read_text()
    for row in REFERENCE_ROWS:
        line = next((ln for ln in readme.splitlines() if f"`{row.checkpoint}`" in ln), None)
        assert line is not None, f"{row.checkpoint} missing from models/README.md"
        assert f"{float(row.clean_acc):.1f}" in line and f"{float(row.robust_acc):.1f}" in line


# a REPRODUCTION.md block written by a command: `<!-- NAME: srtbench table ... -->` TABLE `<!-- /NAME -->`
_RENDERED = re.compile(
    r"<!-- (?P<name>[\w-]+): (?P<command>srtbench table [^\n]*?) -->\n(?P<body>.*?)\n<!-- /(?P=name) -->", re.S)


def test_reproduction_tables_are_what_their_commands_print_from_the_committed_csvs(monkeypatch):
    """A table of REPRODUCTION.md that names its command is that command's output on the tracked CSVs, verbatim:
    no number typed by hand, none left behind when a CSV changes."""
    from click.testing import CliRunner

    from srtbench.cli import main

    blocks = list(_RENDERED.finditer((ROOT / "REPRODUCTION.md").read_text()))
    assert {"table4-steps", "table4-steps2400"} <= {b["name"] for b in blocks}
    monkeypatch.chdir(ROOT)
    for block in blocks:
        argv = [match for arg in shlex.split(block["command"])[1:]
                for match in (sorted(glob.glob(arg)) if "*" in arg else [arg])]
        out = CliRunner().invoke(main, argv)
        assert out.exit_code == 0, out.output
        assert block["body"].strip() == out.output.strip(), f"{block['name']}: re-render it with `{block['command']}`"
