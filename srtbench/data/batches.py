"""Training batches: the proportional sampler over D_L and D_U (Section 4) and Appendix B's augmentation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from srtbench.data.sets import ImageSet, UnlabeledSet
from srtbench.errors import SrtbenchError


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Appendix B: zero-pad by `pad`, random crop back to size, horizontal flip with p = 0.5 (batched)."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None].expand(b, c, h, w + 2 * pad)
    out = padded.gather(2, rows.to(x.device))
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :].expand(b, c, h, w)
    out = out.gather(3, cols.to(x.device))
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@dataclass
class Batch:
    x_labeled: torch.Tensor
    y_labeled: torch.Tensor
    x_unlabeled: torch.Tensor | None

    def to(self, device: torch.device) -> Batch:
        xu = None if self.x_unlabeled is None else self.x_unlabeled.to(device, non_blocking=True)
        return Batch(self.x_labeled.to(device, non_blocking=True), self.y_labeled.to(device, non_blocking=True), xu)


def labeled_share(batch_size: int, n_labeled: int, n_unlabeled: int, world: int = 1) -> int:
    """The labeled images in a batch of m drawn from D_L and D_U in proportion, m·|D_L|/(|D_L|+|D_U|) (Section 4),
    rounded to a multiple of the rank count so every rank gets equal shares (21 of 128 at 10,000 + 50,000)."""
    return max(world, world * round(batch_size * n_labeled / (n_labeled + n_unlabeled) / world))


class ProportionalBatches:
    """Batches of m examples, m·|D_L|/(|D_L|+|D_U|) labeled and the rest unlabeled (Section 4).

    Deterministic in (seed, epoch): `epoch(e, start=k)` replays epoch e from batch k, which is what
    exact resume needs.  With `world > 1` each rank gets a disjoint 1/world share of every global batch
    (of both streams), so DDP's averaged gradient is the gradient of the global batch.
    """

    def __init__(
        self,
        labeled: ImageSet,
        unlabeled: UnlabeledSet | None,
        batch_size: int,
        seed: int = 0,
        augment_images: bool = False,
        rank: int = 0,
        world: int = 1,
        labeled_per_batch: int | None = None,
        unlabeled_per_batch: int | None = None,
    ):
        self.labeled, self.unlabeled = labeled, unlabeled if unlabeled is not None and len(unlabeled) else None
        self.seed, self.augment, self.rank, self.world = seed, augment_images, rank, world
        n_l, n_u = len(labeled), len(self.unlabeled) if self.unlabeled is not None else 0
        if batch_size % world:
            raise SrtbenchError(f"batch size {batch_size} must divide by the {world} ranks")
        if labeled_per_batch is None:
            labeled_per_batch = labeled_share(batch_size, n_l, n_u, world)
        if unlabeled_per_batch is None:
            unlabeled_per_batch = batch_size - labeled_per_batch if n_u else 0
        self.b_l, self.b_u = labeled_per_batch, unlabeled_per_batch if n_u else 0
        if self.b_l % world or self.b_u % world:
            raise SrtbenchError(
                f"per-batch counts ({self.b_l} labeled, {self.b_u} unlabeled) must divide by the {world} ranks"
            )
        if n_u and self.b_u:
            self.batches = max(1, (n_l + n_u) // (self.b_l + self.b_u))
        else:
            self.batches = max(1, n_l // self.b_l)

    def __len__(self) -> int:
        return self.batches

    def _stream(self, n: int, per_batch: int, gen: torch.Generator) -> torch.Tensor:
        """Indices for every batch of an epoch: fresh permutations, concatenated when one runs out."""
        need = self.batches * per_batch
        perms = [torch.randperm(n, generator=gen) for _ in range(max(1, math.ceil(need / n)))]
        return torch.cat(perms)[:need].view(self.batches, per_batch)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        lab = self._stream(len(self.labeled), self.b_l, gen)
        unl = self._stream(len(self.unlabeled), self.b_u, gen) if self.b_u else None
        for i in range(start, self.batches):
            il = lab[i][self.rank :: self.world]
            x, y = self.labeled.batch(il)
            xu = self.unlabeled.batch(unl[i][self.rank :: self.world]) if unl is not None else None
            if self.augment:
                aug = torch.Generator().manual_seed(self.seed * 7_919 + epoch * 100_003 + i)
                x = augment(x, aug)
                xu = augment(xu, aug) if xu is not None else None
            yield Batch(x, y, xu)


def class_counts(labels: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(labels, minlength=num_classes).tolist()
