"""What every neighborhood shares: the interface of Definition 1's N_{ε,T}(x), the helpers over its parameters θ,
per-example random draws, and the registry of threats.

A neighborhood is a MadryLab-style step object that owns its whole threat: its budget (`Budget`, a dataclass whose
fields become `ThreatConfig` fields and so CLI options), `identity` / `sample` / `project` / `step` / `apply` /
`contains` over its parameter space θ, the maximizers that solve max over N(x) in training (`train_solver`) and in
the trainer's quick attack (`attack_solver`), named in `srtbench.maximizers.MAXIMIZERS`, and how it is drawn on a
decision surface (`surface`).  Nothing else branches on which neighborhood it holds.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from srtbench.errors import SrtbenchError
from srtbench.registry import Registry

Params = torch.Tensor | tuple  # a tensor, or a tuple of Params for a compound

# threat name -> Neighborhood class; a compound's registration names its `parts` (meta) instead of a Budget
NEIGHBORHOODS: Registry = Registry("threat")


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


# ---------------------------------------------------------------- random draws


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


def uniform(shape, low, high, gen: RNG, device) -> torch.Tensor:
    """Uniform draws in [low, high) (bounds broadcast over `shape`), made on the CPU, moved to `device`."""
    u = rand(shape, gen)
    return (low + (high - low) * u).to(device)



# ---------------------------------------------------------------- how a neighborhood names its maximizers


@dataclass(frozen=True)
class Solve:
    """A maximizer by its name in `srtbench.maximizers.MAXIMIZERS` and its arguments (for `sequential`, `stages`
    is a tuple of Solve, one per part of a compound); `maximizers.build(solve)` makes it."""

    name: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)


def solve(name: str, **args: Any) -> Solve:
    return Solve(name, args)


@dataclass(frozen=True)
class SolverSettings:
    """What a defense grants its inner maximization (Eq. (10)), read by each neighborhood's `train_solver`:
    K = `steps` gradient steps of size α = `step_size` from `start` (pixel-wise units), `k` random draws for a
    search, and with `fast` one FGSM-RS step of α = fgsm_alpha·budget from a uniform start (Algorithm 2)."""

    steps: int = 10
    step_size: float = 0.025
    start: str = "normal"
    k: int = 10
    fast: bool = False
    fgsm_alpha: float = 1.25


# ---------------------------------------------------------------- the interface


class Neighborhood(ABC):
    name: str = ""
    Budget: ClassVar[type | None] = None  # its budget dataclass: every field a ThreatConfig field and CLI option
    # its training maximizer searches transforms (worst of k) rather than following gradients, so the official
    # code's `--spatial-pick flip` (first transform that changes the target) applies to it
    search_in_training: ClassVar[bool] = False
    # RT's and SRT's default λ against this threat (the paper's where it gives one); None: --lambda must be given
    srt_lambda: ClassVar[float | None] = None
    # T(x; θ) is differentiable in θ, so gradient ascent on θ applies: the threat gets a derived `NAME-pgd` attack
    differentiable: ClassVar[bool] = True
    # the roles of its derived attacks (pgd, grid, rand) that attacks of the paper already play, by their names: the
    # threat names them instead of getting a second column (spatial: {"grid": "gridadv", "rand": "randadv"})
    paper_attacks: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_budget(cls, budget: Any) -> Neighborhood:
        """The neighborhood of a `Budget` (what `ThreatConfig.build` calls)."""
        raise NotImplementedError(f"{cls.__name__} is built from its parts, not from a budget")

    @classmethod
    def dataset_budget(cls, spec: Any) -> dict[str, Any]:
        """The budget its derived attacks default to on a dataset (a `data.DatasetSpec`), where that differs from
        the Budget's own defaults (pixel: the dataset's declared ε)."""
        return {}

    def grid(self) -> torch.Tensor | None:
        """The θ values of an exhaustive search, (G, ...) shared by every example, where the threat offers one (its
        derived `NAME-grid` attack and `GridSearch` use it); None where it does not."""
        return None

    @abstractmethod
    def identity(self, x: torch.Tensor) -> Params: ...

    @abstractmethod
    def sample(self, x: torch.Tensor, gen: RNG = None) -> Params: ...

    @abstractmethod
    def project(self, theta: Params, x: torch.Tensor) -> Params: ...

    @abstractmethod
    def step(self, theta: Params, grad: Params, size: float) -> Params: ...

    @abstractmethod
    def apply(self, x: torch.Tensor, theta: Params) -> torch.Tensor: ...

    @abstractmethod
    def contains(self, theta: Params, tol: float = 1e-5) -> torch.Tensor:
        """Per-example bool: θ within the budget."""

    def contains_image(self, x: torch.Tensor, x_adv: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
        """Per-example bool: the image x_adv itself lies within the budget around x, where the budget is a distance
        between images (a pixel ball); a transformation's budget is on θ alone (`contains`), so all True."""
        return torch.ones(len(x), dtype=torch.bool, device=x.device)

    @abstractmethod
    def scaled(self, fraction: float) -> Neighborhood:
        """The same neighborhood with every budget multiplied by `fraction` (Figures 1 and 7)."""

    @abstractmethod
    def budget(self) -> dict[str, float]:
        """Plain-data budgets for provenance (CSV rows, checkpoints)."""

    @abstractmethod
    def train_solver(self, settings: SolverSettings) -> Solve:
        """The maximizer of a defense's inner maximization over this neighborhood (Eq. (10))."""

    @abstractmethod
    def attack_solver(self, steps: int) -> Solve:
        """The trainer's quick held-out attack over this neighborhood (`steps` gradient steps where it takes any)."""

    def surface(self, model, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int):
        """(axes, images, names): the images around one example x (1, C, H, W) along one or two directions of θ,
        for the decision surfaces of Figures 3-6.  Two directions: axes (u, v), a steps × steps grid, image (i, j) at
        (u[i], v[j]); one direction (a threat of one parameter): axes (u,), image i at u[i].  `names` names each."""
        raise SrtbenchError(f"the {self.name} threat has no decision surface; draw one of its parts")

    def chain(self) -> tuple[Neighborhood, ...]:
        """The neighborhoods it applies in order: (self,), or a compound's parts."""
        return (self,)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.budget().items())
        return f"{type(self).__name__}({args})"


def budget_pgd(settings: SolverSettings, start: str) -> Solve:
    """PGD for a neighborhood whose `step` takes fractions of its budget (spatial, blur, color): K = settings.steps
    steps of 2.5/K of the budget (Madry et al.'s 2.5·ε/K rule) from `start`, or with `fast` one FGSM-RS step of
    fgsm_alpha of it from a uniform start (Algorithm 2).  settings.step_size is pixel-wise (ε units) and not used."""
    if settings.fast:
        return solve("pgd", steps=1, step_size=settings.fgsm_alpha, start="uniform")
    return solve("pgd", steps=settings.steps, step_size=2.5 / settings.steps, start=start)


class BoxNeighborhood(Neighborhood):
    """A neighborhood whose θ, of shape `shape(x)`, lies in the box |θ| ≤ `bounds` (broadcast over θ): θ = 0 is the
    identity, samples are uniform in the box, projection clamps, and a step moves every coordinate by `size` times
    its bound in its gradient's sign, so one step size (a fraction of the budget) serves coordinates of any unit."""

    @property
    @abstractmethod
    def bounds(self) -> torch.Tensor: ...

    @abstractmethod
    def shape(self, x: torch.Tensor) -> tuple[int, ...]: ...

    def identity(self, x):
        return torch.zeros(self.shape(x), device=x.device)

    def sample(self, x, gen=None):
        b = self.bounds
        return uniform(self.shape(x), -b, b, gen, x.device)

    def project(self, theta, x):
        b = self.bounds.to(theta.device)
        return torch.maximum(torch.minimum(theta, b), -b)

    def step(self, theta, grad, size):
        return theta + size * grad.sign() * self.bounds.to(theta.device)

    def contains(self, theta, tol=1e-5):
        return (theta.abs() <= self.bounds.to(theta.device) + tol).flatten(1).all(1)

    def train_solver(self, settings):
        """PGD on θ in steps of a fraction of the budget (`budget_pgd`), unless the threat says otherwise."""
        return budget_pgd(settings, start=settings.start)

    def attack_solver(self, steps):
        """The quick attack: PGD on θ, K steps of 2.5/K of the budget from a uniform start."""
        return solve("pgd", steps=steps, step_size=2.5 / steps, start="uniform")
