"""Per-example outcomes of an attack and what they add up to: accuracies, the empirical risks of Definition 2, and
the worst case over attacks taken per example (an example counts as robust only if every attack failed on it).
Evaluation computes them; tables read them back from the per-example side files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Examples:
    """Per-example outcomes of one (attack, fraction): the PER_EXAMPLE_KEYS of results."""

    index: torch.Tensor
    label: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    distance: torch.Tensor

    @property
    def clean_correct(self) -> torch.Tensor:
        return self.clean_pred == self.label

    @property
    def adv_correct(self) -> torch.Tensor:
        return self.clean_correct & (self.adv_pred == self.label)  # x itself lies in N(x)

    @property
    def broken(self) -> torch.Tensor:
        return self.adv_pred != self.clean_pred  # R_rob(x) = 1

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {"index": self.index, "label": self.label, "clean_pred": self.clean_pred, "adv_pred": self.adv_pred,
                "clean_correct": self.clean_correct, "adv_correct": self.adv_correct, "distance": self.distance}

    def select(self, rows: torch.Tensor) -> Examples:
        """The outcomes of the examples at `rows` (a mask or positions), in that order."""
        return Examples(self.index[rows], self.label[rows], self.clean_pred[rows], self.adv_pred[rows],
                        self.distance[rows])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Examples:
        return cls(d["index"], d["label"], d["clean_pred"], d["adv_pred"], d["distance"])


def risks(ex: Examples) -> dict[str, float]:
    """The empirical risks of Definition 2 (Eqs. (2)-(4)), in percent."""
    stand = (~ex.clean_correct).float()
    return {"R_stand": 100 * stand.mean().item(), "R_rob": 100 * ex.broken.float().mean().item(),
            "R_adv": 100 * (~ex.adv_correct).float().mean().item()}


def common_examples(examples: list[Examples]) -> list[Examples]:
    """Outcomes read back from files of different orders and lengths, paired for `worst_case`: each one's examples
    in index order, restricted to those every one holds (each example meets itself)."""
    keep = examples[0].index
    for ex in examples[1:]:
        keep = keep[torch.isin(keep, ex.index)]
    # each file's examples in index order, restricted to those every file holds
    aligned = [ex.select(ex.index.argsort()) for ex in examples]
    return [ex.select(torch.isin(ex.index, keep)) for ex in aligned]


def worst_case(examples: list[Examples]) -> Examples:
    """Per example, the first attack that breaks it (its prediction counts), else the clean prediction; the outcomes
    are paired by position (one evaluation's attacks, or files paired by `common_examples`)."""
    first = examples[0]
    adv = first.clean_pred.clone()
    open_ = torch.ones(len(adv), dtype=torch.bool)
    for ex in examples:
        hit = open_ & ex.broken
        adv[hit] = ex.adv_pred[hit]
        open_ &= ~hit
    return Examples(first.index, first.label, first.clean_pred, adv, torch.full((len(adv),), math.nan))


def accuracy(mask: torch.Tensor) -> float:
    """The share of True in a boolean vector, in percent, counted exactly; NaN for an empty one."""
    return 100.0 * int(mask.sum()) / mask.numel() if mask.numel() else math.nan


def pack(mask: torch.Tensor) -> str:
    """A boolean vector as one CSV cell, `N:HEX` (bit i of the hexadecimal number is element i): the held-out
    check's per-image outcomes in a metrics row."""
    bits = mask.reshape(-1).bool().tolist()
    return f"{len(bits)}:{sum(1 << i for i, bit in enumerate(bits) if bit):x}"


def unpack(text: str) -> torch.Tensor:
    """The boolean vector `pack` wrote; ValueError for anything else (a number of elements, a colon, hexadecimal
    digits that fit in them)."""
    size, colon, digits = str(text).strip().partition(":")
    if not colon or not size.isdigit() or not digits or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"not a packed outcome vector: {str(text)[:40]!r}")
    n, value = int(size), int(digits, 16)
    if value >> n:
        raise ValueError(f"a packed outcome vector of {n} elements with bits set past them")
    return torch.tensor([bool(value >> i & 1) for i in range(n)], dtype=torch.bool)
