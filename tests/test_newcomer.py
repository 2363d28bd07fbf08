"""A newcomer's first hour, as README and the mission type it: `make demo`'s main job, then the table and the figure
over everything in results/, in a copy of the shipped tree; and `srtbench train srt --threat pixel` then
`srtbench evaluate CKPT --attacks all` from an empty folder.  Each command runs as its own process, as typed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from srtbench import recipes, results
from srtbench.attacks import battery
from tests import shipped

# the mission's two commands over everything in results/: run here after the demo (README's test of its commands
# leaves them to this module, so that each runs once)
TABLE = ("table", "results/", "--format", "markdown")
FIGURE = ("plot", "budget", "results/", "--out", "figures/budget")
COST = ("table", "results/fmnist/quick", "--show", "cost")  # README: the compute behind the demo's rows
COMMANDS = tuple(" ".join(("srtbench", *c)) for c in (TABLE, FIGURE, COST))


def srtbench(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """`srtbench ARGS...` in `cwd` (the console script's entry point, `srtbench.cli:main`, through -m)."""
    env = {**os.environ, "SRTBENCH_PROGRESS": "plain"}
    done = subprocess.run([sys.executable, "-m", "srtbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, f"srtbench {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A fresh clone's files: what git tracks, nothing that a run wrote since."""
    return Path(shutil.copytree(shipped.tree(), tmp_path / "clone"))


# the demo's one training step is the run that `make models` shipped as models/fmnist-standard.pt (models/README.md):
# placed where the demo looks, as after `make models`' reproduction, the demo attacks it and skips training (70 s on
# one test worker); training from an empty folder is the next test's
DEMO_RUN = "runs/fmnist-pixel-cpu/standard.pt"
SHIPPED_STANDARD = "models/fmnist-standard.pt"


@pytest.mark.slow
def test_the_demo_then_the_table_and_the_figure_of_every_result(clone):
    assert any(DEMO_RUN in step.command for step in recipes.plan("quick")), "the demo trains elsewhere now"
    (clone / DEMO_RUN).parent.mkdir(parents=True)
    shutil.copy(clone / SHIPPED_STANDARD, clone / DEMO_RUN)
    demo = srtbench("reproduce", "quick", cwd=clone)  # what `make demo` runs
    assert "done already: srtbench train standard" in demo.stdout
    assert "| Standard |" in demo.stdout and (clone / "results" / "fmnist" / "quick" / "quick.md").is_file()
    # the demo attacked the shipped AT and SRT models on fewer examples than the reproduction: both measurements
    # are in results/, and the table shows the larger one and says which it left out
    table = srtbench(*TABLE, cwd=clone)
    for shipped_model in recipes.QUICK_REFERENCE:
        stem = Path(shipped_model).stem
        assert f"not shown: results/fmnist/quick/models--{stem}.csv" in table.stdout
    # runs of one name in two presets are told apart by their preset
    assert "(fmnist-pixel-cpu/srt-lam0.2)" in table.stdout and "(fmnist-spatial-cpu/srt-lam0.2)" in table.stdout
    figure = srtbench(*FIGURE, cwd=clone)
    assert "wrote figures/budget.png" in figure.stdout
    assert (clone / "figures" / "budget.png").stat().st_size > 0
    # every demo row counted its attack's passes: PGD-40 makes at most 40 gradients per example, FGSM one
    cost = srtbench(*COST, cwd=clone)
    rows = [ln.split(" | ") for ln in cost.stdout.splitlines() if " | pgd | " in ln or " | fgsm | " in ln]
    assert len(rows) == 6 and all(0 < float(r[5]) <= 40 for r in rows if r[1] == "pgd")
    assert all(float(r[5]) == 1.0 for r in rows if r[1] == "fgsm")
    # the demo's PGD is models/reference.csv's measurement of the shipped models: they still score it
    reference = results.read(clone / "models" / "reference.csv").set_index("checkpoint")
    quick = clone / "results" / "fmnist" / "quick"
    files = {SHIPPED_STANDARD: quick / "fmnist-pixel-cpu--standard.csv"}
    files.update({m: quick / f"models--{Path(m).stem}.csv" for m in recipes.QUICK_REFERENCE})
    for shipped_model, csv in files.items():
        row = results.read(csv)
        pgd = row[row["attack"] == "pgd"].iloc[0]
        assert pgd["attack_params"] == reference.loc[shipped_model, "attack_params"] and pgd["n"] == 500
        for column in ("clean_acc", "robust_acc"):
            assert abs(pgd[column] - reference.loc[shipped_model, column]) <= 1.0, (shipped_model, column)


@pytest.mark.slow
def test_train_then_evaluate_with_every_attack_from_an_empty_folder(tmp_path, fmnist_train):
    empty = tmp_path / "empty"
    empty.mkdir()
    trained = srtbench("train", "srt", "--threat", "pixel", "--iterations", "4", "--batch-size", "32",
                       "--check-size", "32", cwd=empty)
    assert "saved runs/srt-pixel.pt" in trained.stdout and (empty / "runs" / "srt-pixel.pt").is_file()
    evaluated = srtbench("evaluate", "runs/srt-pixel.pt", "--attacks", "all", "--n", "2", cwd=empty)
    assert "rows in results/eval.csv" in evaluated.stdout  # the default output path
    frame = results.read(empty / "results" / "eval.csv")
    assert set(frame["attack"]) == set(battery()) and (frame["n"] == 2).all()
