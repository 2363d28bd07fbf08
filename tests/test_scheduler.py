"""Recipe steps on Ray (`--jobs`; tests/test_sweep.py compares their numbers with one step after another): a
killed worker's step retried and resumed, a lost node's step retried on another node with the weights of an
undisturbed run, a failing step reported in one line while the others finish, and the shared-folder check.

One embedded Ray instance (2 CPUs, no dashboard) serves the module, but for the lost node: a three-node cluster on
this machine (`ray.cluster_utils.Cluster`) joined by address.  Every training is a few dozen SGD steps on 1,000
labeled Fashion-MNIST images, every evaluation FGSM and a 3-step PGD on 100 test images."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from srtbench import checkpoint, recipes, results
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


def long_training(iterations: int = 160) -> list[recipes.Step]:
    """A training that saves its resume state every 4 steps, then its evaluation (runs/tiny/long.*)."""
    train = recipes.train_step("standard", "runs/tiny/long.pt", "fmnist-pixel-cpu",
                               [("iterations", iterations), *TINY, ("batch_size", 32), ("save_every_steps", 4)])
    return [train, recipes.evaluate_step((train.output,), "results/tiny/long.csv", ATTACKS, n=100, sanity=False)]


def training_worker(train: recipes.Step, starts: int = 1, timeout: float = 120) -> int:
    """The pid of the worker on its `starts`th start of `train`, once the training has saved resume state (each
    start's first log line names its pid)."""
    log, resume = Path(train.log), checkpoint.resume_path(train.output)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [ln.split(" pid ")[1].split()[0] for ln in _lines(log) if ln.startswith("== ") and " pid " in ln]
        if resume.exists() and len(pids) >= starts:
            return int(pids[starts - 1])
        time.sleep(0.05)
    raise AssertionError(f"no start {starts} of the training with resume state saved in {timeout:g} s")


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_its_step_resumes(embedded_ray, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps = long_training()
    done = {}
    thread = threading.Thread(target=lambda: done.setdefault("report", scheduler.run(steps, 2, echo=lambda s: None)))
    thread.start()
    os.kill(training_worker(steps[0]), signal.SIGKILL)
    thread.join(300)
    report = done["report"]
    assert report.ok and report.ran == [0, 1]
    starts = [ln for ln in _lines(Path(steps[0].log)) if ln.startswith("== ")]
    assert len(starts) == 2 and starts[1].endswith("--resume")  # the retry continued from the saved state
    frame = results.read("results/tiny/long.csv")
    assert sorted(frame["attack"]) == ["fgsm", "pgd"]  # every row once


# the head declares a node lost after 3 health checks 0.2 s apart go unanswered (Ray's default: 5 checks, 3 s apart)
QUICK_HEALTH_CHECKS = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 200,
                       "health_check_timeout_ms": 200, "health_check_failure_threshold": 3}


@pytest.fixture
def three_nodes(fmnist_train):
    """A Ray cluster of three nodes on this machine, as `ray start` makes on three sharing a filesystem: a head
    without CPUs (steps run on the workers; the driver joins the head, so it outlives them) and two 1-CPU workers.
    A process joins one Ray at a time: the embedded one is shut down first (the next `embedded_ray` restarts it)."""
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster()
    try:
        cluster.add_node(num_cpus=0, include_dashboard=False, _system_config=QUICK_HEALTH_CHECKS)
        for _ in range(2):
            cluster.add_node(wait=False, num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def node_of(cluster, pid: int):
    """The node whose raylet started worker `pid` (a Ray worker is its raylet's child)."""
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    nodes = [n for n in cluster.worker_nodes if n.all_processes["raylet"][0].process.pid == parent]
    assert nodes, f"worker {pid} runs on none of the cluster's worker nodes"
    return nodes[0]


def lose_the_training_node(cluster, train: recipes.Step) -> tuple[str, str]:
    """Freeze the worker training `train` once it has saved resume state (so the loss lands mid-training however
    fast the machine), then kill every process of its node at once, as a crash or a power cut would; (the lost
    node's id, the id of the node the retry runs on)."""
    pid = training_worker(train)
    os.kill(pid, signal.SIGSTOP)
    lost = node_of(cluster, pid)
    cluster.remove_node(lost, allow_graceful=False)  # its raylet and object store, SIGKILLed
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # and its workers (Ray's own fate-sharing may have been first)
    return lost.node_id, node_of(cluster, training_worker(train, starts=2)).node_id


@pytest.mark.slow
def test_a_lost_nodes_step_is_retried_on_another_node_and_trains_the_undisturbed_weights(three_nodes, tmp_path,
                                                                                          monkeypatch):
    steps = long_training(iterations=24)
    monkeypatch.setenv("SRTBENCH_THREADS", "1")  # the threads of a step's 1-CPU share on the cluster
    for folder in ("undisturbed", "cluster"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "undisturbed")
    recipes.run(steps[:1], echo=lambda s: None)  # the training alone, in a fresh process, no Ray
    monkeypatch.chdir(tmp_path / "cluster")
    lines, pool = [], ThreadPoolExecutor(1)
    try:  # a run that hangs fails the test rather than stalling it (teardown stops the cluster it waits on)
        run = pool.submit(scheduler.run, steps, 2, address=three_nodes.address, echo=lines.append)  # as --address
        lost, retried_on = lose_the_training_node(three_nodes, steps[0])
        report = run.result(timeout=300)
    finally:
        pool.shutdown(wait=False)
    assert report.ok and report.ran == [0, 1] and not [ln for ln in lines if "failed" in ln]
    assert retried_on != lost and lost not in {n.node_id for n in three_nodes.worker_nodes}
    starts = [ln for ln in _lines(Path(steps[0].log)) if ln.startswith("== ")]
    assert len(starts) == 2 and starts[1].endswith("--resume")  # the retry continued from the saved state
    resumed, whole = (checkpoint.load(tmp_path / f / steps[0].output).state_dict for f in ("cluster", "undisturbed"))
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert sorted(results.read(steps[1].output)["attack"]) == ["fgsm", "pgd"]  # evaluated on the node left


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


def test_a_finished_trainings_evaluations_start_before_the_next_training():
    """Table 4 at equal steps, its first training done: of the steps then ready, its evaluations come first."""
    steps = recipes.plan("table4", "cpu")
    first = next(i for i, s in enumerate(steps) if s.kind == "train")
    deps = recipes.dependencies(steps)
    todo = [i for i in range(len(steps)) if i != first]
    ready = [i for i in scheduler.submission_order(steps, todo) if deps[i] <= {first}]
    evaluations = [i for i in todo if steps[i].kind == "evaluate" and steps[first].output in steps[i].inputs]
    assert evaluations and ready[:len(evaluations)] == evaluations
    assert all(steps[i].kind == "train" for i in ready[len(evaluations):])
    assert [i for i in ready if steps[i].kind == "train"] == sorted(i for i in ready if steps[i].kind == "train")


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
