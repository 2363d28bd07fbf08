"""Results rows pivoted into a table (`build`): its columns, one group of rows per dataset, seeds and reference.

`build` turns results rows into a `Table` (one group per dataset, cells as numbers, "–" where a
result is missing).  Numbers are kept exactly as in the CSVs; rendering rounds them.
"""

from __future__ import annotations

import json

import pandas as pd

from srtbench import attacks, measurements
from srtbench.data import display_order
from srtbench.errors import SrtbenchError
from srtbench.tables.labels import distinguish_models
from srtbench.tables.layouts import COLUMN_SETS, LAYOUTS, Column, Layout
from srtbench.tables.model import Group, Table
from srtbench.tables.paper import _attach_reference
from srtbench.tables.rows import _group_rows, _select, placed_rows
from srtbench.tables.seeds import aggregate_seeds, label_seeds
from srtbench.tables.significance import versus_notes


def _attack_order(name: str) -> tuple[int, str]:
    return attacks.rank(name), name


def _settings(df: pd.DataFrame, attack: str, fraction: float) -> list[str]:
    """The distinct settings (attack_params) an attack was run with at `fraction`, in order of appearance."""
    rows = df[(df["attack"] == attack) & (df["fraction"].astype(float) == fraction)]
    return list(dict.fromkeys(p for p in rows["attack_params"] if isinstance(p, str) and p.strip()))


def _split(column: Column, df: pd.DataFrame) -> list[Column]:
    """One column per distinct setting of its attack (JSMA at γ 0.1 and γ 1 are different columns), headed by the
    settings that differ; rows without settings (published numbers) fall into the first."""
    settings = _settings(df, column.attack, column.fraction)
    if len(settings) < 2:
        return [column]
    parsed = [json.loads(p) for p in settings]
    differ = [k for k in dict.fromkeys(k for p in parsed for k in p) if len({str(p.get(k)) for p in parsed}) > 1]
    return [Column("attack", f"{column.header} [{','.join(f'{k}={p.get(k)}' for k in differ)}]", column.attack,
                   column.fraction, text) for p, text in zip(parsed, settings)]


@COLUMN_SETS.register("attacks")
def _columns(layout: Layout, df: pd.DataFrame) -> tuple[list[Column], list[str]]:
    """Clean, then one column per attack (the layout's, else every one found, each fraction its own column), then
    the "Worst case" over the attacks at fraction 1 where there are two or more."""
    cols = [Column("clean", "Clean")]
    if layout.attacks:
        found = set(df["attack"].astype(str))
        attacked = [Column("attack", attacks.header(a), a, 1.0) for a in layout.attacks
                    if a not in layout.if_found or a in found]
    else:
        pairs = sorted({(str(a), float(f)) for a, f in zip(df["attack"], df["fraction"])},
                       key=lambda p: (_attack_order(p[0]), -p[1]))
        attacked = []
        for a, f in pairs:
            head = attacks.header(a)
            attacked.append(Column("attack", head if f == 1.0 else f"{head} ×{f:g}", a, f))
    cols += [c for col in attacked for c in _split(col, df)]
    if sum(c.kind == "attack" and c.fraction == 1.0 for c in cols) >= 2:
        cols.append(Column("worst", "Worst case"))
    if layout.time:
        cols.append(Column("time", "Time (mins)"))
    return cols, []


def build(df: pd.DataFrame, layout: Layout | str = "auto", reference: pd.DataFrame | None = None,
          per_seed: bool = False, versus: str | None = None) -> Table:
    """Pivot results rows (`results.collect`) into `layout`; with `reference`, each cell also holds
    the reference's number for the same row, column and dataset (or the dataset it stands in for).  Runs that
    differ only in their training seed are one row, mean ± standard deviation over the seeds (`per_seed`: a row
    per seed).  With `versus` (a row's name, e.g. "SRT"), notes test every other row against it, per attack column:
    McNemar per training seed, Welch over seeds (`significance.versus_notes`)."""
    layout = LAYOUTS.get(layout) if isinstance(layout, str) else layout
    published = 0 if layout.published else int(df["checkpoint"].astype(str).str.startswith("paper:").sum())
    df = _select(df, layout)
    if df.empty:
        wanted = ", ".join(layout.attacks) if layout.attacks else "any attack"
        raise SrtbenchError(f"no results for layout {layout.name} (it needs {wanted} at fraction 1.0)")
    df, not_shown = measurements.pick(df)
    seeds: list[int] = []
    if per_seed:
        df = label_seeds(df)
    else:
        df, seeds = aggregate_seeds(df)
    df = distinguish_models(df)
    columns, notes = COLUMN_SETS.get(layout.columns)(layout, df)
    if any(c.kind == "worst" for c in columns) and not df["per_example"].map(
        lambda p: isinstance(p, str) and bool(p.strip())
    ).any():
        columns = [c for c in columns if c.kind != "worst"]  # nothing to compute it from (e.g. the paper's numbers)
    parts = sorted(df.groupby("dataset", sort=False), key=lambda kv: display_order(kv[0]))
    groups = [Group(ds, _group_rows(layout, columns, part)) for ds, part in parts]
    cell_notes = [c.note for g in groups for r in g.rows for c in r.cells if c.note]
    table = Table(layout.title, columns, groups, notes=[*not_shown, *notes, *dict.fromkeys(cell_notes)])
    if published:
        table.notes.append(f"The paper's published numbers ({published} rows) are left out: they record no budget "
                           "and no per-example outcomes")
    if seeds:
        table.notes.append(f"A run trained at several seeds is one row: mean ± standard deviation over its seeds "
                           f"(here {', '.join(map(str, seeds))}); srtbench table --per-seed shows each")
    if reference is not None:
        _attach_reference(table, layout, reference)
    if versus:
        table.notes += versus_notes(versus, [(ds, placed_rows(layout, part)) for ds, part in parts], columns)
    return table
