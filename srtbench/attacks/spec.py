"""Attack specs `name[k=v,...]`: split a list of them, resolve each to its settings (the dataset family's
defaults, the budgets a checkpoint was trained against, the command line's overrides, in that order of precedence)
and build the attack with every budget scaled by a perturbation fraction (Figures 1 and 7)."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from srtbench.attacks.base import ATTACKS, AttackInfo, BuiltAttack, attack_defaults, attack_info, battery
from srtbench.config import require
from srtbench.errors import SrtbenchError
from srtbench.neighborhoods import NEIGHBORHOODS, part_budget, threat_parts

SPEC = re.compile(r"^\s*([\w.+-]+)\s*(?:\[(.*)\])?\s*$")


def split_specs(text: str) -> list[str]:
    """'pgd[steps=100,start=none],gridadv' -> ['pgd[steps=100,start=none]', 'gridadv'] ('all' expands)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    specs = [s.strip() for s in out if s.strip()]
    require(bool(specs), "--attacks is empty")
    expanded = [name for s in specs for name in (battery() if s == "all" else [s])]
    twice = sorted({s for s in expanded if expanded.count(s) > 1})
    require(not twice, f"--attacks lists {', '.join(twice)} twice (their rows would share one key)")
    return expanded


def _convert(text: str, default: Any, key: str, name: str) -> Any:
    try:
        if isinstance(default, bool):
            require(text.lower() in ("true", "false", "1", "0"), f"{name}[{key}=...] takes true or false")
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            value = float(text)
            require(math.isfinite(value), f"{name}[{key}={text}] must be a finite number")
            return value
    except ValueError:
        raise SrtbenchError(f"{name}[{key}={text}]: expected a {type(default).__name__}") from None
    return text


# settings every attack takes, with the value that leaves it the plain attack (not recorded then, so its rows keep
# the plain attack's key): EOT's passes (attacks/eot.py) and BPDA's backward pass (attacks/bpda.py)
UNIVERSAL = {"eot": 1, "bpda": ""}
SOURCES = ("checkpoint", "dataset", "command line")  # where a budget came from (the CSV's budget_source)


def trained_budget(threat: dict | None, info: AttackInfo) -> dict[str, float]:
    """The budgets a checkpoint trained against `threat` (its ThreatConfig as a dict) sets for the attack `info`
    describes ({} if none): each budget field of every neighborhood the training and the attack share
    (pixel, spatial, blur, ... or their chains); a pixel-wise budget only where the norms agree."""
    if not isinstance(threat, dict):
        return {}
    try:
        trained = threat_parts(str(threat.get("threat")))
    except SrtbenchError:  # a checkpoint of a threat this version does not know
        return {}
    probed, norm = threat_parts(info.threat), info.norm
    out = {}
    for part in (p for p in trained if p in probed):
        budget = part_budget(threat, part)
        if "norm" in {f.name for f in dataclasses.fields(NEIGHBORHOODS.get(part).Budget)} and \
                budget.get("norm", "linf") != norm:
            continue
        out.update({k: float(v) for k, v in budget.items() if k != "norm"})
    return out


def resolve(spec: str, dataset: str, trained: dict | None = None) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(name, every setting, where each budget came from) of `name[k=v,...]`.

    Defaults are the dataset's (`attack_defaults`); a checkpoint's trained threat (`trained`) replaces the budgets
    it covers (the step size follows ε in proportion: Appendix C's PGD-40 step 0.005 at ε 0.1 is ε/20); settings written
    in the spec win over both.  A budget whose default is 0 belongs to the attack's definition (gridadv.t does
    not rotate) and is not replaced.
    """
    m = SPEC.match(spec)
    require(m is not None, f"cannot parse attack {spec!r}; write name or name[key=value,...]")
    name, body = m.group(1), m.group(2)
    info = attack_info(name)
    params = attack_defaults(name, dataset)
    given = {}
    for item in filter(None, (s.strip() for s in (body or "").split(","))):
        require("=" in item, f"{name}[{item}]: write key=value")
        k, v = (s.strip() for s in item.split("=", 1))
        if k in UNIVERSAL and k not in params:
            params[k] = UNIVERSAL[k]
        require(k in params, f"{name} has no setting {k!r}; settings: {', '.join([*params, *UNIVERSAL])}")
        require(k not in given, f"{name}[...] sets {k} twice")
        given[k] = _convert(v, params[k], k, name)
    sources = {k: "dataset" for k in info.budget if k != "step_size"}
    for k, v in trained_budget(trained, info).items():
        if k in sources and k not in given and params[k] > 0:
            if k == "epsilon" and "step_size" in params:
                params["step_size"] = float(f"{params['step_size'] * v / params['epsilon']:.6g}")
            params[k], sources[k] = v, "checkpoint"
    params.update(given)
    require(params.get("eot", 1) >= 1, f"{name}[eot={params.get('eot')}] must be at least 1 pass")
    require(params.get("bpda", "") in ("", "identity") or all(str(params["bpda"]).partition(":")[::2]),
            f"{name}[bpda={params.get('bpda')}] must be identity or module:function")
    for k, neutral in UNIVERSAL.items():
        if params.get(k) == neutral:
            del params[k]
    sources.update({k: "command line" for k in given if k in sources})
    return name, params, sources


def parse(spec: str, dataset: str) -> tuple[str, dict[str, Any]]:
    """(name, every setting) of `name[k=v,...]`: the dataset's defaults with the overrides applied."""
    name, params, _ = resolve(spec, dataset)
    return name, params


def build(spec: str, dataset: str, fraction: float = 1.0, trained: dict | None = None,
          batch_size: int | None = None) -> BuiltAttack:
    """The attack `spec` on `dataset` (budgets from `trained`, a checkpoint's threat, where it covers them) with
    every budget multiplied by `fraction`; an attack whose draws depend on the batch records `batch_size`."""
    require(math.isfinite(fraction) and 0 <= fraction <= 1, f"fraction must be in [0, 1], got {fraction:g}")
    name, params, sources = resolve(spec, dataset, trained)
    eot, bpda = params.pop("eot", 1), params.pop("bpda", "")
    info = attack_info(name)
    for k in info.budget:
        require(params[k] >= 0, f"{name}[{k}={params[k]:g}] must be >= 0")
    scaled = {k: (v * fraction if k in info.budget else v) for k, v in params.items()}
    try:
        algorithm = ATTACKS.get(name)(**scaled)
    except (TypeError, ValueError) as err:
        raise SrtbenchError(f"{name}: {err}") from None
    adaptive = {k: v for k, v in (("eot", eot), ("bpda", bpda)) if v != UNIVERSAL[k]}
    record = {"library": info.library, **params, **adaptive}  # a `library` setting wins
    if algorithm.batch_dependent and batch_size is not None:
        record["batch_size"] = batch_size
    return BuiltAttack(name, algorithm, info, record, {k: float(scaled[k]) for k in info.budget if k != "step_size"},
                       sources, eot, bpda)
