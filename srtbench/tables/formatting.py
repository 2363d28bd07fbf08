"""How a table prints a number: the one rounding rule (half up), missing values, spreads and ours/paper Δ."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from srtbench.tables.layouts import Column
from srtbench.tables.model import Cell

MISSING = "–"


def round_half_up(value: float, digits: int = 2) -> float:
    """`digits` decimals, half up on the decimal digits as written (55.555 -> 55.56, 15.625 -> 15.63: not the
    binary value's 55.55 and 15.62); the one rounding rule of every table and report."""
    value = float(value)
    if not math.isfinite(value):
        return value
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)) + 0.0  # no -0


def round2(value: float) -> float:
    return round_half_up(value, 2)


def fixed(value: float, digits: int = 2) -> str:
    """A number as srtbench prints it: `digits` decimals, rounded by `round_half_up`."""
    return f"{round_half_up(value, digits):.{digits}f}"


def _spread_text(cell: Cell) -> str:
    return f" ± {fixed(cell.spread)}" if cell.spread is not None and isinstance(cell.value, (int, float)) else ""


def format_value(value: float | str | None, column: Column) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, str):
        return value
    if column.kind == "time":
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    return fixed(value)


def _delta(cell: Cell, column: Column) -> float | None:
    """Ours minus the reference, of the numbers as shown; None where either is not a number."""
    if isinstance(cell.value, (int, float)) and isinstance(cell.reference, (int, float)):
        return round2(cell.value) - round2(cell.reference)
    return None


def _difference(cell: Cell, column: Column) -> str:
    d = _delta(cell, column)
    if d is None:
        return MISSING
    return (f"{d:+.2f}" if column.kind != "time" else f"{d:+,.0f}").replace("-", "−")
