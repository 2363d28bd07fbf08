"""Adversarial examples on the 8-bit grid: what a saved image (PNG, uint8) would hold.  An example that stops being
adversarial once rounded relies on precision no stored image has (an indicator after Pintor et al. 2022)."""

from __future__ import annotations

import torch

from srtbench.attacks import BuiltAttack

LEVELS = 255  # 8 bits per channel


def on_grid(atk: BuiltAttack, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """x_adv on the 8-bit grid, still inside the attack's threat set where the clean x lies on the grid: a pixel-wise
    ℓ∞ perturbation rounds to the nearest grid step within ±ε; an ℓ2 or ℓ0 one rounds toward x (its norm can only
    shrink); any other image (rotated, blurred) rounds to the nearest level."""
    if atk.info.threat != "pixel":
        return (x_adv * LEVELS).round() / LEVELS
    steps = (x_adv - x) * LEVELS
    if atk.info.norm == "linf":
        most = torch.floor(torch.tensor(float(atk.budget.get("epsilon", 1.0)) * LEVELS + 1e-6))
        steps = steps.round().clamp(-most, most)
    else:
        steps = steps.trunc()
    return (x + steps / LEVELS).clamp(0, 1)
