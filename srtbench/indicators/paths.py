"""Indicators read off the attack's path (after Pintor et al. 2022): the attack runs on one example at a time
against a model that records every point it is asked about, so each recorded pass belongs to that example.

- silent success: some point the attack visited inside the threat set was adversarial, but the point it returned
  is not (it lost what it found);
- flat loss: the attack failed and its loss never rose above its value at the first point it tried (its steps did
  not climb: masked, saturated or zero gradients)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from srtbench.attacks import BuiltAttack
from srtbench.neighborhoods import ExampleRNG
from srtbench.neighborhoods.pixel import norm

RISE = 1e-4  # the loss must rise by this much (relative to its first value, at least absolute 1e-6) to count


class Recording(nn.Module):
    """`model` that records, for one example x with clean prediction `clean`, the cross-entropy to C(x) of every
    point it is asked about and whether a point inside the threat set (pixel-wise: within ε of x, in [0, 1])
    was adversarial.  `budget` is (norm, ε), or None where inside-ness cannot be read off the image."""

    def __init__(self, model: nn.Module, x: torch.Tensor, clean: torch.Tensor, budget: tuple[str, float] | None):
        super().__init__()
        self.model, self.x, self.clean, self.budget = model, x, clean, budget
        self.losses: list[float] = []
        self.found = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        with torch.no_grad():
            logits = out.detach().float()
            self.losses.extend(F.cross_entropy(logits, self.clean.expand(len(x)), reduction="none").tolist())
            if self.budget is not None:
                p, eps = self.budget
                d = norm((x.detach() - self.x).to(self.x.dtype), p)
                inside = (d <= eps + 1e-5) & (x.detach().flatten(1).amin(1) >= 0) & (x.detach().flatten(1).amax(1) <= 1)
                self.found |= bool((inside & (logits.argmax(1) != self.clean)).any())
        return out


@dataclass
class Path:
    """Per example: `silent` (found, then lost) and `flat` (failed without its loss rising), with the losses."""

    silent: torch.Tensor
    flat: torch.Tensor
    rises: list[float] = field(default_factory=list)


def readable_budget(atk: BuiltAttack) -> tuple[str, float] | None:
    """(norm, ε) where a visited point's inside-ness is read off the image alone (pixel-wise ℓ∞, ℓ2)."""
    if atk.info.threat == "pixel" and atk.info.norm in ("linf", "l2") and "epsilon" in atk.budget:
        return atk.info.norm, float(atk.budget["epsilon"])
    return None


def path_indicators(model: nn.Module, atk: BuiltAttack, x: torch.Tensor, clean: torch.Tensor, index: torch.Tensor,
                    seed: int, broken: torch.Tensor) -> Path:
    """The attack run again on each example alone (`broken`: the outcome the evaluation counted), recording its
    path.  Silent success needs a budget readable off the image and one pass per decision (not under EOT)."""
    budget = readable_budget(atk) if atk.eot == 1 else None
    silent = torch.zeros(len(x), dtype=torch.bool)
    flat = torch.zeros(len(x), dtype=torch.bool)
    rises = []
    for i in range(len(x)):
        rec = Recording(model, x[i:i + 1], clean[i:i + 1], budget)
        atk(rec, x[i:i + 1], clean[i:i + 1], ExampleRNG(seed, [int(index[i])]))
        first = rec.losses[0] if rec.losses else 0.0
        rise = max(rec.losses, default=first) - first
        rises.append(rise)
        silent[i] = rec.found and not bool(broken[i])
        flat[i] = not bool(broken[i]) and rise <= max(RISE * abs(first), 1e-6)
    return Path(silent, flat, rises)
