"""ThreatConfig: the threat of a training run, an attack or a plot: a registered neighborhood, or several chained
with `+` (`pixel+blur`), with its budgets.  Its fields are `threat` plus every registered neighborhood's `Budget`
fields, generated once all are registered (`threat_config`), so a new threat's budget becomes `srtbench train` and
`srtbench plot surface` options without an edit here."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from srtbench.config import field, require, validate
from srtbench.errors import SrtbenchError
from srtbench.neighborhoods.base import NEIGHBORHOODS, Neighborhood
from srtbench.neighborhoods.compound import Compound


def atoms() -> list[str]:
    """The registered threats built from a budget of their own (every one but the named compounds)."""
    return [name for name in NEIGHBORHOODS.names() if NEIGHBORHOODS.get(name).Budget is not None]


def threat_parts(threat: str) -> tuple[str, ...]:
    """The registered neighborhoods a threat chains, in order: ('pixel',) for pixel, ('pixel', 'spatial') for
    compound and for pixel+spatial."""
    if threat in NEIGHBORHOODS and "parts" in NEIGHBORHOODS.meta(threat):
        return tuple(NEIGHBORHOODS.meta(threat)["parts"])
    parts = tuple(p.strip() for p in str(threat).split("+"))
    known = atoms()
    require(all(p in known for p in parts),
            f"unknown threat {threat!r}; choose one of: {', '.join(NEIGHBORHOODS.names())}, or several of "
            f"{', '.join(known)} chained with + (e.g. pixel+blur)")
    return parts


def canonical(threat: str) -> str:
    """The threat's registered name where it has one (pixel+spatial is compound), else its parts joined by +."""
    parts = threat_parts(threat)
    return next((name for name in NEIGHBORHOODS.names() if threat_parts(name) == parts), "+".join(parts))


class _ThreatConfig:
    """What the generated ThreatConfig dataclass does beyond holding its fields."""

    def __post_init__(self):
        validate(self)
        self.threat = canonical(self.threat)
        for name in atoms():
            self.budget_of(name)  # each budget checks its own fields: one-line errors, whichever threat is chosen

    def parts(self) -> tuple[str, ...]:
        return threat_parts(self.threat)

    def budget_of(self, name: str) -> Any:
        """Registered neighborhood `name`'s Budget, from this config's fields."""
        budget = NEIGHBORHOODS.get(name).Budget
        return budget(**{f.name: getattr(self, f.name) for f in dataclasses.fields(budget)})

    def build(self) -> Neighborhood:
        built = tuple(NEIGHBORHOODS.get(p).from_budget(self.budget_of(p)) for p in self.parts())
        return built[0] if len(built) == 1 else Compound(built)

def budget_record(threat: dict | None) -> dict[str, Any]:
    """The budgets of a recorded threat (a ThreatConfig as a dict, as checkpoints hold it): each Budget field of every
    part it chains, e.g. {"epsilon": 0.1, "norm": "linf"}; {} for none or a threat this version does not know."""
    if not isinstance(threat, dict):
        return {}
    try:
        parts = threat_parts(str(threat.get("threat")))
    except SrtbenchError:  # a checkpoint of a threat this version does not know records no budget
        return {}
    names = [f.name for p in parts for f in dataclasses.fields(NEIGHBORHOODS.get(p).Budget)]
    return {k: threat[k] for k in names if k in threat}


def _copy(f: dataclasses.Field) -> dataclasses.Field:
    if f.default is not dataclasses.MISSING:
        return dataclasses.field(default=f.default, metadata=f.metadata)
    return dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)


def threat_config() -> type:
    """The ThreatConfig dataclass of the neighborhoods registered so far: `threat`, then each one's budget fields
    (a field two budgets share, such as a common ε, must have one default)."""
    names = ", ".join(NEIGHBORHOODS.names())
    specs: list[tuple] = [("threat", str, field(
        "pixel", f"neighborhood N(x): {names}, or several chained with + (e.g. pixel+blur)"))]
    seen: dict[str, dataclasses.Field] = {}
    for name in atoms():
        budget = NEIGHBORHOODS.get(name).Budget
        hints = typing.get_type_hints(budget)
        for f in dataclasses.fields(budget):
            if f.name in seen:
                if seen[f.name].default != f.default:
                    raise ValueError(f"budget field {f.name!r} of threat {name!r} has a second default")
                continue
            seen[f.name] = f
            specs.append((f.name, hints[f.name], _copy(f)))
    cls = dataclasses.make_dataclass("ThreatConfig", specs, bases=(_ThreatConfig,))
    cls.__module__ = "srtbench.neighborhoods"
    cls.__doc__ = ("The threat of a training run or an attack: which neighborhood (`threat`), with which budgets "
                   "(the fields of every registered neighborhood's Budget).")
    return cls
