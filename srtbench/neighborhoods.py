"""The paper's neighborhood N_{ε,T}(x) = {T(x; θ) : dist(T(x; θ), x) ≤ ε} (Definition 1, Eq. (1)).

A neighborhood owns its parameter space θ: `identity`, `sample` (uniform inside the budget),
`project` (back inside the budget), `step` (one ascent step on θ), `apply` (T(x; θ), differentiable in
θ where T is) and `contains` (θ inside the budget).  Pixel-wise (ℓ∞, ℓ2) and spatial (rotation +
translation) neighborhoods are the building blocks; `Compound` chains them (Appendix F: spatial after
pixel-wise for PGD+/AT+/SRT+, pixel-wise after spatial for GridAdv+).

Parameters are one tensor per example batch (pixel: δ of x's shape; spatial: (B, 3) = rotation in
degrees, x- and y-translation in pixels), or a tuple of those for a compound.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from srtbench.config import field, require
from srtbench.registry import Registry

Params = torch.Tensor | tuple  # a tensor, or a tuple of Params for a compound


# ---------------------------------------------------------------- helpers over (nested) parameters


def index(theta: Params, idx: torch.Tensor) -> Params:
    if isinstance(theta, tuple):
        return tuple(index(t, idx) for t in theta)
    return theta[idx]


def assign(theta: Params, idx: torch.Tensor, value: Params) -> Params:
    """θ with θ[idx] replaced by value (out of place on the tuple, in place on tensors)."""
    if isinstance(theta, tuple):
        return tuple(assign(t, idx, v) for t, v in zip(theta, value))
    theta[idx] = value.detach()
    return theta


def detach(theta: Params) -> Params:
    if isinstance(theta, tuple):
        return tuple(detach(t) for t in theta)
    return theta.detach()


def repeat(theta: Params, times: int) -> Params:
    """Each example's θ repeated `times` times, consecutively (matches `x.repeat_interleave`)."""
    if isinstance(theta, tuple):
        return tuple(repeat(t, times) for t in theta)
    return theta.repeat_interleave(times, dim=0)


class ExampleRNG:
    """One generator per example, seeded by (seed, the example's index in its dataset), so that an
    evaluation's random draws do not depend on the batch size or on sharding.  Draws through `rand` and
    `randn` take row i from generator i; `rng[rows]` follows a subset of the examples."""

    def __init__(self, seed: int, index, generators: list | None = None):
        self.seed = seed
        self.generators = generators if generators is not None else [
            torch.Generator().manual_seed(seed * 1_000_003 + int(i)) for i in index]

    def __len__(self) -> int:
        return len(self.generators)

    def __getitem__(self, rows: torch.Tensor) -> ExampleRNG:
        rows = rows.nonzero().squeeze(1) if rows.dtype == torch.bool else rows
        return ExampleRNG(self.seed, (), [self.generators[int(r)] for r in rows.tolist()])


RNG = torch.Generator | ExampleRNG | None


def _per_example(draw, shape, gen: ExampleRNG) -> torch.Tensor:
    if shape[0] != len(gen):
        raise ValueError(f"{len(gen)} per-example generators for a draw of {shape[0]} rows")
    return torch.stack([draw(tuple(shape[1:]), generator=g) for g in gen.generators]) if len(gen) else \
        draw(tuple(shape))


def rand(shape, gen: RNG = None) -> torch.Tensor:
    """Uniform [0, 1) draws on the CPU; with an ExampleRNG, row i comes from example i's generator."""
    return _per_example(torch.rand, shape, gen) if isinstance(gen, ExampleRNG) else torch.rand(shape, generator=gen)


def randn(shape, gen: RNG = None) -> torch.Tensor:
    """Standard normal draws on the CPU, per example like `rand`."""
    return _per_example(torch.randn, shape, gen) if isinstance(gen, ExampleRNG) else torch.randn(shape, generator=gen)


def subset(gen: RNG, rows: torch.Tensor) -> RNG:
    """The generator for `x[rows]`: per-example generators follow their rows, a shared one is shared."""
    return gen[rows] if isinstance(gen, ExampleRNG) else gen


def _uniform(shape, low, high, gen: RNG, device) -> torch.Tensor:
    u = rand(shape, gen)
    return (low + (high - low) * u).to(device)


class Neighborhood(ABC):
    name: str = ""

    @abstractmethod
    def identity(self, x: torch.Tensor) -> Params: ...

    @abstractmethod
    def sample(self, x: torch.Tensor, gen: torch.Generator | None = None) -> Params: ...

    @abstractmethod
    def project(self, theta: Params, x: torch.Tensor) -> Params: ...

    @abstractmethod
    def step(self, theta: Params, grad: Params, size: float) -> Params: ...

    @abstractmethod
    def apply(self, x: torch.Tensor, theta: Params) -> torch.Tensor: ...

    @abstractmethod
    def contains(self, theta: Params, tol: float = 1e-5) -> torch.Tensor:
        """Per-example bool: θ within the budget."""

    @abstractmethod
    def scaled(self, fraction: float) -> Neighborhood:
        """The same neighborhood with every budget multiplied by `fraction` (Figures 1 and 7)."""

    @abstractmethod
    def budget(self) -> dict[str, float]:
        """Plain-data budgets for provenance (CSV rows, checkpoints)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.budget().items())
        return f"{type(self).__name__}({args})"


# ---------------------------------------------------------------- pixel-wise: x + δ


@dataclass(repr=False)
class PixelBall(Neighborhood):
    """{clip(x + δ, 0, 1) : ‖δ‖_p ≤ ε}; T(x; δ) = x + δ, dist = ℓp (Remark after Definition 1)."""

    epsilon: float
    norm: str = "linf"

    def __post_init__(self):
        require(self.norm in ("linf", "l2"), f"unknown norm {self.norm!r}; choose linf or l2")
        require(self.epsilon >= 0, f"epsilon must be >= 0, got {self.epsilon}")
        self.name = self.norm

    def identity(self, x):
        return torch.zeros_like(x)

    def _norms(self, d: torch.Tensor) -> torch.Tensor:
        flat = d.flatten(1)
        return flat.abs().amax(1) if self.norm == "linf" else flat.norm(dim=1)

    def sample(self, x, gen=None):
        if self.norm == "linf":
            delta = _uniform(x.shape, -self.epsilon, self.epsilon, gen, x.device)
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

    def scaled(self, fraction):
        return replace(self, epsilon=self.epsilon * fraction)

    def budget(self):
        return {"epsilon": float(self.epsilon)}


# ---------------------------------------------------------------- spatial: rotation + translation


@dataclass(repr=False)
class Spatial(Neighborhood):
    """T(x; θ) = A(θ_rot)·x + B, |θ_rot| ≤ rotation degrees, |B_x|, |B_y| ≤ translation pixels.

    Applied with one `affine_grid` + `grid_sample` call per batch (bilinear, zero fill, as in
    Engstrom et al. 2019 and the paper's official code): rotation about the image centre, then
    translation.  `grid_points` = (rotations, x-translations, y-translations) of the exhaustive grid
    (Appendix B: 31 × 5 × 5 = 775).  A zero budget collapses its axis to the single value 0, which
    gives the rotation-only (.R) and translation-only (.T) variants of Table 3.
    """

    rotation: float = 30.0
    translation: float = 3.0
    grid_points: tuple[int, int, int] = (31, 5, 5)

    def __post_init__(self):
        require(self.rotation >= 0 and self.translation >= 0, "spatial budgets must be >= 0")
        self.name = "spatial"

    @property
    def bounds(self) -> torch.Tensor:
        return torch.tensor([self.rotation, self.translation, self.translation])

    def identity(self, x):
        return torch.zeros(len(x), 3, device=x.device)

    def sample(self, x, gen=None):
        b = self.bounds
        return _uniform((len(x), 3), -b, b, gen, x.device)

    def project(self, theta, x):
        b = self.bounds.to(theta.device)
        return torch.maximum(torch.minimum(theta, b), -b)

    def step(self, theta, grad, size):
        # `size` is a fraction of each axis' budget, so one step size serves degrees and pixels alike
        return theta + size * grad.sign() * self.bounds.to(theta.device)

    def matrices(self, theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, 2, 3) sampling matrices in normalized coordinates (align_corners=False).

        Output location p samples the input at R(-φ)(p - t): the image turns by +φ (counter-clockwise
        as displayed, so +90° equals torch.rot90) and shifts by t pixels (x right, y down).
        """
        phi = torch.deg2rad(theta[:, 0])
        cos, sin = torch.cos(phi), torch.sin(phi)
        # pixel → normalized: u = 2·px/W; the aspect ratio enters the rotation's off-diagonal terms
        a, r = width / height, height / width
        tx = 2.0 * theta[:, 1] / width
        ty = 2.0 * theta[:, 2] / height
        m00, m01 = cos, -sin * r
        m10, m11 = sin * a, cos
        bx = -(m00 * tx + m01 * ty)
        by = -(m10 * tx + m11 * ty)
        return torch.stack([torch.stack([m00, m01, bx], 1), torch.stack([m10, m11, by], 1)], 1)

    def apply(self, x, theta):
        mats = self.matrices(theta.to(x.dtype), x.shape[-2], x.shape[-1])
        grid = F.affine_grid(mats, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def contains(self, theta, tol=1e-5):
        return (theta.abs() <= self.bounds.to(theta.device) + tol).all(1)

    def scaled(self, fraction):
        return replace(self, rotation=self.rotation * fraction, translation=self.translation * fraction)

    def budget(self):
        return {"rotation": float(self.rotation), "translation": float(self.translation)}

    def grid(self) -> torch.Tensor:
        """Every transform of the exhaustive grid, (G, 3); axes with zero budget hold only 0."""
        axes = []
        for bound, n in zip(self.bounds.tolist(), self.grid_points):
            axes.append(torch.linspace(-bound, bound, n) if bound > 0 and n > 1 else torch.zeros(1))
        mesh = torch.meshgrid(*axes, indexing="ij")
        return torch.stack([m.reshape(-1) for m in mesh], 1)


# ---------------------------------------------------------------- compound: a chain of neighborhoods


@dataclass(repr=False)
class Compound(Neighborhood):
    """T(x; θ1, θ2, …) = T_n(… T_1(x; θ1) …; θn): parts applied in order (Appendix F).

    `Compound((pixel, spatial))` is the neighborhood of PGD+, AT+ and SRT+ (spatial after
    pixel-wise); `Compound((spatial, pixel))` is the one of GridAdv+ (pixel-wise after spatial).
    """

    parts: tuple[Neighborhood, ...]

    def __post_init__(self):
        self.name = "compound"

    def identity(self, x):
        return tuple(p.identity(x) for p in self.parts)

    def sample(self, x, gen=None):
        thetas, cur = [], x
        for p in self.parts:
            thetas.append(p.sample(cur, gen))
            cur = p.apply(cur, thetas[-1])
        return tuple(thetas)

    def project(self, theta, x):
        out, cur = [], x
        for p, t in zip(self.parts, theta):
            out.append(p.project(t, cur))
            cur = p.apply(cur, out[-1])
        return tuple(out)

    def step(self, theta, grad, size):
        return tuple(p.step(t, g, size) for p, t, g in zip(self.parts, theta, grad))

    def apply(self, x, theta):
        for p, t in zip(self.parts, theta):
            x = p.apply(x, t)
        return x

    def contains(self, theta, tol=1e-5):
        inside = [p.contains(t, tol) for p, t in zip(self.parts, theta)]
        return torch.stack(inside).all(0)

    def scaled(self, fraction):
        return Compound(tuple(p.scaled(fraction) for p in self.parts))

    def budget(self):
        out = {}
        for p in self.parts:
            out.update(p.budget())
        return out


# ---------------------------------------------------------------- threat configs and the registry


@dataclass
class ThreatConfig:
    """The threat of a training run or an attack: which neighborhood, with which budgets."""

    threat: str = field("pixel", "neighborhood type", choices=("pixel", "spatial", "compound"))
    norm: str = field("linf", "norm of the pixel-wise part", choices=("linf", "l2"))
    epsilon: float = field(0.1, "pixel-wise budget ε (ℓ∞ in [0,1] pixel units)")
    rotation: float = field(30.0, "spatial budget: maximum rotation in degrees")
    translation: float = field(3.0, "spatial budget: maximum translation in pixels")

    def __post_init__(self):
        require(self.epsilon >= 0, f"--epsilon must be >= 0, got {self.epsilon}")
        require(self.epsilon <= 1 or self.norm == "l2", f"--epsilon {self.epsilon} exceeds the [0,1] pixel range")
        require(0 <= self.rotation <= 180, f"--rotation must be in [0, 180] degrees, got {self.rotation}")
        require(self.translation >= 0, f"--translation must be >= 0, got {self.translation}")

    def build(self) -> Neighborhood:
        return NEIGHBORHOODS.get(self.threat)(self)


NEIGHBORHOODS: Registry = Registry("threat")


@NEIGHBORHOODS.register("pixel")
def _pixel(cfg: ThreatConfig) -> Neighborhood:
    return PixelBall(cfg.epsilon, cfg.norm)


@NEIGHBORHOODS.register("spatial")
def _spatial(cfg: ThreatConfig) -> Neighborhood:
    return Spatial(cfg.rotation, cfg.translation)


@NEIGHBORHOODS.register("compound")
def _compound(cfg: ThreatConfig) -> Neighborhood:
    return Compound((PixelBall(cfg.epsilon, cfg.norm), Spatial(cfg.rotation, cfg.translation)))

