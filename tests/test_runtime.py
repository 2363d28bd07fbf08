"""Process-level chores: the thread count a process takes."""

from __future__ import annotations

import os

import pytest
import torch

from srtbench.errors import SrtbenchError
from srtbench.runtime import set_threads, usable_cores


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_srtbench_threads_sets_the_share_of_a_run_side_by_side(monkeypatch, restore_threads):
    monkeypatch.setenv("SRTBENCH_THREADS", "1")
    assert set_threads() == 1 and torch.get_num_threads() == 1


def test_default_is_the_usable_cores_divided_among_local_ranks(monkeypatch, restore_threads):
    monkeypatch.delenv("SRTBENCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert set_threads() == usable_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * usable_cores()))
    assert set_threads() == 1  # more ranks than cores: one thread each, never zero


def test_an_explicit_omp_num_threads_is_left_to_torch(monkeypatch, restore_threads):
    monkeypatch.delenv("SRTBENCH_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert set_threads() == 1


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_a_bad_srtbench_threads_is_a_one_line_error(monkeypatch, value):
    monkeypatch.setenv("SRTBENCH_THREADS", value)
    with pytest.raises(SrtbenchError, match="SRTBENCH_THREADS"):
        set_threads()


def test_cpu_runs_are_deterministic_without_loading_the_compiler():
    """set_deterministic turns on torch's deterministic algorithms (warnings, not errors, where none exists) in a fresh
    process, without the ~1 s import of torch._inductor that torch.use_deterministic_algorithms makes."""
    import subprocess
    import sys

    code = ("import sys, torch; from srtbench.runtime import set_deterministic; set_deterministic(torch.device('cpu'));"
            " print(torch.are_deterministic_algorithms_enabled(),"
            " torch.is_deterministic_algorithms_warn_only_enabled(), 'torch._inductor.config' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "False"]


def test_an_evaluated_model_runs_channels_last_on_the_cpu_with_the_same_logits(trained_cnn, test_batch):
    """`srtbench evaluate` puts a model's convolutions in channels_last on the CPU (faster there:
    benchmarks/layout.py); the logits stay those of the stored layout, and a CUDA model is left as it is."""
    import copy

    from srtbench.runtime import fast_layout

    x = test_batch[0]
    with torch.no_grad():
        before = trained_cnn(x)
        fast = fast_layout(copy.deepcopy(trained_cnn), torch.device("cpu"))
        after = fast(x)
    convs = [m.weight for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(w.is_contiguous() for w in convs)  # the layout did change
    assert (after - before).abs().max() <= 1e-4
    kept = copy.deepcopy(trained_cnn)
    assert fast_layout(kept, torch.device("cuda")) is kept
    assert all(m.weight.is_contiguous() for m in kept.modules() if isinstance(m, torch.nn.Conv2d))
