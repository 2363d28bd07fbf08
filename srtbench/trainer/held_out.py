"""The held-out check: the trainer's quick robustness check of a model after an epoch (clean and robust accuracy
on the first test images, under the attack the neighborhood names for itself)."""

from __future__ import annotations

import torch
from torch import nn

from srtbench.maximizers import build as build_maximizer
from srtbench.maximizers import cross_entropy, eval_mode, misclassified, predict
from srtbench.neighborhoods import Neighborhood
from srtbench.outcomes import accuracy


def held_out_outcomes(model: nn.Module, images, neighborhood: Neighborhood, steps: int, seed: int,
                      device: torch.device, chunk: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """The trainer's quick robustness check, per image of `images` (an ImageSet): whether the model classifies it
    correctly, and whether it still does under the attack the neighborhood names for itself (`attack_solver`: PGD
    from a uniform start with 2.5·ε/K steps pixel-wise, GridAdv spatially, in sequence for a compound), examples
    stopping once misclassified.  Its own generator, so it never disturbs the training randomness."""
    attack, gen = build_maximizer(neighborhood.attack_solver(steps)), torch.Generator().manual_seed(seed)
    clean, robust = [], []
    with eval_mode(model):
        for lo in range(0, len(images), chunk):
            x, y = images.batch(torch.arange(lo, min(lo + chunk, len(images))))
            x, y = x.to(device), y.to(device)
            pred = predict(model, x)
            theta = attack(model, neighborhood, x, y, cross_entropy, done=misclassified, gen=gen)
            adv = predict(model, neighborhood.apply(x, theta).detach())
            clean.append((pred == y).cpu())
            robust.append((adv == y).cpu())
    empty = torch.zeros(0, dtype=torch.bool)
    return torch.cat(clean) if clean else empty, torch.cat(robust) if robust else empty


def held_out_check(model: nn.Module, images, neighborhood: Neighborhood, steps: int, seed: int,
                   device: torch.device, chunk: int = 250) -> tuple[float, float]:
    """`held_out_outcomes` as (clean accuracy, robust accuracy) in percent; NaN for no images."""
    if len(images) == 0:
        return float("nan"), float("nan")
    clean, robust = held_out_outcomes(model, images, neighborhood, steps, seed, device, chunk)
    return accuracy(clean), accuracy(robust)
