"""Elastic deformation: T(x; θ) = x warped by the smooth displacement field α·(G_σ * θ), |θ| ≤ 1 per pixel and
axis (σ: `smoothness`), so no pixel moves farther than α pixels along either axis (Simard et al. 2003's elastic
distortion, with the random field replaced by the attacker's θ).  Differentiable in θ: solved by PGD on θ."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from srtbench.config import field, require
from srtbench.neighborhoods.base import NEIGHBORHOODS, BoxNeighborhood
from srtbench.neighborhoods.blur import gaussian_blur


@dataclass
class ElasticBudget:
    alpha: float = field(1.5, "elastic budget: largest displacement of a pixel along each axis, in pixels")
    smoothness: float = field(3.0, "elastic smoothness: σ in pixels of the Gaussian that smooths the displacement")

    def __post_init__(self):
        require(0 <= self.alpha <= 10, f"--alpha must be in [0, 10] pixels, got {self.alpha}")
        require(0.5 <= self.smoothness <= 10, f"--smoothness must be in [0.5, 10] pixels, got {self.smoothness}")


def warp(x: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) sampled at each pixel plus its displacement (B, 2, H, W: x then y, in pixels), bilinearly,
    borders replicated."""
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device), torch.linspace(-1, 1, w, device=x.device),
                            indexing="ij")
    # pixels -> grid_sample's normalized units (align_corners=True: -1 and 1 are the border pixels' centres)
    gx = xs + displacement[:, 0] * 2 / max(w - 1, 1)
    gy = ys + displacement[:, 1] * 2 / max(h - 1, 1)
    return F.grid_sample(x, torch.stack([gx, gy], -1).to(x.dtype), mode="bilinear", padding_mode="border",
                         align_corners=True)


@NEIGHBORHOODS.register("elastic")
@dataclass(repr=False)
class Elastic(BoxNeighborhood):
    """T(x; θ) = warp(x, α·(G_σ * θ)), θ (B, 2, H, W) in [-1, 1]: a convex combination of values in [-1, 1], so
    every displacement is at most α pixels per axis.  On a decision surface: one smooth random direction of θ, from
    −α to α (one parameter)."""

    alpha: float = 1.5
    smoothness: float = 3.0
    Budget = ElasticBudget
    srt_lambda = 0.2  # no paper value: spatial's, for a transform that keeps the image's content

    def __post_init__(self):
        require(self.alpha >= 0 and self.smoothness > 0, "elastic budgets must be >= 0 (smoothness > 0)")
        self.name = "elastic"

    @classmethod
    def from_budget(cls, budget: ElasticBudget) -> Elastic:
        return cls(budget.alpha, budget.smoothness)

    @property
    def bounds(self) -> torch.Tensor:
        return torch.tensor(1.0)

    def shape(self, x):
        return (len(x), 2, *x.shape[-2:])

    def displacement(self, theta: torch.Tensor) -> torch.Tensor:
        """α·(G_σ * θ) in pixels, (B, 2, H, W): each axis's field smoothed by the same Gaussian."""
        b = len(theta)
        sigma = torch.full((b,), self.smoothness, device=theta.device)
        smooth = gaussian_blur(theta.to(torch.float32), sigma, sigma, max(1, round(3 * self.smoothness)))
        return self.alpha * smooth

    def apply(self, x, theta):
        return warp(x, self.displacement(theta).to(x.dtype))

    def scaled(self, fraction):
        return replace(self, alpha=self.alpha * fraction)

    def budget(self):
        return {"alpha": float(self.alpha)}



    def surface(self, model, x, y, steps, seed):
        """x deformed by t·d, t ∈ [-1, 1], d the sign of a smoothed random field (coherent regions moving together):
        the clean example at t = 0."""
        noise = torch.randn((1, 2, *x.shape[-2:]), generator=torch.Generator().manual_seed(seed))
        sigma = torch.full((1,), self.smoothness)
        direction = gaussian_blur(noise, sigma, sigma, max(1, round(3 * self.smoothness))).sign()
        t = torch.linspace(-1, 1, steps)
        images = self.apply(x.expand(steps, *x.shape[1:]), t.view(-1, 1, 1, 1) * direction)
        return (t * self.alpha,), images, ("displacement along a random smooth field (pixels)",)
