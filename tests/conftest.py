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


def train_quick(model, images: data.ImageSet, steps: int, batch: int = 128, lr: float = 0.05, seed: int = 0):
    """Plain SGD on cross-entropy: a few hundred steps give ~80% test accuracy on Fashion-MNIST."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        x, y = images.batch(idx)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained_cnn(fmnist_train, pytestconfig):
    """SmallCNN after 300 standard-training steps on real Fashion-MNIST (~78% test accuracy).

    Training takes ~25 s on 2 cores, so the weights are cached in pytest's cache folder between runs.
    """
    torch.manual_seed(0)
    model = create_model("small-cnn", (1, 28, 28), 10)
    cached = Path(pytestconfig.cache.mkdir("srtbench")) / f"trained-cnn-{torch.__version__}.pt"
    if cached.exists():
        model.load_state_dict(torch.load(cached, weights_only=True))
        return model.eval()
    train_quick(model, fmnist_train, steps=300)
    partial = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")  # another worker may be reading the cache
    torch.save(model.state_dict(), partial)
    os.replace(partial, cached)
    return model.eval()


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
