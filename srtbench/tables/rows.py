"""A layout's rows: which results rows a layout shows, and the cells of each displayed row (`_group_rows`, by the
column's kind through CELLS)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from srtbench.registry import Registry
from srtbench.tables.layouts import Column, Layout, _bare_name, row_key
from srtbench.tables.model import Cell, Row
from srtbench.tables.worst import _worst_cell


def _select(df: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    tags = df["checkpoint"].astype(str)
    published = tags.str.startswith("paper:")
    # the paper's numbers of other tables do not belong here (Tables 4 and 9 print TRADES differently), nor any in
    # a layout that reads what they do not record (budgets, per-example outcomes)
    if layout.paper or not layout.published:
        df = df[~published | ((tags == layout.paper) & layout.published)]
    if layout.attacks:
        df = df[df["attack"].isin(layout.attacks) & (df["fraction"].astype(float) == 1.0)]
    return df


def _assign_rows(layout: Layout, labels: Sequence[str]) -> dict[str, str]:
    """Result label -> displayed row: the layout's row of the same name, else (when no label has that name) of the
    same name without the run's notes (Table 3's "SRT" is "SRT (λ = 0.2)", the steps protocol's "AT" is
    "AT (4,800 steps)"), else the label itself as an extra row."""
    by_key = {row_key(r): r for r in layout.rows}
    out: dict[str, str] = {}
    for label in labels:  # the first label of a row's own name takes it
        if row_key(label) in by_key and by_key[row_key(label)] not in out.values():
            out[label] = by_key[row_key(label)]
    taken = set(out.values())
    for label in labels:
        if label not in out:
            row = by_key.get(_bare_name(row_key(label)))
            out[label] = label if row is None or row in taken else row
            taken.add(out[label])
    return out


def _clean_value(rows: pd.DataFrame) -> Cell:
    """Clean accuracy of a checkpoint (or the mean over a run's seeds): from its row evaluated on the most examples."""
    rows = rows.dropna(subset=["clean_acc"])
    if rows.empty:
        return Cell(None)
    n = pd.to_numeric(rows["n"], errors="coerce").fillna(0)
    best = rows.loc[n.idxmax()]
    return Cell(float(best["clean_acc"]), spread=_std(best, "clean_std"))


def _std(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    return float(value) if value is not None and pd.notna(value) else None


def _parse_minutes(text: str) -> float | str | None:
    """The paper prints minutes with thousands separators ("1,654"); anything else is kept verbatim."""
    text = str(text).strip()
    if not text or text.lower() == "nan":
        return None
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?|\d+(\.\d+)?", text):
        return float(text.replace(",", ""))
    return text


def _time_value(rows: pd.DataFrame) -> float | str | None:
    """Training time in minutes: a published row's `train_time_min`, else the row's recorded `train_time_s`."""
    for _, r in rows.iterrows():
        if "train_time_min" in r and pd.notna(r["train_time_min"]):
            return _parse_minutes(r["train_time_min"])
        if pd.notna(r.get("train_time_s")):
            return float(r["train_time_s"]) / 60
    return None


def _hits(rows: dict[tuple[str, float], pd.DataFrame], col: Column) -> pd.DataFrame:
    """The rows of one model (split by attack and fraction: `_by_attack`) that fill column `col` (its attack, fraction
    and, where split, settings)."""
    hit = rows.get((col.attack, col.fraction), _NONE)
    if col.params is not None:
        hit = hit[(hit["attack_params"] == col.params) | hit["attack_params"].isna()]
    return hit


_NONE = pd.DataFrame({"attack_params": pd.Series(dtype=object), "robust_acc": pd.Series(dtype=float)})


def _by_attack(rows: pd.DataFrame) -> dict[tuple[str, float], pd.DataFrame]:
    return {(str(a), float(f)): g for (a, f), g in rows.groupby([rows["attack"], rows["fraction"].astype(float)],
                                                                 sort=False)}


@dataclass
class RowResults:
    """What fills one displayed row: its name, its results rows (every attack and fraction), the same split by attack
    and fraction (`_by_attack`), the table's columns, and the cells filled so far (those left of the one filled)."""

    label: str
    rows: pd.DataFrame
    by_attack: dict[tuple[str, float], pd.DataFrame]
    columns: list[Column]
    cells: list[Cell] = field(default_factory=list)


# a column's cell by its kind: fn(column, row) -> Cell; the threat profile registers its own kinds (profile.py)
CELLS: Registry[Callable[[Column, RowResults], Cell]] = Registry("column kind")


@CELLS.register("clean")
def _clean_cell(col: Column, row: RowResults) -> Cell:
    return _clean_value(row.rows)


@CELLS.register("attack")
def _attack_cell(col: Column, row: RowResults) -> Cell:
    hit = _hits(row.by_attack, col)
    if len(hit) and pd.notna(hit["robust_acc"].iloc[0]):
        return Cell(float(hit["robust_acc"].iloc[0]), spread=_std(hit.iloc[0], "robust_std"))
    return Cell(None)


@CELLS.register("time")
def _time_cell(col: Column, row: RowResults) -> Cell:
    return Cell(_time_value(row.rows))


@CELLS.register("worst")
def _worst_case_cell(col: Column, row: RowResults) -> Cell:
    attacked = [c for c in row.columns if c.kind == "attack" and c.fraction == 1.0]
    hits = [_hits(row.by_attack, c) for c in attacked]
    return _worst_cell([h.iloc[0] for h in hits]) if all(len(h) for h in hits) else Cell(None)


def placed_rows(layout: Layout, df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The displayed rows of one dataset in the table's order: each one's name and the results rows placed on it
    (`_assign_rows`; none where the layout's row has no result)."""
    labels = list(dict.fromkeys(df["label"].astype(str)))
    placement = _assign_rows(layout, labels)
    order = list(layout.rows) + [placement[lb] for lb in labels if placement[lb] not in layout.rows]
    by_row = {placement[lb]: lb for lb in labels}
    by_label = dict(list(df.groupby(df["label"].astype(str), sort=False)))
    return [(name, by_label.get(by_row.get(name), df.iloc[0:0])) for name in order]


def _group_rows(layout: Layout, columns: list[Column], df: pd.DataFrame) -> list[Row]:
    out = []
    for name, mine in placed_rows(layout, df):
        row = RowResults(name, mine, _by_attack(mine), columns)
        for col in columns:
            row.cells.append(CELLS.get(col.kind)(col, row))
        out.append(Row(name, row.cells))
    return out
