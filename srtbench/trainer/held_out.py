"""The held-out check: the trainer's quick robustness check of a model after an epoch (clean and robust accuracy
on the first test images, under the attack the neighborhood names for itself)."""

from __future__ import annotations

import torch
from torch import nn

from srtbench.maximizers import build as build_maximizer
from srtbench.maximizers import cross_entropy, eval_mode, misclassified, predict
from srtbench.neighborhoods import Neighborhood


def held_out_check(model: nn.Module, images, neighborhood: Neighborhood, steps: int, seed: int,
                   device: torch.device, chunk: int = 250) -> tuple[float, float]:
    """The trainer's quick robustness check: (clean accuracy, robust accuracy) in percent on `images` (an
    ImageSet) under the attack the neighborhood names for itself (`attack_solver`: PGD from a uniform start with
    2.5·ε/K steps pixel-wise, GridAdv spatially, in sequence for a compound), examples stopping once
    misclassified.  Its own generator, so it never disturbs the training randomness."""
    if len(images) == 0:
        return float("nan"), float("nan")
    attack, gen = build_maximizer(neighborhood.attack_solver(steps)), torch.Generator().manual_seed(seed)
    clean = robust = 0
    with eval_mode(model):
        for lo in range(0, len(images), chunk):
            x, y = images.batch(torch.arange(lo, min(lo + chunk, len(images))))
            x, y = x.to(device), y.to(device)
            pred = predict(model, x)
            theta = attack(model, neighborhood, x, y, cross_entropy, done=misclassified, gen=gen)
            adv = predict(model, neighborhood.apply(x, theta).detach())
            clean, robust = clean + (pred == y).sum().item(), robust + (adv == y).sum().item()
    return 100.0 * clean / len(images), 100.0 * robust / len(images)
