"""Recipe steps on an embedded Ray (`--jobs`): same numbers as one after another, a killed worker's step retried and
resumed, a failing step reported in one line while the others finish, and the shared-folder check.

One embedded Ray instance (2 CPUs, no dashboard) serves the module; every training is a few dozen SGD steps on 1,000
labeled Fashion-MNIST images, every evaluation FGSM and a 3-step PGD on 100 test images."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from srtbench import recipes, results
from srtbench.errors import SrtbenchError
from srtbench.sweep import Sweep, plan

ray = pytest.importorskip("ray")
scheduler = pytest.importorskip("srtbench.scheduler")
pytestmark = pytest.mark.xdist_group("ray")  # one embedded Ray at a time on this machine (`make test` runs xdist)

TINY = (("n_labeled", 1000), ("check_size", 0), ("amp", False))
ATTACKS = ("fgsm", "pgd[steps=3]")



def tiny_experiment(iterations: int = 8, seeds=(0, 1)) -> list[recipes.Step]:
    """Standard training per seed, each attacked, then one table: a sweep's plan (runs/sweeps/tiny/...)."""
    return plan(Sweep("tiny", ("standard",), seeds=tuple(seeds), preset="fmnist-pixel-cpu",
                      train=(("iterations", iterations), *TINY),
                      evaluate=(("attacks", ",".join(ATTACKS)), ("n", 100), ("sanity", False))))


def numbers(folder: Path) -> dict:
    frame = results.collect([folder / "results" / "sweeps" / "tiny"])
    return {(Path(str(c)).name, a): (float(cl), float(r))
            for c, a, cl, r in zip(frame["checkpoint"], frame["attack"], frame["clean_acc"], frame["robust_acc"])}


@pytest.mark.slow
def test_jobs_on_embedded_ray_give_the_sequential_runs_numbers(embedded_ray, tmp_path, monkeypatch):
    steps = tiny_experiment()
    for where, go in (("one-by-one", lambda: recipes.run(steps, echo=lambda s: None)),
                      ("ray", lambda: scheduler.run(steps, 2, echo=lambda s: None))):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        go()
    sequential, parallel = numbers(tmp_path / "one-by-one"), numbers(tmp_path / "ray")
    assert len(sequential) == 4 and parallel == sequential
    log = (tmp_path / "ray" / "runs" / "sweeps" / "tiny" / "standard-s1.log").read_text()
    assert "--seed 1" in log.splitlines()[0] and "standard pixel | 8/8 (100%) | done in" in log  # plain progress
    assert (tmp_path / "ray" / "results" / "sweeps" / "tiny" / "tiny.md").is_file()


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_its_step_resumes(embedded_ray, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = recipes.train_step("standard", "runs/tiny/long.pt", "fmnist-pixel-cpu",
                               [("iterations", 160), *TINY, ("batch_size", 32), ("save_every_steps", 4)])
    steps = [train, recipes.evaluate_step((train.output,), "results/tiny/long.csv", ATTACKS, n=100, sanity=False)]
    done = {}
    thread = threading.Thread(target=lambda: done.setdefault("report", scheduler.run(steps, 2, echo=lambda s: None)))
    thread.start()
    log, resume = Path(train.log), Path("runs/tiny/long.resume")
    deadline = time.monotonic() + 120
    while not (resume.exists() and log.exists() and " pid " in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert resume.exists(), "the training saved no resume state in time"
    pid = int(log.read_text().split(" pid ")[1].split()[0])
    os.kill(pid, signal.SIGKILL)
    thread.join(300)
    report = done["report"]
    assert report.ok and report.ran == [0, 1]
    starts = [ln for ln in log.read_text().splitlines() if ln.startswith("== ")]
    assert len(starts) == 2 and starts[1].endswith("--resume")  # the retry continued from the saved state
    frame = results.read("results/tiny/long.csv")
    assert sorted(frame["attack"]) == ["fgsm", "pgd"]  # every row once


@pytest.mark.slow
def test_a_failing_step_is_one_line_and_the_independent_steps_finish(embedded_ray, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("runs/tiny").mkdir(parents=True)
    Path("runs/tiny/broken.pt").write_bytes(b"not a checkpoint")
    broken = recipes.evaluate_step(("runs/tiny/broken.pt",), "results/tiny/broken.csv", ATTACKS, n=100)
    train, evaluate, table = tiny_experiment(seeds=(0,))
    table = recipes.Step(recipes.TableJob((broken.output, *table.job.csvs), "auto"))  # reads what failed
    steps = [broken, train, evaluate, table]
    lines = []
    report = scheduler.run(steps, 2, echo=lines.append)
    assert list(report.failed) == [0] and report.ran == [1, 2] and list(report.skipped) == [3]  # the table reads it
    failure = [ln for ln in lines if "failed" in ln]
    assert len(failure) == 1 and "\n" not in failure[0]
    assert failure[0].startswith(f"step 1/4 failed: {broken.command} (") and f"log: {broken.log}" in failure[0]
    assert results.read("results/sweeps/tiny/standard.csv")["attack"].tolist() == ["fgsm", "pgd"]
    with pytest.raises(SrtbenchError, match=r"^2 of 4 steps did not finish \(1 failed, 1 skipped"):
        scheduler.outcome(report, len(steps))


def test_a_folder_the_workers_do_not_share_is_refused(embedded_ray, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scheduler.check_shared(ray, ["results"])  # one machine: shared
    elsewhere = tmp_path / "node-local"
    elsewhere.mkdir()
    # a node whose `results` is a disk of its own: its worker's file lands where the driver cannot see it
    monkeypatch.setattr(scheduler, "_on_worker", lambda path: str(elsewhere / Path(path).name))
    with pytest.raises(SrtbenchError, match=r"results is not shared with Ray node .*: a file its worker wrote"):
        scheduler.check_shared(ray, ["results"])
    assert list(elsewhere.iterdir()), "the worker wrote its probe"


def test_step_resources_default_to_a_share_of_what_is_detected():
    assert scheduler.resources(2, None, None, {"CPU": 16, "GPU": 1}) == scheduler.Resources(8, 0.5)
    assert scheduler.resources(3, None, None, {"CPU": 2}) == scheduler.Resources(1, 0)
    assert scheduler.resources(4, 2, 0.25, {"CPU": 16, "GPU": 1}).threads == 2
    with pytest.raises(SrtbenchError, match="no Ray node has"):
        scheduler.resources(2, None, 1, {"CPU": 16})
    with pytest.raises(SrtbenchError, match="--gpus-per-step"):
        scheduler.resources(2, None, 1.5, {"CPU": 16, "GPU": 2})


def test_an_address_that_answers_nothing_is_an_error_even_beside_a_running_ray(embedded_ray):
    """A process that already runs Ray (this worker's embedded one) must not take `--address HOST:PORT` for it."""
    from srtbench import scheduler

    with pytest.raises(SrtbenchError, match="no Ray cluster answers at 127.0.0.1:1"):
        with scheduler.connected("127.0.0.1:1"):
            pass
