"""What guards a run from outside its loop: the stop flag (signals), batch-size fitting, the memory check and
the pace check of a long CPU-only run."""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from srtbench.distributed import Dist, all_sum
from srtbench.errors import SrtbenchError
from srtbench.maximizers import eval_mode
from srtbench.presets import PRESETS
from srtbench.runtime import available_memory, notice
from srtbench.trainer.config import TrainConfig
from srtbench.trainer.run import Run


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to save and exit at the next step boundary; a second SIGINT aborts."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def request(self) -> None:
        """Ask for the same clean exit as a signal (the `stop` that `train(on_step=...)` hands out)."""
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _fit_batch_size(cfg: TrainConfig, n_images: int, world: int, main: bool) -> TrainConfig:
    """A batch larger than the data is the whole data each step: clamp it (a 100,000-image batch of 64
    images was built, and killed by the kernel, before)."""
    fit = max(world, n_images // world * world)
    if cfg.batch_size <= fit:
        return cfg
    if main:
        notice(f"--batch-size {cfg.batch_size} exceeds the {n_images:,} training images: training with batches "
               f"of {fit} (all of them each step)")
    return replace(cfg, batch_size=fit)


def activation_bytes(model: nn.Module, shape: tuple[int, ...]) -> int:
    """fp32 bytes of one example's input and every layer's output: what one forward keeps for its backward."""
    total = 4 * math.prod(shape)

    def count(module, inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += 4 * output.numel()

    leaves = [m for m in model.modules() if not any(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    device = next(model.parameters()).device
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), eval_mode(model):
            model(torch.zeros(1, *shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def _check_memory(model: nn.Module, shape: tuple[int, ...], per_rank_batch: int, device: torch.device,
                  d: Dist) -> None:
    """Refuse, before any work, a step that cannot fit: about two forwards' activations (natural and robust)
    of the batch, plus weights, gradients and momentum; on every rank when one lacks the memory."""
    free, short = available_memory(device), None
    if free is not None:
        per_example = activation_bytes(model, shape)
        need = 2 * per_rank_batch * per_example + 3 * 4 * sum(p.numel() for p in model.parameters())
        if need > free:
            short = (f"a training step needs about {_bytes(need)} ({per_rank_batch} images × "
                     f"{_bytes(2 * per_example)} of activations) but {_bytes(free)} is free on {device}: "
                     "lower --batch-size")
    if all_sum(torch.tensor([float(short is not None)]), d).item() > 0:
        raise SrtbenchError(short or "another process lacks the memory for a training step: lower --batch-size")


def _bytes(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


# a run on a machine without a GPU expected to take longer than this names the short CPU preset, once
LONG_CPU_RUN_S = 3600.0


class _PaceCheck:
    """After a few steps (the first one warms up), time the run; a long CPU-only run says so once."""

    def __init__(self, run: Run, total: int, enabled: bool):
        self.run, self.total, self.enabled = run, total, enabled
        self.start: tuple[float, int] | None = None

    def step(self, step: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.start is None:
            self.start = now, step
            return
        if step - self.start[1] < 3:
            return
        self.enabled = False
        left = (now - self.start[0]) / (step - self.start[1]) * (self.total - step)
        if left > LONG_CPU_RUN_S:
            threat = self.run.threat.threat
            preset = f"fmnist-{threat}-cpu" if f"fmnist-{threat}-cpu" in PRESETS else "fmnist-pixel-cpu"
            notice(f"no GPU here: at this pace the run's {self.total:,} steps take about {_duration(left)} on the "
                   f"CPU; `--preset {preset}` is the short CPU run (see `srtbench presets`)")


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
