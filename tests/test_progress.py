"""Progress away from a terminal: plain lines (one per finished task or epoch, with elapsed time and ETA)."""

from __future__ import annotations

import io
import subprocess
import sys

from srtbench import progress
from srtbench.progress import LINE, PlainProgress
from tests import shipped


def test_a_finished_task_is_one_line_with_its_time():
    out = io.StringIO()
    with PlainProgress(out, interval_s=3600) as bar:
        task = bar.add_task("pgd × 1", total=1000, info="")
        for done in (256, 512, 768, 1000, 1000):
            bar.update(task, completed=done)
    (line,) = out.getvalue().splitlines()
    assert line.startswith("pgd × 1 | 1000/1000 (100%) | done in ") and LINE.match(line)


def test_a_training_run_gets_a_line_per_epoch_with_elapsed_time_and_eta():
    out = io.StringIO()
    bar = PlainProgress(out, interval_s=3600)
    task = bar.add_task("srt pixel", total=30, completed=0, info="")
    for step in range(1, 31):
        bar.update(task, completed=step, info=f"epoch {(step - 1) // 10 + 1}/3 loss 0.5")
    lines = out.getvalue().splitlines()
    assert [ln.split(" | ")[1] for ln in lines] == ["11/30 (37%)", "21/30 (70%)", "30/30 (100%)"]
    assert "| elapsed " in lines[0] and "| ETA " in lines[0] and lines[0].endswith("epoch 2/3 loss 0.5")


def test_lines_between_milestones_are_rate_limited():
    out = io.StringIO()
    bar = PlainProgress(out, interval_s=0)
    task = bar.add_task("x", total=10)
    bar.update(task, completed=5)
    assert len(out.getvalue().splitlines()) == 1  # without a limit, each update
    quiet = io.StringIO()
    bar = PlainProgress(quiet, interval_s=3600)
    task = bar.add_task("x", total=10)
    for i in range(1, 10):
        bar.update(task, completed=i)
    assert quiet.getvalue() == ""


def test_the_bar_is_rich_on_a_terminal_and_plain_elsewhere(monkeypatch):
    monkeypatch.delenv("SRTBENCH_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "_is_terminal", lambda stream: True)
    assert not isinstance(progress.progress_bar(), PlainProgress)
    monkeypatch.setattr(progress, "_is_terminal", lambda stream: stream is sys.stderr)  # `> log`
    both = progress.progress_bar()
    assert isinstance(both, PlainProgress) and both.stream is sys.stdout and both.live is not None
    monkeypatch.setattr(progress, "_is_terminal", lambda stream: False)
    assert isinstance(progress.progress_bar(), PlainProgress)
    monkeypatch.setenv("SRTBENCH_PROGRESS", "off")
    assert not isinstance(progress.progress_bar(), PlainProgress)


def test_evaluate_into_a_pipe_prints_a_line_per_finished_attack(tmp_path, fmnist_test):
    done = subprocess.run(
        [sys.executable, "-m", "srtbench", "evaluate", str(shipped.tree() / "models" / "fmnist-at.pt"), "--attacks",
         "fgsm,pgd[steps=2]", "--n", "50", "--no-sanity", "--out", str(tmp_path / "at.csv")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if LINE.match(ln)]
    assert [ln.split(" | ")[0].rsplit(" · ", 1)[1] for ln in lines] == ["fgsm × 1", "pgd[steps=2] × 1"]
    assert all(" | 50/50 (100%) | done in " in ln for ln in lines)
    assert done.stdout.index(lines[-1]) < done.stdout.index("rows in")  # as they happen, before the report
