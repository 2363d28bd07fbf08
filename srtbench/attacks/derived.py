"""The attacks every registered threat gets from its declaration, with nothing written for it: `NAME-pgd` where
T(x; θ) is differentiable in θ, `NAME-grid` where the threat offers a grid, `NAME-rand` always.

Each attacks at the threat's own budget (its Budget's defaults, or the dataset's where the threat declares one:
`Neighborhood.dataset_budget`), takes the budgets a checkpoint was trained against like every attack, and gets its
table header from the threat's name.  A threat whose paper attacks already play a role names them
(`Neighborhood.paper_attacks`: pixel's `pgd`, spatial's `gridadv` and `randadv`, compound's `pgd+` and `gridadv+`)
and gets no second column for it.  Hand-written attacks remain for what is particular (FGSM, MI-FGSM, C&W, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from srtbench.attacks.base import Attack, attack
from srtbench.attacks.native import NeighborhoodAttack
from srtbench.config import require
from srtbench.data import DatasetSpec
from srtbench.maximizers import PGD, GridSearch, RandomSearch
from srtbench.neighborhoods import NEIGHBORHOODS, Compound, Neighborhood, field_name, threat_parts


@dataclasses.dataclass(frozen=True)
class Role:
    """One kind of derived attack: its header suffix, what it does, its solver settings and its quick ones."""

    header: str
    source: str
    settings: dict[str, Any]
    quick: str
    solver: Callable[..., Callable]


def _pgd(steps: int, step_size: float, start: str) -> PGD:
    require(steps >= 1, f"steps must be >= 1, got {steps}")
    require(step_size >= 0, f"step_size must be >= 0 (a fraction of the budget), got {step_size:g}")
    return PGD(steps, step_size, start)


# PGD's steps are fractions of the budget: 2.5/K of it (Madry et al.'s 2.5·ε/K rule) for K = 20, from a uniform start
# (a gradient can vanish at the identity, as a Gaussian blur's does at σ = 0)
ROLES = {
    "pgd": Role("PGD", "PGD on θ: K steps of a fraction of the budget each, from a uniform draw, stopping per example "
                "once broken", dict(steps=20, step_size=0.125, start="uniform"), "steps=5", _pgd),
    "grid": Role("Grid", "the worst θ of the threat's exhaustive grid, stopping per example once broken", {}, "",
                 lambda: GridSearch()),
    "rand": Role("Rand", "the worst of k uniform draws of θ (one draw: k=1)", dict(k=10), "k=3",
                 lambda k: RandomSearch(k)),
}
ORDER = 200  # after the paper's battery (FGSM 10 ... PGD+ 160) and AutoAttack (170)


def named_roles(threat: str) -> dict[str, str]:
    """The roles a threat's paper attacks play: a class's `paper_attacks`, or a named compound's registration."""
    meta = NEIGHBORHOODS.meta(threat)
    return dict(meta.get("paper_attacks") or NEIGHBORHOODS.get(threat).paper_attacks)


def _parts(threat: str) -> list[tuple[str, dataclasses.Field, str]]:
    """(part, Budget field, setting name) of each numeric budget field the threat's parts declare: a part's field
    keeps its name in a single threat and takes its ThreatConfig name in a chain, where two parts may share one."""
    parts = threat_parts(threat)
    out = []
    for part in parts:
        for f in dataclasses.fields(NEIGHBORHOODS.get(part).Budget):
            if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
                out.append((part, f, f.name if len(parts) == 1 else field_name(part, f.name)))
    return out


def _neighborhood(threat: str, settings: dict[str, Any]) -> Neighborhood:
    built = []
    for part in threat_parts(threat):
        cls = NEIGHBORHOODS.get(part)
        own = {f.name: settings[name] for p, f, name in _parts(threat) if p == part}
        built.append(cls.from_budget(cls.Budget(**own)))  # the Budget checks its own ranges, in one line
    return built[0] if len(built) == 1 else Compound(tuple(built))


def _defaults(threat: str, role: Role) -> Callable[[DatasetSpec], dict[str, Any]]:
    def defaults(spec: DatasetSpec) -> dict[str, Any]:
        own = {part: NEIGHBORHOODS.get(part).dataset_budget(spec) for part in threat_parts(threat)}
        budget = {name: own[part].get(f.name, f.default) for part, f, name in _parts(threat)}
        return {**budget, **role.settings}

    return defaults


def _budget_names(threat: str, sample: Neighborhood) -> tuple[str, ...]:
    """The settings a perturbation fraction scales: those the threat's neighborhood reports as its budget."""
    reported = set(sample.budget())
    return tuple(name for part, f, name in _parts(threat) if f.name in reported)


def _builder(threat: str, role: Role) -> Callable[..., Attack]:
    budget = {name for _, _, name in _parts(threat)}

    def build(**settings: Any) -> Attack:
        neighborhood = _neighborhood(threat, {k: v for k, v in settings.items() if k in budget})
        return NeighborhoodAttack(neighborhood, role.solver(**{k: v for k, v in settings.items() if k not in budget}))

    return build


def title(threat: str) -> str:
    """A threat's name as a table header: `hue-saturation` -> `Hue-Saturation`, `pixel+blur` -> `Pixel+Blur`."""
    return "+".join("-".join(w.capitalize() for w in part.split("-")) for part in threat.split("+"))


def register_derived() -> list[str]:
    """Register the derived attacks of every registered threat (once, at import); returns their names."""
    names = []
    for i, threat in enumerate(NEIGHBORHOODS.names()):
        sample = _neighborhood(threat, {name: f.default for _, f, name in _parts(threat)})
        offered = {"pgd": all(p.differentiable for p in sample.chain()), "grid": sample.grid() is not None,
                   "rand": True}
        for j, (key, role) in enumerate(ROLES.items()):
            if not offered[key] or key in named_roles(threat):
                continue
            name = f"{threat}-{key}"
            attack(name, defaults=_defaults(threat, role), budget=_budget_names(threat, sample), threat=threat,
                   source=f"derived from the {threat} threat's declaration: {role.source}",
                   notes="step_size is a fraction of the budget" if key == "pgd" else "",
                   header=f"{title(threat)}-{role.header}", order=ORDER + 10 * i + j, white_box=key == "pgd",
                   quick=role.quick)(_builder(threat, role))
            names.append(name)
    return names


DERIVED = register_derived()
