"""Gaussian blur: T(x; σ) = G_σ * x with σ ∈ [0, σ_max] pixels per example, the blurring that the paper's conclusion
names as future work (Definition 1 with dist = σ).  θ is σ, (B, 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from srtbench.config import field, require
from srtbench.neighborhoods.base import NEIGHBORHOODS, Neighborhood, budget_pgd, solve, uniform


@dataclass
class BlurBudget:
    sigma: float = field(1.5, "blur budget: largest Gaussian blur σ in pixels")

    def __post_init__(self):
        require(0 <= self.sigma <= 10, f"--sigma must be in [0, 10] pixels, got {self.sigma}")


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, 2·radius + 1) normalized 1-D Gaussian kernels, one per σ in `sigma` (B,)."""
    offsets = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    # the floor keeps 0/0 out of the centre tap: σ = 0 gives exactly the identity kernel [0, …, 1, …, 0]
    weights = torch.exp(-0.5 * (offsets / sigma.clamp_min(1e-3)[:, None]) ** 2)
    return weights / weights.sum(1, keepdim=True)


def blur_matrices(sigma: torch.Tensor, radius: int, size: int) -> torch.Tensor:
    """(B, size, size): row i of matrix b holds the weights output pixel i takes from each input pixel along one
    axis, under the Gaussian of σ = sigma[b] cut at `radius`, with the border pixels replicated."""
    offsets = torch.arange(-radius, radius + 1, device=sigma.device)
    taps = (torch.arange(size, device=sigma.device)[:, None] + offsets).clamp(0, size - 1)  # (size, K) sources
    return torch.einsum("bk,ikj->bij", gaussian_kernels(sigma, radius), F.one_hot(taps, size).to(sigma.dtype))


def gaussian_blur(x: torch.Tensor, sigma_x: torch.Tensor, sigma_y: torch.Tensor, radius: int) -> torch.Tensor:
    """x (B, C, H, W) blurred by separable Gaussians of per-example σ (B,) along x and y, kernels cut at
    `radius` pixels, borders replicated: two batched matrix products, differentiable in σ (a grouped convolution
    per example is ~10× slower on a CPU, mostly in its backward pass)."""
    if radius == 0:
        return x
    along_x = blur_matrices(sigma_x.to(x.dtype), radius, x.shape[-1])
    along_y = blur_matrices(sigma_y.to(x.dtype), radius, x.shape[-2])
    return along_y[:, None] @ x @ along_x[:, None].transpose(-1, -2)


@NEIGHBORHOODS.register("blur")
@dataclass(repr=False)
class GaussianBlur(Neighborhood):
    """T(x; σ) = G_σ * x, 0 ≤ σ ≤ `sigma` pixels, kernels cut at 3·sigma.

    Differentiable in σ, so training solves it by PGD on σ, from a uniform start (a Gaussian kernel is flat in σ at
    σ = 0, where gradient steps cannot leave the identity); the quick attack searches a grid of `grid_points`
    values of σ in [0, sigma].  On a decision surface: horizontal σ against vertical σ.
    """

    sigma: float = 1.5
    grid_points: int = 11
    Budget = BlurBudget
    srt_lambda = 0.2  # no paper value: spatial's, for a transform that keeps the image's content

    def __post_init__(self):
        require(self.sigma >= 0, f"sigma must be >= 0, got {self.sigma}")
        require(self.grid_points >= 1, f"grid_points must be >= 1, got {self.grid_points}")
        self.name = "blur"

    @classmethod
    def from_budget(cls, budget: BlurBudget) -> GaussianBlur:
        return cls(budget.sigma)

    @property
    def radius(self) -> int:
        return math.ceil(3 * self.sigma)

    def identity(self, x):
        return torch.zeros(len(x), 1, device=x.device)

    def sample(self, x, gen=None):
        return uniform((len(x), 1), 0.0, self.sigma, gen, x.device)

    def project(self, theta, x):
        return theta.clamp(0, self.sigma)

    def step(self, theta, grad, size):
        # `size` is a fraction of the budget, like Spatial's
        return theta + size * grad.sign() * self.sigma

    def apply(self, x, theta):
        return gaussian_blur(x, theta[:, 0], theta[:, 0], self.radius)

    def contains(self, theta, tol=1e-5):
        return ((theta >= -tol) & (theta <= self.sigma + tol)).all(1)

    def scaled(self, fraction):
        return replace(self, sigma=self.sigma * fraction)

    def budget(self):
        return {"sigma": float(self.sigma)}

    def grid(self) -> torch.Tensor:
        """The σ values of the exhaustive search, (G, 1)."""
        n = self.grid_points if self.sigma > 0 else 1
        return torch.linspace(0, self.sigma, n)[:, None] if n > 1 else torch.zeros(1, 1)

    def train_solver(self, settings):
        return budget_pgd(settings, start="uniform")

    def attack_solver(self, steps):
        return solve("grid")

    def surface(self, model, x, y, steps, seed):
        """x blurred by σ = u horizontally and σ = v vertically: the clean example at (0, 0), N(x) on the diagonal."""
        u = torch.linspace(0, self.sigma, steps)
        uu, vv = torch.meshgrid(u, u, indexing="ij")
        images = gaussian_blur(x.expand(uu.numel(), *x.shape[1:]), uu.reshape(-1), vv.reshape(-1), self.radius)
        return (u, u), images, ("horizontal σ (pixels)", "vertical σ (pixels)")
