"""What every attack shares: the `Attack` interface, its per-example `AttackOutput`, and the registry whose
`AttackInfo` holds every fact about an attack (its defaults, which follow each dataset's declared budgets, table
header and column order, speed, white-box or not, the attacks it must beat), which tables, evaluation, recipes and
plots read."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from srtbench.data import DATASETS, DatasetSpec
from srtbench.errors import SrtbenchError
from srtbench.neighborhoods import ExampleRNG, threat_parts
from srtbench.neighborhoods.pixel import norm  # noqa: F401  (re-exported for the attacks)
from srtbench.registry import Registry

ATTACKS: Registry[Callable[..., Attack]] = Registry("attack")

NORMS = ("linf", "l2", "l0")  # how a pixel-wise attack measures its perturbation


@dataclass
class AttackOutput:
    """Per-example result of one attack on one batch (all tensors on the batch's device)."""

    x_adv: torch.Tensor
    inside: torch.Tensor  # (B,) bool: x_adv lies in the attack's threat set and in [0, 1]
    distance: torch.Tensor  # (B,) perturbation size (inf where a minimum-norm attack failed, NaN if n/a)

    def cat(self, other: AttackOutput) -> AttackOutput:
        return AttackOutput(*(torch.cat([a, b]) for a, b in zip(self.fields(), other.fields())))

    def fields(self) -> tuple[torch.Tensor, ...]:
        return self.x_adv, self.inside, self.distance

    def to(self, device) -> AttackOutput:
        return AttackOutput(*(t.to(device) for t in self.fields()))


def batch_seed(gen: torch.Generator | ExampleRNG) -> int:
    """One seed for a library attack that draws from a global or per-batch generator (from the batch's first
    example where draws are per example)."""
    first = gen.generators[0] if isinstance(gen, ExampleRNG) else gen
    return int(torch.randint(0, 2**31 - 1, (1,), generator=first))


def no_distance(x: torch.Tensor) -> torch.Tensor:
    return torch.full((len(x),), math.nan, device=x.device)


def in_box(x_adv: torch.Tensor) -> torch.Tensor:
    flat = x_adv.flatten(1)
    return (flat >= 0).all(1) & (flat <= 1).all(1)


class Attack(ABC):
    """An attack's algorithm: settings in, adversarial examples out.  What its result rows record about it (name,
    settings, budget and its source, threat) is `BuiltAttack`'s, made complete by `spec.build`."""

    batch_dependent: bool = False  # draws from one generator per batch (library attacks): results depend on batching

    @abstractmethod
    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                 gen: torch.Generator | None = None) -> AttackOutput:
        """Adversarial examples that move `model`'s prediction away from `target`."""

    def expectation(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, gen, samples: int) -> AttackOutput:
        """The attack against a model that is random at inference, over `samples` passes (EOT, `attacks/eot.py`):
        by default the attack itself on the expected model; an attack with its own EOT (AutoAttack's) overrides."""
        from srtbench.attacks.eot import ExpectedModel

        return self(ExpectedModel(model, samples), x, target, gen)


# ---------------------------------------------------------------- registration: every fact about an attack


@dataclass(frozen=True)
class AttackInfo:
    """Every fact about an attack, declared once where it is registered."""

    # every setting with its default: one dict for every dataset, or a function of the dataset (its declared
    # AttackBudgets, its shape) for the settings that follow the dataset
    defaults: dict[str, Any] | Callable[[DatasetSpec], dict[str, Any]]
    budget: tuple[str, ...]  # settings multiplied by --fractions
    threat: str  # the threat it probes, named as training names it: pixel, spatial, compound, blur, color, pixel+blur
    header: str  # its column header in the paper's tables
    order: int  # its place among the paper's columns (Tables 3, 4, Figure 1): tables and plots sort by it
    source: str  # where the attack and its defaults come from
    notes: str = ""
    library: str = "native"
    minimum_norm: bool = False
    slow: bool = False  # minutes per hundred images on a CPU: recipes evaluate it on fewer images
    white_box: bool = False  # follows the model's gradients (the gradient-masking flag checks the ℓ∞ ones)
    must_beat: tuple[str, ...] = ()  # attacks of the same budget it must break at least as often (order_ flags)
    covers: tuple[str, ...] = ()  # attacks whose threat set it contains: it breaks every example they break
    quick: str = ""  # settings `k=v,...` under which it runs in seconds (the test battery)
    norm: str = "linf"  # how its pixel-wise part is measured: linf, l2 or l0 (ℓ2/ℓ0 attacks are their own groups)
    in_all: bool = True  # `--attacks all` runs it (transfer, which needs a second model, runs when named)
    queries_model: bool = True  # searches by the attacked model's outputs (transfer searches on a surrogate's)

    @property
    def group(self) -> str:
        """Where the worst case over attacks is taken: the threat, and for pixel-wise attacks also the norm."""
        return f"{self.threat} {self.norm}" if self.threat == "pixel" else self.threat


def attack(name: str, **facts: Any) -> Callable:
    """Register a builder `fn(**settings) -> Attack` under `name` with its facts (the fields of AttackInfo)."""
    info = AttackInfo(**facts)
    threat_parts(info.threat)  # a registered threat or a chain of them
    if info.norm not in NORMS:
        raise ValueError(f"attack {name}: unknown norm {info.norm!r}")
    return ATTACKS.register(name, info=info)


def attack_defaults(name: str, dataset: str) -> dict[str, Any]:
    """Every setting of attack `name` with its default on `dataset`: the registered defaults (computed from the
    dataset's declared budgets where they follow it), then the dataset's own settings for this attack."""
    info, spec = attack_info(name), DATASETS.get(dataset)
    settings = dict(info.defaults(spec) if callable(info.defaults) else info.defaults)
    own = spec.budgets.settings.get(name, {})
    unknown = sorted(set(own) - set(settings))
    if unknown:
        raise SrtbenchError(f"dataset {dataset} sets {name}[{', '.join(unknown)}], which {name} does not have")
    return {**settings, **own}


def attack_info(name: str) -> AttackInfo:
    """The facts registered with attack `name` (an unknown name is a one-line error)."""
    return ATTACKS.meta(name)["info"]


def neighborhood(name: str) -> str:
    """The neighborhood attack `name` probes: pixel, spatial or compound."""
    return attack_info(name).threat


def header(name: str) -> str:
    """The paper's column header of attack `name` (the name itself for an attack not registered)."""
    return attack_info(name).header if name in ATTACKS else name


def paper_order() -> list[str]:
    """The registered attacks in the paper's column order."""
    return sorted(ATTACKS.names(), key=lambda name: attack_info(name).order)


def battery() -> list[str]:
    """What `--attacks all` runs: every registered attack that needs nothing beyond the attacked model."""
    return [name for name in ATTACKS.names() if attack_info(name).in_all]


def rank(name: str) -> int:
    """The place of attack `name` in the paper's column order (after every registered one if not registered)."""
    order = paper_order()
    return order.index(name) if name in order else len(order)


def must_beat_pairs() -> list[tuple[str, str]]:
    """(stronger, weaker) for every attack and each attack it must beat, in registration order."""
    return [(name, weak) for name in ATTACKS.names() for weak in attack_info(name).must_beat]


def cover_pairs() -> list[tuple[str, str]]:
    """(compound, part) for every attack and each attack whose threat set it contains, in registration order."""
    return [(name, part) for name in ATTACKS.names() for part in attack_info(name).covers]


# ---------------------------------------------------------------- an attack ready to run


@dataclass(frozen=True)
class BuiltAttack:
    """An attack ready to run, complete when `spec.build` makes it: its algorithm, its registered facts, and what its
    rows record (every setting as given, the effective budget after the fraction, where each budget came from)."""

    name: str
    algorithm: Attack
    info: AttackInfo
    params: dict[str, Any]
    budget: dict[str, float]
    budget_source: dict[str, str]  # per budget: checkpoint, dataset or command line
    eot: int = 1  # passes of the model per gradient and per decision (`attack[eot=N]`); 1: the plain attack
    bpda: str = ""  # the backward pass of the model's `preprocess` (`attack[bpda=identity]`); "": its own

    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                 gen: torch.Generator | ExampleRNG | None = None) -> AttackOutput:
        from srtbench.attacks.bpda import straight_through

        with straight_through(model, self.bpda):
            if self.eot > 1:
                return self.algorithm.expectation(model, x, target, gen, self.eot)
            return self.algorithm(model, x, target, gen)

    @property
    def group(self) -> str:
        """Where its worst case is taken: its threat (`info.threat`, as training names it), and for a pixel-wise
        attack its norm too (`info.norm`)."""
        return self.info.group

    @property
    def minimum_norm(self) -> bool:
        return self.info.minimum_norm

    @property
    def batch_dependent(self) -> bool:
        return self.algorithm.batch_dependent

    def at_budget(self, out: AttackOutput, x: torch.Tensor) -> AttackOutput:
        """The output as counted at this budget: a minimum-norm attack's example broken farther than its threshold
        `epsilon` counts as robust (x itself is kept); any other attack's output is already inside its budget."""
        if not self.minimum_norm:
            return out
        far = (out.distance > self.budget["epsilon"] + 1e-6).view(-1, *[1] * (x.dim() - 1))
        return AttackOutput(torch.where(far, x, out.x_adv), out.inside, out.distance)

    @property
    def run_key(self) -> str:
        """Two attacks with the same run key produce the same output (evaluation runs it once); a minimum-norm run
        does not depend on its threshold, so one run serves every fraction."""
        budget = [] if self.minimum_norm else sorted(self.budget.items())
        return f"{self.name}{sorted(self.params.items())}{budget}"
