"""The threat profile (`--layout threats`): per model, the per-example worst case under each threat group, then
their mean and minimum.

A threat group is where the worst case over attacks is taken (`AttackInfo.group`: "pixel linf", "spatial", "blur",
and whatever a new attack's registration names), so the columns come from the attack registry, ordered by its first
attack of each group (`attacks.rank`).  A model's cell of a group is the per-example worst case over its rows of that
group's attacks at fraction 1 (`worst._worst_cell`, as the "Worst case" column); only where a per-example file is
missing, it is the lowest of those rows' accuracies, and a note says so.  A column's header states its budget: the
largest budget per name over the group's attacks (GridAdv's 30°, 3 px covers GridAdv.T's 0°, 3 px), read from the
rows' `budget`; a group attacked at several budgets across models gets one column per budget, and a note.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from srtbench import attacks
from srtbench.errors import SrtbenchError
from srtbench.tables.layouts import COLUMN_SETS, Column, Layout
from srtbench.tables.model import Cell
from srtbench.tables.rows import CELLS, RowResults, _std
from srtbench.tables.worst import _worst_cell

NORM_TEXT = {"linf": "ℓ∞", "l2": "ℓ2", "l0": "ℓ0"}  # a pixel-wise group's norm as the paper writes it
# a budget as a header states it, by its name (a threat's Budget field); any other name is written "name value"
BUDGET_TEXT = {"epsilon": "ε {}", "gamma": "γ {}", "rotation": "{}°", "translation": "{} px", "sigma": "σ ≤ {}"}
MEAN, MIN = "Mean over threats", "Min over threats"
INCOMPLETE = (f"{MEAN} and {MIN} need a value in every threat group shown: '–' where a model was not attacked "
              "with one of them")


def group_text(group: str) -> str:
    return " ".join(NORM_TEXT.get(word, word) for word in group.split())


def budget_text(budget: str) -> str:
    if not budget:
        return "(budget not recorded)"
    return ", ".join(BUDGET_TEXT.get(k, f"{k} {{}}").format(f"{v:g}") for k, v in json.loads(budget).items())


def _group_rank(group: str) -> int:
    """The registry's place of the group's first attack: columns follow the attack battery's order."""
    return min(attacks.rank(a) for a in attacks.ATTACKS.names() if attacks.attack_info(a).group == group)


def threat_rows(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One model's rows at fraction 1 of registered attacks, by threat group, each in the battery's order."""
    rows = rows[(rows["fraction"].astype(float) == 1.0) & rows["attack"].isin(attacks.ATTACKS.names())]
    rows = rows.sort_values("attack", key=lambda names: names.map(attacks.rank), kind="stable")
    groups = [attacks.attack_info(str(a)).group for a in rows["attack"]]
    return {g: rows[[x == g for x in groups]] for g in dict.fromkeys(groups)}


def group_budget(rows: pd.DataFrame) -> str:
    """The threat set the rows' attacks cover together: per budget name the largest value over the rows, as JSON in
    the order the names first appear; "" where a row records no budget."""
    largest: dict[str, float] = {}
    for text in rows["budget"]:
        if not isinstance(text, str) or not text.strip():
            return ""
        for name, value in json.loads(text).items():
            # a budget scaled by a fraction carries float noise (1.2000000000000002): equal as printed is equal
            value = float(f"{float(value):.6g}")
            largest[name] = max(largest.get(name, value), value)
    return json.dumps(largest)


@COLUMN_SETS.register("threats")
def threat_columns(layout: Layout, df: pd.DataFrame) -> tuple[list[Column], list[str]]:
    """Clean, one column per threat group and budget found (registry order, budgets ascending), then the mean and
    minimum over the groups; notes where a group has several budgets or its models faced different attacks."""
    found: dict[tuple[str, str], dict[str, int]] = {}  # (group, budget) -> {the attacks a model faced: models}
    for _, rows in df.groupby([df["dataset"], df["label"].astype(str)], sort=False):
        for group, part in threat_rows(rows).items():
            faced = found.setdefault((group, group_budget(part)), {})
            names = ", ".join(dict.fromkeys(part["attack"].astype(str)))
            faced[names] = faced.get(names, 0) + 1
    if not found:
        raise SrtbenchError("no results of a registered attack at fraction 1.0: no threat to profile")
    keys = sorted(found, key=lambda k: (_group_rank(k[0]), k[0], sorted(json.loads(k[1] or "{}").items())))
    columns = [Column("clean", "Clean")]
    columns += [Column("threat", f"{group_text(g)} {budget_text(b)}", group=g, budget=b) for g, b in keys]
    columns += [Column("mean", MEAN), Column("min", MIN)]
    notes = []
    for group in dict.fromkeys(g for g, _ in keys):
        budgets = [b for g, b in keys if g == group]
        if len(budgets) > 1:
            counts = "; ".join(f"{budget_text(b)} ({_models(sum(found[(group, b)].values()))})" for b in budgets)
            notes.append(f"{group_text(group)} was attacked at several budgets ({counts}): one column per budget, "
                         f"and {MEAN} and {MIN} take each model's own")
    for (group, budget), faced in found.items():
        if len(faced) > 1:
            sets = "; ".join(f"{names} ({_models(n)})" for names, n in faced.items())
            notes.append(f"{group_text(group)} {budget_text(budget)}: the models faced different attacks ({sets}), so "
                         "its worst case is over more attacks for some")
    unknown = [str(a) for a in dict.fromkeys(df["attack"]) if a not in attacks.ATTACKS]
    if unknown:
        notes.append(f"Left out: {', '.join(unknown)}, not in this version's attack registry (no threat group)")
    return columns, notes


def _models(n: int) -> str:
    return f"{n} model{'s' * (n != 1)}"


@CELLS.register("threat")
def _threat_cell(col: Column, row: RowResults) -> Cell:
    rows = threat_rows(row.rows).get(col.group)
    if rows is None or group_budget(rows) != col.budget:
        return Cell(None)
    cell = _worst_cell([r for _, r in rows.iterrows()])
    accuracies = rows["robust_acc"].astype(float)
    if cell.value is not None or accuracies.isna().all():
        return cell
    lowest = rows.loc[accuracies.idxmin()]
    return Cell(float(lowest["robust_acc"]), spread=_std(lowest, "robust_std"),
                note=f"{row.label}: {col.header} is the lowest accuracy of its attacks, not the worst case per "
                     "example (a per-example file is missing; evaluate it again to write them), which may be lower")


def _group_values(row: RowResults) -> dict[str, float | None]:
    """The row's value per threat group shown (a group split by budget: the column the model was attacked at)."""
    values: dict[str, float | None] = {}
    for col, cell in zip(row.columns, row.cells):
        if col.kind == "threat" and values.get(col.group) is None:
            number = isinstance(cell.value, (int, float)) and not math.isnan(cell.value)
            values[col.group] = float(cell.value) if number else None
    return values


def _over_groups(row: RowResults, combine) -> Cell:
    values = list(_group_values(row).values())
    if not values or None in values:
        return Cell(None, note=INCOMPLETE)
    return Cell(combine(values))


@CELLS.register("mean")
def _mean_cell(col: Column, row: RowResults) -> Cell:
    return _over_groups(row, lambda values: sum(values) / len(values))


@CELLS.register("min")
def _min_cell(col: Column, row: RowResults) -> Cell:
    return _over_groups(row, min)
