"""Shared fixtures: real Fashion-MNIST (Debian's files) and a small model trained on it once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from srtbench import data
from srtbench.errors import SrtbenchError
from srtbench.models import create_model
from tests import fitting

# under pytest-xdist (`make test` runs one worker per core), each worker gets its share of the cores, and so do the
# srtbench processes its tests start: workers side by side must not oversubscribe the machine
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, os.cpu_count() or 1) // WORKERS)
if WORKERS > 1:
    os.environ.setdefault("SRTBENCH_THREADS", str(THREADS))
torch.set_num_threads(THREADS)

# the longest tests start first, longest first, so that no worker runs one of them alone at the end (measured
# 2026-12-05 with `pytest -n 2 --durations=30`: a 35 s test left last kept one core idle for 36 s)
FIRST = ("test_newcomer.py::test_the_demo_then",  # ~100 s
         "test_sweep.py::test_the_tiny_sweep_runs_on_ray",  # ~70 s, then the rest of the "ray" group (~55 s)
         "test_newcomer.py::test_train_then_evaluate",  # ~35 s
         "test_threats.py::test_srt_against_blur",  # ~34 s
         "test_audit.py::test_audit_names_the_cause",  # ~12 s
         "test_reproduction.py::test_reference_model_still_scores",  # 4-12 s each
         "test_trainer.py::test_pixel_at_beats_standard")  # ~10 s


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        return next((i for i, name in enumerate(FIRST) if name in item.nodeid), len(FIRST))

    items.sort(key=rank)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def fmnist_train() -> data.ImageSet:
    try:
        return data.load("fashion-mnist", train=True)
    except SrtbenchError as err:
        if os.environ.get("CI"):
            raise  # CI installs dataset-fashion-mnist, so it must never skip
        pytest.skip(f"real Fashion-MNIST absent ({err})")


@pytest.fixture(scope="session")
def fmnist_test() -> data.ImageSet:
    try:
        return data.load("fashion-mnist", train=False)
    except SrtbenchError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"real Fashion-MNIST absent ({err})")


@pytest.fixture(scope="session")
def trained_cnn():
    """The shipped standard SmallCNN (`models/fmnist-standard.pt`: the reproduction's standard run, 80% clean, 12% under
    PGD-40 at ε 0.1): the same weights on every machine, where training one here would give each machine its own."""
    from srtbench import checkpoint
    from tests import shipped

    return checkpoint.load(shipped.tree() / "models" / "fmnist-standard.pt").build_model().eval()


@pytest.fixture(autouse=True)
def _restore_trained_cnn(request):
    """The session's trained model is shared: whatever a test (or a library it calls) does to its weights,
    mode or requires_grad flags is undone afterwards, so tests stay independent of their order."""
    if "trained_cnn" not in request.fixturenames:
        yield
        return
    model = request.getfixturevalue("trained_cnn")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    yield
    model.load_state_dict(state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)


@pytest.fixture(scope="session")
def fmnist_sets(fmnist_train, fmnist_test):
    """2,000 labeled + 2,000 unlabeled training images and a 300-image check (tests/fitting.py)."""
    labeled, unlabeled = data.split(fmnist_train, fitting.N_LABELED, fitting.N_UNLABELED, seed=0)
    return labeled, unlabeled, fmnist_test.subset(torch.arange(fitting.N_CHECK))


@pytest.fixture(scope="session")
def standard_model(tmp_path_factory, fmnist_sets):
    """Standard training of fitting.MODEL on `fmnist_sets`, once per test process: the baseline every pixel-wise
    and spatial defense must beat."""
    from srtbench.neighborhoods import ThreatConfig

    return fitting.fit(tmp_path_factory.mktemp("standard"), fmnist_sets, "standard", ThreatConfig())


@pytest.fixture
def tiny_cnn():
    """A fixed, untrained SmallCNN: enough for properties that do not need accuracy."""
    torch.manual_seed(0)
    return create_model("small-cnn", (1, 28, 28), 10).eval()


@pytest.fixture(scope="session")
def test_batch(fmnist_test):
    return fmnist_test.batch(torch.arange(200))


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def _ray(fmnist_train):
    """Ray for the session's scheduling tests (skipped without it or without the data they train on)."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    yield ray
    ray.shutdown()


RAY_TESTS_LEFT = [0]  # this process's tests that use `embedded_ray`, not yet run (pytest_collection_finish)


def pytest_collection_finish(session):
    RAY_TESTS_LEFT[0] = sum("embedded_ray" in getattr(item, "fixturenames", ()) for item in session.items)


@pytest.fixture
def embedded_ray(_ray):
    """One embedded Ray (2 CPUs) for every test that schedules on it; those tests share the xdist group "ray", so
    they run on one worker, one after another, and start Ray once, or again after a test that left it to join a
    cluster of its own (tests/test_scheduler.py's lost node).  It stops after the last of them: idle, its daemons
    still take ~4% of a core from the tests that follow."""
    if not _ray.is_initialized():
        _ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield _ray
    RAY_TESTS_LEFT[0] -= 1
    if RAY_TESTS_LEFT[0] <= 0:
        _ray.shutdown()

