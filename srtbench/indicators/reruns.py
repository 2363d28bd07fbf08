"""Indicators that run an attack again, changed in one way, on a subset of examples: newly broken examples mean the
first run stopped short (after Pintor et al. 2022): doubling the steps (non-convergence), other random starts (bad
initialisation), and a transfer attack from a surrogate (a white-box attack weaker than a black-box one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from srtbench.attacks import BuiltAttack, build
from srtbench.attacks.eot import vote
from srtbench.data import DATASETS
from srtbench.maximizers import predict
from srtbench.neighborhoods import ExampleRNG

RESTARTS = 2  # other seeds of the restart indicator
RECORD_ONLY = ("library", "batch_size")  # what a row records about an attack that is not one of its settings


@dataclass
class Subset:
    """The examples an indicator reruns on: their images, clean predictions C(x), test-set indices (which seed each
    example's draws), and the outcome of the attack being checked (`broken`)."""

    model: nn.Module
    x: torch.Tensor
    clean: torch.Tensor
    index: torch.Tensor
    broken: torch.Tensor
    seed: int
    batch_size: int
    device: torch.device


def variant(atk: BuiltAttack, dataset: str, fraction: float, trained: dict | None, **change: Any) -> BuiltAttack:
    """`atk` with some settings changed (every other setting as it ran)."""
    settings = {k: v for k, v in atk.params.items() if k not in RECORD_ONLY}
    settings.update(change)
    spec = f"{atk.name}[{','.join(f'{k}={v}' for k, v in settings.items())}]"
    return build(spec, dataset, fraction, trained)


def broken_by(atk: BuiltAttack, s: Subset, seed: int) -> torch.Tensor:
    """Per example of the subset: the attack (run with `seed`) moves the prediction off C(x)."""
    outs = []
    for lo in range(0, len(s.x), s.batch_size):
        xb, cb = s.x[lo:lo + s.batch_size].to(s.device), s.clean[lo:lo + s.batch_size].to(s.device)
        out = atk.at_budget(atk(s.model, xb, cb, ExampleRNG(seed, s.index[lo:lo + s.batch_size].tolist())), xb)
        outs.append((out.x_adv.cpu(), out.inside.cpu()))
    x_adv, inside = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    if atk.eot > 1:
        pred = vote(s.model, x_adv, s.clean, atk.eot, s.batch_size, s.device)
    else:
        pred = predict(s.model, x_adv, s.batch_size, s.device)
    return inside & (pred != s.clean)


def non_convergence(atk: BuiltAttack, s: Subset, dataset: str, fraction: float, trained) -> torch.Tensor | None:
    """Examples that twice the steps break although the attack did not (None: the attack takes no `steps`)."""
    if "steps" not in atk.params:
        return None
    longer = variant(atk, dataset, fraction, trained, steps=2 * int(atk.params["steps"]))
    return broken_by(longer, s, s.seed) & ~s.broken


def restarts(atk: BuiltAttack, s: Subset) -> torch.Tensor | None:
    """Examples that another random start breaks although the attack did not (None: the attack draws nothing: no
    random start, no random candidates `k`, no library generator)."""
    if atk.params.get("start") not in ("uniform", "normal") and "k" not in atk.params and not atk.batch_dependent:
        return None
    found = torch.zeros(len(s.x), dtype=torch.bool)
    for r in range(1, RESTARTS + 1):
        found |= broken_by(atk, s, s.seed + r)
    return found & ~s.broken


def transfer_stronger(atk: BuiltAttack, s: Subset, dataset: str, fraction: float, trained) -> torch.Tensor | None:
    """Examples that a transfer attack from the dataset's shipped standard model breaks although this white-box
    attack did not (None: not an ℓ∞ white-box attack, or no surrogate to transfer from)."""
    if not (atk.info.white_box and atk.info.threat == "pixel" and atk.info.norm == "linf"):
        return None
    if not DATASETS.get(dataset).standard_model or "epsilon" not in atk.budget:
        return None
    eps = float(atk.budget["epsilon"]) / fraction if fraction else 0.0
    transfer = build(f"transfer[epsilon={eps}]", dataset, fraction, trained)
    return broken_by(transfer, s, s.seed) & ~s.broken
