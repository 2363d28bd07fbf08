"""The compute behind a row: the model's forward and backward passes, counted where the model is called (one image
through the model is one pass), and the attack's peak memory."""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Iterator

import torch
from torch import nn


class CountingModel(nn.Module):
    """`model`, counting the images it is called on (forward passes) and the images a gradient flows back through
    (backward passes), whoever calls it: a native attack, foolbox, torchattacks or AutoAttack."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.forward_images = 0
        self.backward_images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        self.forward_images += len(x)
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(self._count_backward(len(x)))
        return out

    def _count_backward(self, images: int):
        def hook(grad: torch.Tensor) -> None:
            self.backward_images += images

        return hook


def _rss_mb() -> float:
    """The process's peak resident set size so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Yields a dict whose `mb` is, once the block ends, its peak memory in MiB: on a GPU the most the block
    allocated on it; on the CPU the process's peak resident size so far, an upper bound for the block's (the OS
    keeps no per-block peak)."""
    box: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield box
    finally:
        box["mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _rss_mb(), 1)
