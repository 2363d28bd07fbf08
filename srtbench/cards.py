"""Model cards: one plain-data record (JSON-able) per model × dataset × threat, built from results rows.

A card is RobustBench's record of a model (its name, source, architecture, training data, threat, budget, clean and
AutoAttack accuracy, the paper's reported number, the compute of its evaluation, the evaluation date) with what
srtbench measures beside it: every attack's accuracy with its 95% Wilson interval, settings and cost, the
per-example worst case over the threat's attacks, the sanity flags, and the srtbench version and git commit that
wrote the rows.  Its `forward_passes` and `backward_passes` are what its attacks cost (images through the model,
summed over its rows; None where a row predates the count): RobustBench's `number_forward_passes` counts the passes of
one prediction instead.  A threat is the group where the worst case over attacks is taken (`AttackInfo.group`: "pixel
linf", "spatial", ...); the attacks this version does not register share one, "unregistered".

`build_cards(frame)` takes `results.collect(...)` rows: the paper's published numbers among them (checkpoint
`paper:tableN`) are no cards but the `reported` numbers of the cards whose row they name.  One measurement per model
and attack is kept, as the tables keep it (`measurements.pick`).  `card_filename(card)` is a file name that no label
can turn into a path elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from srtbench import attacks, measurements, results
from srtbench.data import DATASETS, display_name, display_order
from srtbench.errors import SrtbenchError
from srtbench.files import safe_name
from srtbench.tables.labels import distinguish_models
from srtbench.tables.layouts import _bare_name, row_key
from srtbench.tables.profile import group_budget, group_text
from srtbench.tables.worst import worst_case_accuracy

CARD_VERSION = 1
UNREGISTERED = "unregistered"  # the threat of an attack this version does not register
AUTOATTACK = "autoattack"
TRAINING = {"defense": "defense", "defense_params": "defense_params", "threat": "train_threat",
            "budget": "train_budget", "seed": "train_seed", "labeled": "n_labeled", "unlabeled": "n_unlabeled",
            "preset": "preset", "time_s": "train_time_s"}  # a card's training fact: its results column


def threat_of(attack: str) -> str:
    """The threat group an attack's worst case is taken in (`AttackInfo.group`), or UNREGISTERED."""
    return attacks.attack_info(attack).group if attack in attacks.ATTACKS else UNREGISTERED


def threat_name(threat: str) -> str:
    """A threat group as the tables head it: "pixel ℓ∞"."""
    return group_text(threat)


def value(x: Any) -> Any:
    """A cell as JSON holds it: None where missing or not finite, numbers as int or float, text as str."""
    if x is None or isinstance(x, (str, dict, list)):
        return x
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return None if pd.isna(x) else str(x)


def _whole(x: Any) -> int | None:
    number = value(x)
    return int(number) if isinstance(number, (int, float)) and math.isfinite(number) else None


def _json(x: Any) -> dict:
    if isinstance(x, dict):
        return x
    return json.loads(x) if isinstance(x, str) and x.strip() else {}


def interval(row: pd.Series) -> list[float | None]:
    """The row's 95% Wilson interval of robust_acc: as recorded, else from its accuracy and n (`wilson_interval`)."""
    low, high = value(row.get("robust_ci_low")), value(row.get("robust_ci_high"))
    n = _whole(row.get("n"))
    if (low is None or high is None) and n and value(row.get("robust_acc")) is not None:
        low, high = results.wilson_interval(round(float(row["robust_acc"]) * n / 100), n)
    return [low, high]


def attack_entry(row: pd.Series) -> dict[str, Any]:
    """One results row of a card: the attack, its settings and budget, its accuracies, interval, cost and flags."""
    name = str(row["attack"])
    entry = {"attack": name, "header": attacks.header(name), "fraction": value(row.get("fraction")),
             "settings": _json(row.get("attack_params")), "budget": _json(row.get("budget")),
             "budget_source": _json(row.get("budget_source")), "n": _whole(row.get("n")),
             "seed": _whole(row.get("seed")), "split": value(row.get("split")),
             "clean_acc": value(row.get("clean_acc")), "robust_acc": value(row.get("robust_acc")),
             "ci95": interval(row)}
    for column in ("mean_distance", "median_distance", "wall_time_s", "peak_memory_mb", "device",
                   "srtbench_version", "git_commit", "command", "timestamp"):
        entry[column] = value(row.get(column))
    entry["forward_passes"], entry["backward_passes"] = _whole(row.get("forward_passes")), \
        _whole(row.get("backward_passes"))
    entry["flags"] = _json(row.get("flags"))
    entry["results"] = value(row.get("source"))
    return entry


def merged_flags(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every flag of a card's rows: WARN if any row warns, its distinct details (warnings first) and the attacks
    whose rows warn."""
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        for name, flag in sorted(entry["flags"].items()):
            status = "PASS" if flag.get("status") == "PASS" else "WARN"
            mine = out.setdefault(name, {"status": "PASS", "details": [], "warned_by": []})
            detail = str(flag.get("detail", ""))
            if status == "WARN":
                mine["status"] = "WARN"
                mine["warned_by"] += [entry["attack"]] if entry["attack"] not in mine["warned_by"] else []
                mine["details"] = [detail, *[d for d in mine["details"] if d != detail]]
            elif detail and detail not in mine["details"]:
                mine["details"].append(detail)
    return out


def _headline(full: pd.DataFrame, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Clean, AutoAttack, strongest attack and per-example worst case, from the rows at the full budget."""
    attacked = [e for e in entries if e["fraction"] == 1.0 and e["robust_acc"] is not None]
    auto = [e["robust_acc"] for e in attacked if e["attack"] == AUTOATTACK]
    strongest = min(attacked, key=lambda e: e["robust_acc"], default=None)
    return {"autoattack_acc": min(auto) if auto else None,
            "strongest_attack": {"attack": strongest["attack"], "header": strongest["header"],
                                 "robust_acc": strongest["robust_acc"]} if strongest else None,
            "worst_case_acc": worst_case_accuracy([r for _, r in full.iterrows()]) if len(full) else None}


def _clean(rows: pd.DataFrame) -> float | None:
    """Clean accuracy from the row evaluated on the most examples (as the tables' Clean column)."""
    known = rows[rows["clean_acc"].notna()]
    if known.empty:
        return None
    return value(known.loc[pd.to_numeric(known["n"], errors="coerce").fillna(0).idxmax(), "clean_acc"])


def _training(row: pd.Series) -> dict[str, Any]:
    out = {key: value(row.get(column)) for key, column in TRAINING.items()}
    out["defense_params"], out["budget"] = _json(row.get("defense_params")), _json(row.get("train_budget"))
    for key in ("seed", "labeled", "unlabeled"):
        out[key] = _whole(row.get(TRAINING[key]))
    out["additional_data"] = None if out["unlabeled"] is None else out["unlabeled"] > 0
    return out


def _latest(rows: pd.DataFrame) -> pd.Series:
    """The most recently written row (by its timestamp; the last one where none is recorded)."""
    when = pd.to_datetime(rows["timestamp"], errors="coerce", utc=True)
    return rows.loc[when.idxmax()] if when.notna().any() else rows.iloc[-1]


def _total(entries: list[dict[str, Any]], key: str) -> int | None:
    counts = [e[key] for e in entries]
    return sum(counts) if counts and None not in counts else None


def _card(rows: pd.DataFrame, threat: str, paper: pd.DataFrame) -> dict[str, Any]:
    first, latest = rows.iloc[0], _latest(rows)
    rows = rows.sort_values(["attack", "fraction"], key=lambda s: s.map(attacks.rank) if s.name == "attack"
                            else -pd.to_numeric(s, errors="coerce"), kind="stable")
    entries = [attack_entry(r) for _, r in rows.iterrows()]
    full = rows[pd.to_numeric(rows["fraction"], errors="coerce") == 1.0]
    dataset, label = str(first["dataset"]), str(first["label"])
    when = pd.to_datetime(latest.get("timestamp"), errors="coerce", utc=True)
    card = {"card_version": CARD_VERSION, "name": label, "row_name": str(first["row_name"]),
            "source": {"checkpoint": value(first.get("checkpoint")), "sha256": value(first.get("checkpoint_sha256")),
                       "results": sorted({str(s) for s in rows["source"].dropna()})},
            "architecture": value(first.get("model")), "dataset": dataset, "dataset_name": display_name(dataset),
            "training": _training(first), "threat": threat, "threat_name": threat_name(threat),
            "budget": json.loads(group_budget(full) or "{}") if len(full) and threat != UNREGISTERED else {},
            "clean_acc": _clean(rows)}
    card.update(_headline(full, entries))
    card["reported"] = reported(paper, label, dataset, {e["attack"] for e in entries if e["fraction"] == 1.0})
    card.update(forward_passes=_total(entries, "forward_passes"), backward_passes=_total(entries, "backward_passes"),
                evaluated=None if pd.isna(when) else when.date().isoformat(),
                srtbench_version=value(latest.get("srtbench_version")), git_commit=value(latest.get("git_commit")),
                attacks=entries, flags=merged_flags(entries))
    return card


def reported(paper: pd.DataFrame, label: str, dataset: str, attacked: set[str]) -> list[dict[str, Any]]:
    """The paper's numbers for a row of this name (as the tables match names: λ's spelling aside, else without λ)
    on this dataset or the one it stands in for, under the card's attacks: one entry per paper table."""
    if paper.empty:
        return []
    stand_in = DATASETS.get(dataset).paper_stand_in if dataset in DATASETS else None
    mine = paper[paper["dataset"].isin({dataset, stand_in} - {None}) & paper["attack"].isin(attacked)]
    keys = mine["label"].astype(str).map(row_key)
    key = row_key(label)
    hit = mine[keys == key] if (keys == key).any() else mine[keys == _bare_name(key)]
    out = []
    for (table, name, ds), rows in hit.groupby(["checkpoint", "label", "dataset"], sort=False):
        out.append({"table": str(table).removeprefix("paper:"), "label": str(name), "dataset": str(ds),
                    "clean_acc": value(rows["clean_acc"].iloc[0]),
                    "robust_acc": {str(r["attack"]): value(r["robust_acc"]) for _, r in rows.iterrows()}})
    return out


def published(frame: pd.DataFrame) -> pd.Series:
    """Which rows are the paper's published numbers (checkpoint `paper:tableN`)."""
    return frame["checkpoint"].astype(str).str.startswith("paper:")


def published_rows(frame: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's numbers among `frame`'s rows and in `reference`, each once."""
    paper = pd.concat([frame[published(frame)], *([] if reference is None else [reference])], ignore_index=True)
    return paper.drop_duplicates(["checkpoint", "label", "dataset", "attack", "fraction"]) if len(paper) else paper


def build_cards(frame: pd.DataFrame, reference: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """One card per model × dataset × threat of the evaluation rows in `frame` (`results.collect`), ordered by
    dataset, threat and row; `reference` adds published numbers to those in `frame` (`tables.reference_results`)."""
    frame = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *results.COLUMNS, "source"])))
    paper = published_rows(frame, reference)
    ours = frame[~published(frame)]
    if ours.empty:
        raise SrtbenchError("no evaluation rows to make cards of (the paper's published numbers are no models)")
    ours, _ = measurements.pick(ours)
    ours = ours.assign(row_name=distinguish_models(ours)["label"],
                       _identity=[measurements.identity(r) for _, r in ours.iterrows()],
                       _threat=[threat_of(str(a)) for a in ours["attack"]])
    cards = []
    for _, model in ours.groupby(["_identity", "label", "dataset"], sort=False):
        for threat, rows in model.groupby("_threat", sort=False):
            cards.append(_card(rows, str(threat), paper))
    threats = {c["threat"]: min(attacks.rank(e["attack"]) for e in c["attacks"]) for c in cards}
    return sorted(cards, key=lambda c: (display_order(c["dataset"]), threats[c["threat"]], c["threat"]))


def short_id(card: dict[str, Any]) -> str:
    """Twelve hex digits that tell the card's model apart: its checkpoint's hash, else a hash of its path."""
    sha = str(card["source"].get("sha256") or "")
    if not sha:
        sha = hashlib.sha256(str(card["source"].get("checkpoint") or card["name"]).encode()).hexdigest()
    return safe_name(sha[:12])


def file_stem(card: dict[str, Any], threat: bool = True) -> str:
    """`DATASET--THREAT--NAME--ID` (`threat=False`: the model's, without it), letters, digits and `._+-` only
    (`files.safe_name`): no label, dataset or threat can name a folder or climb out of one."""
    parts = [safe_name(card["dataset"])[:40], *([safe_name(card["threat"])[:40]] if threat else []),
             safe_name(card["name"])[:60], short_id(card)]
    return "--".join(parts)


def card_filename(card: dict[str, Any]) -> str:
    """The card's JSON file name: `file_stem(card)` + `.json`."""
    return file_stem(card) + ".json"


def to_json(card: dict[str, Any]) -> str:
    """A card as written: indented, keys in the card's order, non-ASCII as written, no NaN (JSON has none)."""
    return json.dumps(card, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def checkpoint_rows(frame: pd.DataFrame, digests: list[str], model: str | None = None) -> pd.DataFrame:
    """The rows of one checkpoint among results: those of the first of `digests` (its SHA-256 as a .pt, as an
    export) that has any, and with `model` only those of its own model (not inside a broken defense or behind a
    --preprocess).  Empty where none has rows."""
    own = frame if model is None else frame[frame["model"].astype(str) == model]
    for digest in digests:
        mine = own[own["checkpoint_sha256"].astype(str) == digest]
        if len(mine):
            return mine
    return own.iloc[:0]
