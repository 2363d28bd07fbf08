"""The cost table (`cost`): the compute behind each evaluation row, its forward and backward passes per example
(so an attack can be checked against its pass floor: PGD-K needs about K of each), wall time and peak memory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from srtbench.errors import SrtbenchError
from srtbench.tables.formatting import MISSING
from srtbench.tables.labels import distinguish_models
from srtbench.tables.layouts import Column
from srtbench.tables.model import Cell, Group, Row, Table

HEADERS = ("attack", "fraction", "n", "forward / example", "backward / example", "wall s", "peak MiB", "device")


def _number(value, digits: int) -> str:
    return f"{float(value):,.{digits}f}" if pd.notna(value) and str(value).strip() != "" else MISSING


def _per_example(row: pd.Series, column: str) -> str:
    if column not in row or pd.isna(row[column]) or pd.isna(row["n"]) or not float(row["n"]):
        return MISSING  # a row written before srtbench counted passes
    return _number(float(row[column]) / float(row["n"]), 1)


def cost(df: pd.DataFrame) -> Table:
    """Every evaluation row's cost; '–' where the row predates the count (the paper's numbers carry none)."""
    df = df[~df["checkpoint"].astype(str).str.startswith("paper:")]
    if df.empty:
        raise SrtbenchError("no evaluation rows (the paper's numbers carry no cost)")
    df = distinguish_models(df)
    rows = []
    for _, r in df.iterrows():
        cells = [str(r["attack"]), f"{float(r['fraction']):g}", str(int(r["n"])) if pd.notna(r["n"]) else MISSING,
                 _per_example(r, "forward_passes"), _per_example(r, "backward_passes"),
                 _number(r.get("wall_time_s"), 1), _number(r.get("peak_memory_mb"), 0),
                 str(r["device"]) if pd.notna(r.get("device")) else MISSING]
        rows.append(Row(f"{r['label']} ({Path(str(r['checkpoint'])).name})", [Cell(c) for c in cells]))
    columns = [Column("text", h) for h in HEADERS]
    groups = [Group(ds, [row for row, d in zip(rows, df["dataset"]) if d == ds]) for ds in dict.fromkeys(df["dataset"])]
    return Table("The compute behind every evaluation row", columns, groups)
