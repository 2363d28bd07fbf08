"""Per-channel contrast and brightness: T(x; c, b) = clip(c·x + b, 0, 1) per channel with |log c| ≤ contrast and
|b| ≤ brightness, the color shifting that the paper's conclusion names as future work (one channel on
Fashion-MNIST and MNIST, three on CIFAR-10).  θ is (B, 2, C): log c, then b, per channel."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from srtbench.config import field, require
from srtbench.neighborhoods.base import NEIGHBORHOODS, BoxNeighborhood


@dataclass
class ColorBudget:
    brightness: float = field(0.2, "color budget: largest per-channel brightness shift |b| in [0,1] pixel units")
    contrast: float = field(0.4, "color budget: largest per-channel |log c|, c the contrast factor")

    def __post_init__(self):
        require(0 <= self.brightness <= 1, f"--brightness must be in [0, 1], got {self.brightness}")
        require(0 <= self.contrast <= 5, f"--contrast must be in [0, 5] (|log c|), got {self.contrast}")


@NEIGHBORHOODS.register("color")
@dataclass(repr=False)
class ColorShift(BoxNeighborhood):
    """T(x; θ) = clip(exp(θ_c)·x + θ_b, 0, 1) per channel, |θ_c| ≤ contrast, |θ_b| ≤ brightness.

    Solved by PGD on θ in training and in the quick attack (steps are fractions of each budget, like Spatial's).
    On a decision surface: log contrast against brightness, the same on every channel.
    """

    brightness: float = 0.2
    contrast: float = 0.4
    Budget = ColorBudget
    srt_lambda = 0.2  # no paper value: spatial's, for a transform that keeps the image's content

    def __post_init__(self):
        require(self.brightness >= 0 and self.contrast >= 0, "color budgets must be >= 0")
        self.name = "color"

    @classmethod
    def from_budget(cls, budget: ColorBudget) -> ColorShift:
        return cls(budget.brightness, budget.contrast)

    @property
    def bounds(self) -> torch.Tensor:
        """(2, 1): the bound of log c, then of b; broadcasts over the channels of θ (B, 2, C)."""
        return torch.tensor([[self.contrast], [self.brightness]])

    def shape(self, x):
        return (len(x), 2, x.shape[1])

    def apply(self, x, theta):
        theta = theta.to(x.dtype)
        return (theta[:, 0].exp()[..., None, None] * x + theta[:, 1][..., None, None]).clamp(0, 1)

    def scaled(self, fraction):
        return replace(self, brightness=self.brightness * fraction, contrast=self.contrast * fraction)

    def budget(self):
        return {"brightness": float(self.brightness), "contrast": float(self.contrast)}



    def surface(self, model, x, y, steps, seed):
        """x with contrast exp(u) and brightness v on every channel: the clean example at the centre."""
        u = torch.linspace(-self.contrast, self.contrast, steps)
        v = torch.linspace(-self.brightness, self.brightness, steps)
        uu, vv = torch.meshgrid(u, v, indexing="ij")
        theta = torch.stack([uu.reshape(-1), vv.reshape(-1)], 1)[:, :, None].expand(-1, -1, x.shape[1])
        images = self.apply(x.expand(len(theta), *x.shape[1:]), theta)
        return (u, v), images, ("log contrast", "brightness")
