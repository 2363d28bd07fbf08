"""The cost table (`cost`): the compute behind each evaluation row, its forward and backward passes per example
(so an attack can be checked against its pass floor: PGD-K needs about K of each), wall time and peak memory."""

from __future__ import annotations

import pandas as pd

from srtbench.tables.formatting import MISSING
from srtbench.tables.model import Table
from srtbench.tables.sanity import per_evaluation_row

HEADERS = ("forward / example", "backward / example", "wall s", "peak MiB", "device")


def _number(value, digits: int) -> str:
    return f"{float(value):,.{digits}f}" if pd.notna(value) and str(value).strip() != "" else MISSING


def _per_example(row: pd.Series, column: str) -> str:
    if column not in row or pd.isna(row[column]) or pd.isna(row["n"]) or not float(row["n"]):
        return MISSING  # a row written before srtbench counted passes
    return _number(float(row[column]) / float(row["n"]), 1)


def _cost_cells(r: pd.Series) -> list[str]:
    return [_per_example(r, "forward_passes"), _per_example(r, "backward_passes"), _number(r.get("wall_time_s"), 1),
            _number(r.get("peak_memory_mb"), 0), str(r["device"]) if pd.notna(r.get("device")) else MISSING]


def cost(df: pd.DataFrame) -> Table:
    """Every evaluation row's cost; '–' where the row predates the count (the paper's numbers carry none)."""
    return per_evaluation_row(df, "The compute behind every evaluation row", HEADERS, _cost_cells, "cost")
