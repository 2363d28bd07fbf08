"""Running one attack over all examples in batches (sharded over torchrun ranks), with per-example random draws."""

from __future__ import annotations

from srtbench import distributed
from srtbench.attacks import AttackOutput, BuiltAttack
from srtbench.neighborhoods import ExampleRNG


def example_rng(seed: int, start: int, count: int) -> ExampleRNG:
    """Random draws depend on (seed, each example's index) only: not on the batch size, the sharding or the
    order of attacks (library attacks that draw from one generator per batch are marked `batch_dependent`)."""
    return ExampleRNG(seed, range(start, start + count))


def run_attack(model, attack: BuiltAttack, x, target, batch_size, device, seed, progress=None,
               task=None) -> AttackOutput:
    """The attack over all examples, batch by batch; outputs gathered on the CPU.

    Under torchrun, rank r takes batches r, r + world, ...; every rank then holds all outputs.  Random
    draws depend only on the example, so the result equals a single process's at any batch size.
    """
    d = distributed.current()
    rank, size = d.rank, d.world
    parts: dict[int, AttackOutput] = {}
    done = 0
    for i, lo in enumerate(range(0, len(x), batch_size)):
        if i % size != rank:
            continue
        xb, tb = x[lo:lo + batch_size].to(device), target[lo:lo + batch_size].to(device)
        parts[lo] = attack(model, xb, tb, example_rng(seed, lo, len(xb))).to("cpu")
        done += len(xb) * size  # rank 0 reports for all ranks, which move in step
        if progress is not None:
            progress.update(task, completed=min(len(x), done))
    if size > 1:
        parts = {lo: part for g in distributed.gather(parts, d) for lo, part in g.items()}
    out = None
    for lo in sorted(parts):
        out = parts[lo] if out is None else out.cat(parts[lo])
    return out
