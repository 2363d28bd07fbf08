"""Hue and saturation: T(x; θ) rotates each image's chroma by θ_h radians and scales it by exp(θ_s) in the YIQ
colour space, |θ_h| ≤ hue, |θ_s| ≤ saturation (two of CARBEN's composite semantic perturbations, Hsiung et al. 2023:
hue in [-π, π], saturation in [0.7, 1.3]).  A grayscale image has no chroma, so on one channel T is the identity."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from srtbench.config import field, require
from srtbench.neighborhoods.base import NEIGHBORHOODS, BoxNeighborhood

# RGB -> YIQ (NTSC): Y is the luminance, (I, Q) the chroma plane that a hue rotation turns
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)


@dataclass
class HueSaturationBudget:
    hue: float = field(math.pi, "hue budget: largest rotation of the chroma, in radians (CARBEN: π)")
    saturation: float = field(0.3, "saturation budget: largest |log| of the chroma's scale (CARBEN's [0.7, 1.3])")

    def __post_init__(self):
        require(0 <= self.hue <= math.pi, f"--hue must be in [0, π] radians, got {self.hue}")
        require(0 <= self.saturation <= 2, f"--saturation must be in [0, 2] (|log scale|), got {self.saturation}")


def shift_hue_saturation(x: torch.Tensor, hue: torch.Tensor, log_saturation: torch.Tensor) -> torch.Tensor:
    """x (B, 3, H, W) in RGB with its chroma rotated by `hue` (B,) radians and scaled by exp(log_saturation) (B,),
    clipped to [0, 1]; differentiable in both."""
    to_yiq, to_rgb = RGB_TO_YIQ.to(x), YIQ_TO_RGB.to(x)
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    cos, sin, scale = hue.cos().to(x), hue.sin().to(x), log_saturation.exp().to(x)
    i, q = yiq[:, 1], yiq[:, 2]
    turned = torch.stack([yiq[:, 0], scale[:, None, None] * (cos[:, None, None] * i - sin[:, None, None] * q),
                          scale[:, None, None] * (sin[:, None, None] * i + cos[:, None, None] * q)], 1)
    return torch.einsum("ij,bjhw->bihw", to_rgb, turned).clamp(0, 1)


@NEIGHBORHOODS.register("hue-saturation")
@dataclass(repr=False)
class HueSaturation(BoxNeighborhood):
    """θ (B, 2) = (hue rotation, log saturation scale) in the box [-hue, hue] × [-saturation, saturation].

    Solved by PGD on θ in training and in the quick attack (steps are fractions of each budget, like Spatial's).
    On a decision surface: hue against log saturation."""

    hue: float = math.pi
    saturation: float = 0.3
    Budget = HueSaturationBudget
    srt_lambda = 0.2  # no paper value: spatial's, for a transform that keeps the image's content

    def __post_init__(self):
        require(self.hue >= 0 and self.saturation >= 0, "hue and saturation budgets must be >= 0")
        self.name = "hue-saturation"

    @classmethod
    def from_budget(cls, budget: HueSaturationBudget) -> HueSaturation:
        return cls(budget.hue, budget.saturation)

    @property
    def bounds(self) -> torch.Tensor:
        return torch.tensor([self.hue, self.saturation])

    def shape(self, x):
        return (len(x), 2)

    def apply(self, x, theta):
        if x.shape[1] != 3:  # no chroma to turn
            return x + 0 * theta.sum()  # still a function of θ, so gradient steps see a zero gradient, not none
        return shift_hue_saturation(x, theta[:, 0], theta[:, 1])

    def scaled(self, fraction):
        return replace(self, hue=self.hue * fraction, saturation=self.saturation * fraction)

    def budget(self):
        return {"hue": float(self.hue), "saturation": float(self.saturation)}



    def surface(self, model, x, y, steps, seed):
        """x with its hue turned by u and its saturation scaled by exp(v): the clean example at the centre."""
        u = torch.linspace(-self.hue, self.hue, steps)
        v = torch.linspace(-self.saturation, self.saturation, steps)
        uu, vv = torch.meshgrid(u, v, indexing="ij")
        theta = torch.stack([uu.reshape(-1), vv.reshape(-1)], 1)
        images = self.apply(x.expand(len(theta), *x.shape[1:]), theta)
        return (u, v), images, ("hue rotation (radians)", "log saturation")
