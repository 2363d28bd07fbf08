"""Pixel-wise neighborhoods: {clip(x + δ, 0, 1) : ‖δ‖_p ≤ ε}, T(x; δ) = x + δ, dist = ℓp (Remark after Definition 1).
θ is δ, of x's shape."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from srtbench.config import field, require
from srtbench.neighborhoods.base import NEIGHBORHOODS, Neighborhood, rand, randn, solve, uniform


def norm(d: torch.Tensor, p: str) -> torch.Tensor:
    """Per-example size of a perturbation `d` in the ℓ∞ or ℓ2 norm, or ℓ0 (input values changed by over 1e-6): the one
    definition the pixel ball and every attack's reported distance use."""
    flat = d.flatten(1)
    if p == "linf":
        return flat.abs().amax(1)
    if p == "l2":
        return flat.norm(dim=1)
    return (flat.abs() > 1e-6).sum(1).float()


@dataclass
class PixelBudget:
    norm: str = field("linf", "norm of the pixel-wise part", choices=("linf", "l2"))
    epsilon: float = field(0.1, "pixel-wise budget ε (ℓ∞ in [0,1] pixel units)")

    def __post_init__(self):
        require(self.epsilon >= 0, f"--epsilon must be >= 0, got {self.epsilon}")
        require(self.epsilon <= 1 or self.norm == "l2", f"--epsilon {self.epsilon} exceeds the [0,1] pixel range")


@NEIGHBORHOODS.register("pixel")
@dataclass(repr=False)
class PixelBall(Neighborhood):
    """{clip(x + δ, 0, 1) : ‖δ‖_p ≤ ε}; T(x; δ) = x + δ, dist = ℓp.  Solved by PGD in training (FGSM-RS for fast
    SRT) and in the quick attack."""

    epsilon: float
    norm: str = "linf"
    Budget = PixelBudget
    srt_lambda = 1.0  # Sec. 4.3: λ = 1 pixel-wise
    paper_attacks = {"pgd": "pgd"}  # Madry et al.'s PGD is the paper's (its derived random attack is `pixel-rand`)

    @classmethod
    def dataset_budget(cls, spec):
        return {"epsilon": spec.budgets.linf}  # each dataset's declared ε (Appendix C, E)

    def __post_init__(self):
        require(self.norm in ("linf", "l2"), f"unknown norm {self.norm!r}; choose linf or l2")
        require(self.epsilon >= 0, f"epsilon must be >= 0, got {self.epsilon}")
        self.name = self.norm

    @classmethod
    def from_budget(cls, budget: PixelBudget) -> PixelBall:
        return cls(budget.epsilon, budget.norm)

    def identity(self, x):
        return torch.zeros_like(x)

    def _norms(self, d: torch.Tensor) -> torch.Tensor:
        return norm(d, self.norm)

    def sample(self, x, gen=None):
        if self.norm == "linf":
            delta = uniform(x.shape, -self.epsilon, self.epsilon, gen, x.device)
        else:  # uniform in the ℓ2 ball: Gaussian direction, radius ε·U^(1/d)
            d = x[0].numel()
            direction = randn(x.shape, gen).flatten(1)
            direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
            radius = self.epsilon * rand((len(x), 1), gen) ** (1.0 / d)
            delta = (direction * radius).view_as(x).to(x.device)
        return self.project(delta, x)

    def project(self, theta, x):
        if self.norm == "linf":
            delta = theta.clamp(-self.epsilon, self.epsilon)
        else:
            n = self._norms(theta).clamp_min(1e-12)
            delta = theta * (self.epsilon / n).clamp(max=1.0).view(-1, *[1] * (x.dim() - 1))
        # keep x + δ in the image box; this can only shrink |δ| coordinate-wise, so the norm stays ≤ ε
        return (x + delta).clamp(0, 1) - x

    def step(self, theta, grad, size):
        if self.norm == "linf":
            return theta + size * grad.sign()
        n = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (grad.dim() - 1))
        return theta + size * grad / n

    def apply(self, x, theta):
        # value clamp(x + δ, 0, 1), gradient 1: torch's clamp has zero gradient AT the bounds, which would
        # freeze every pixel sitting on 0 or 1 (half of an MNIST image) for the whole ascent
        out = x + theta
        return out - (out - out.clamp(0, 1)).detach()

    def contains(self, theta, tol=1e-5):
        return self._norms(theta) <= self.epsilon + tol

    def contains_image(self, x, x_adv, tol=1e-5):
        return self._norms(x_adv - x) <= self.epsilon + tol

    def scaled(self, fraction):
        return replace(self, epsilon=self.epsilon * fraction)

    def budget(self):
        return {"epsilon": float(self.epsilon)}

    def train_solver(self, settings):
        if settings.fast:  # Algorithm 2: one step of α = fgsm_alpha·ε from a uniform start
            return solve("fgsm-rs", epsilon=self.epsilon, alpha_factor=settings.fgsm_alpha)
        return solve("pgd", steps=settings.steps, step_size=settings.step_size, start=settings.start)

    def attack_solver(self, steps):
        return solve("pgd", steps=steps, step_size=2.5 * self.epsilon / steps, start="uniform")

    def surface(self, model, x, y, steps, seed):
        """x + u·sign(∇x loss) + v·r, r a random sign pattern: the adversarial and a random direction, |u|, |v| ≤ ε."""
        x = x.clone().requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(x), y), x)
        adversarial = grad.sign()
        random = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(seed)).float() * 2 - 1
        u = torch.linspace(-self.epsilon, self.epsilon, steps)
        uu, vv = torch.meshgrid(u, u, indexing="ij")
        images = (x.detach() + uu.reshape(-1, 1, 1, 1) * adversarial + vv.reshape(-1, 1, 1, 1) * random).clamp(0, 1)
        return (u, u), images, ("adversarial direction", "random direction")
