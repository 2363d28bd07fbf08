"""ThreatConfig: the threat of a training run, an attack or a plot: a registered neighborhood, or several chained
with `+` (`pixel+blur`), with its budgets.  Its fields are `threat` plus every registered neighborhood's `Budget`
fields, generated once all are registered (`threat_config`), so a new threat's budget becomes `srtbench train` and
`srtbench plot surface` options without an edit here.  Each threat's fields are its own: a field name no other
threat's budget uses keeps its short name (`--epsilon`, `--rotation`); a name two threats use is prefixed by each
threat's (`--blur-sigma`, `--elastic-sigma`), so no option sets two threats' budgets.

A record (a checkpoint's `threat`, a preset) names budgets by these fields; `part_budget` reads one part's budget
from it under either name, so records written before a name became shared still read."""

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


def _budget_fields(name: str) -> list[dataclasses.Field]:
    budget = NEIGHBORHOODS.get(name).Budget
    return list(dataclasses.fields(budget)) if budget is not None else []


def field_name(threat: str, budget_field: str) -> str:
    """The ThreatConfig field (and option) of one threat's budget field: its own name where no other registered
    threat's budget has a field of that name, else prefixed by its threat (`blur_sigma`, option `--blur-sigma`)."""
    owners = [a for a in atoms() if any(f.name == budget_field for f in _budget_fields(a))]
    return budget_field if len(owners) <= 1 else f"{threat.replace('-', '_')}_{budget_field}"


def part_budget(record: dict, part: str) -> dict[str, Any]:
    """The budget fields of registered threat `part` that a record holds, by their Budget names: under their
    ThreatConfig field name, else under the plain name (a record written before the name became shared)."""
    out = {}
    for f in _budget_fields(part):
        for key in (field_name(part, f.name), f.name):
            if key in record:
                out[f.name] = record[key]
                break
    return out


def config_fields(record: dict) -> dict[str, Any]:
    """A record as ThreatConfig fields: its threat and the budgets of the parts it chains ({} for a record of a
    threat this version does not know)."""
    try:
        parts = threat_parts(str(record.get("threat")))
    except SrtbenchError:
        return {}
    out: dict[str, Any] = {"threat": record["threat"]}
    for part in parts:
        out.update({field_name(part, k): v for k, v in part_budget(record, part).items()})
    return out


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
        return budget(**{f.name: getattr(self, field_name(name, f.name)) for f in dataclasses.fields(budget)})

    def build(self) -> Neighborhood:
        built = tuple(NEIGHBORHOODS.get(p).from_budget(self.budget_of(p)) for p in self.parts())
        return built[0] if len(built) == 1 else Compound(built)


def budget_record(threat: dict | None) -> dict[str, Any]:
    """The budgets of a recorded threat (a ThreatConfig as a dict, as checkpoints hold it): each Budget field of every
    part it chains, e.g. {"epsilon": 0.1, "norm": "linf"} (a chain's parts by their ThreatConfig names, so two parts'
    `sigma` stay apart); {} for none or a threat this version does not know."""
    if not isinstance(threat, dict):
        return {}
    try:
        parts = threat_parts(str(threat.get("threat")))
    except SrtbenchError:  # a checkpoint of a threat this version does not know records no budget
        return {}
    out: dict[str, Any] = {}
    for part in parts:
        out.update({field_name(part, k) if len(parts) > 1 else k: v for k, v in part_budget(threat, part).items()})
    return out


def _copy(f: dataclasses.Field) -> dataclasses.Field:
    if f.default is not dataclasses.MISSING:
        return dataclasses.field(default=f.default, metadata=f.metadata)
    return dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)


def threat_config() -> type:
    """The ThreatConfig dataclass of the neighborhoods registered so far: `threat`, then each one's budget fields,
    named by `field_name`."""
    names = ", ".join(NEIGHBORHOODS.names())
    specs: list[tuple] = [("threat", str, field(
        "pixel", f"neighborhood N(x): {names}, or several chained with + (e.g. pixel+blur)"))]
    for name in atoms():
        budget = NEIGHBORHOODS.get(name).Budget
        hints = typing.get_type_hints(budget)
        specs += [(field_name(name, f.name), hints[f.name], _copy(f)) for f in dataclasses.fields(budget)]
    cls = dataclasses.make_dataclass("ThreatConfig", specs, bases=(_ThreatConfig,))
    cls.__module__ = "srtbench.neighborhoods"
    cls.__doc__ = ("The threat of a training run or an attack: which neighborhood (`threat`), with which budgets "
                   "(the fields of every registered neighborhood's Budget).")
    return cls
