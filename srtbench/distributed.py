"""Runs under `torchrun`: joining the process group, this process's rank, and the few collectives training and
evaluation need.  One process (no torchrun) is world size 1, and every helper here is then a no-op."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from srtbench.runtime import resolve_device


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: its rank among `world` processes and its GPU on the node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) → a process group, NCCL with one
    GPU per process on CUDA, gloo on CPU; and the device this process computes on."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device_name)
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=d.rank, world_size=world)
    return d, device


def current() -> Dist:
    """The process group this process joined (`init_distributed`), else one process."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Dist()


def all_sum(values: torch.Tensor, d: Dist) -> torch.Tensor:
    """The sum over ranks (NCCL reduces only CUDA tensors: a CPU tensor travels through the current GPU)."""
    if d.world > 1:
        on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else values.device
        moved = values.to(on)
        dist.all_reduce(moved)
        values = moved.to(values.device)
    return values


def gather(obj: Any, d: Dist) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if d.world == 1:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()
