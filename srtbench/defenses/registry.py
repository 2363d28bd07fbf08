"""The defense registry: each defense's objective with every fact the CLI, trainer, evaluation and tables need about
it, declared on its registration (timm's shape), so nothing else branches on a defense's name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import nn

from srtbench.config import option_name
from srtbench.data import Batch, DataConfig
from srtbench.defenses.params import DefenseParams
from srtbench.errors import SrtbenchError
from srtbench.neighborhoods import NEIGHBORHOODS, Neighborhood
from srtbench.registry import Registry

Objective = Callable[[nn.Module, Batch, Neighborhood, DefenseParams, "torch.Generator | None"], dict]


@dataclass(frozen=True)
class Defense:
    """A registered objective with what the CLI, trainer and tables need to know about it."""

    name: str
    objective: Objective
    params: tuple[str, ...]  # DefenseParams fields it reads
    label: Callable[[DefenseParams, str], str]  # the paper's row name
    source: str
    only: tuple[str, ...] | None = None  # the threats it is defined for, where not every registered one
    refuses: tuple[str, ...] = ()  # threats it is not defined for ...
    hint: str = ""  # ... and what to use for them instead
    defaults: Callable[[str, str], dict] = lambda threat, dataset: {}  # paper defaults per (threat, dataset)
    uses_unlabeled: bool = False
    schedule: str = "piecewise"  # the learning-rate schedule it is run with by default
    prepare: Callable[[Setup], None] = lambda setup: None  # what it needs before the first step (RST: a teacher)
    # trained against its neighborhood; standard training is not, so attacks on it take the dataset's budgets
    robust: bool = True
    formula: str = ""  # one line for `srtbench train --help`; default: the first line of the objective's docstring

    def accepts(self, threat: str) -> bool:
        return threat in self.only if self.only is not None else threat not in self.refuses

    @property
    def summary(self) -> str:
        return self.formula or (self.objective.__doc__ or self.name).strip().splitlines()[0]

    @property
    def threats(self) -> tuple[str, ...]:
        """The registered threats it is defined for (and, unless `only` is declared, any chain of them)."""
        return tuple(t for t in NEIGHBORHOODS.names() if self.accepts(t))

    def resolve(self, params: DefenseParams, threat: str, dataset: str, epsilon: float) -> DefenseParams:
        """Check the threat is supported and fill every `None` with the paper's default."""
        if not self.accepts(threat):
            hint = f" ({self.hint})" if self.hint else ""
            raise SrtbenchError(
                f"defense {self.name!r} is not defined for the {threat} threat; it supports: "
                f"{', '.join(self.threats)}{hint}"
            )
        values = {f.name: getattr(params, f.name) for f in fields(params)}
        for key, value in self.defaults(threat, dataset).items():
            if values[key] is None:
                values[key] = value
        if values["step_size"] is None:
            values["step_size"] = 2.5 * epsilon / values["steps"]
        unset = [f for f in fields(params) if f.name in self.params and f.name not in OPTIONAL
                 and values[f.name] is None]
        if unset:
            raise SrtbenchError(f"{self.name} has no default --{option_name(unset[0])} for the {threat} threat: "
                                "pass one")
        return params.changed(**values)


DEFENSES: Registry[Defense] = Registry("defense")
OPTIONAL = ("teacher",)  # a defense that reads it checks it where it needs it (RST's `prepare`)


@dataclass
class Setup:
    """What a defense's `prepare` hook sees before the first step, and may set: its resolved parameters (it may
    attach models to them) and the number of unlabeled images per batch (None: D_L and D_U in proportion to their
    sizes, Section 4)."""

    params: DefenseParams
    data: DataConfig
    device: torch.device
    batch_size: int
    has_unlabeled: bool
    unlabeled_per_batch: int | None = None


def register(name: str, **kw) -> Callable[[Objective], Objective]:
    def deco(fn: Objective) -> Objective:
        DEFENSES.register(name)(Defense(name=name, objective=fn, **kw))
        return fn

    return deco

