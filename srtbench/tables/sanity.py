"""The sanity-flags table (`flags`): how many flags of each evaluation row PASS, and each WARN with its detail."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from srtbench.errors import SrtbenchError
from srtbench.tables.formatting import MISSING
from srtbench.tables.labels import distinguish_models
from srtbench.tables.layouts import Column
from srtbench.tables.model import Cell, Group, Row, Table


def per_evaluation_row(df: pd.DataFrame, title: str, headers: tuple[str, ...],
                       describe: Callable[[pd.Series], list[str]], what: str) -> Table:
    """One row per evaluation row, grouped by dataset (the paper's numbers, which carry no `what`, left out): its
    attack, fraction and n, then the cells `describe` makes of it under `headers`."""
    df = df[~df["checkpoint"].astype(str).str.startswith("paper:")]
    if df.empty:
        raise SrtbenchError(f"no evaluation rows (the paper's numbers carry no {what})")
    df = distinguish_models(df)  # two files named m.pt under one label stay apart
    rows = []
    for _, r in df.iterrows():
        lead = [str(r["attack"]), f"{float(r['fraction']):g}" if pd.notna(r["fraction"]) else MISSING,
                str(int(r["n"])) if pd.notna(r["n"]) else MISSING]
        rows.append(Row(f"{r['label']} ({Path(str(r['checkpoint'])).name})", [Cell(c) for c in lead + describe(r)]))
    columns = [Column("text", h) for h in ("attack", "fraction", "n", *headers)]
    groups = [Group(ds, [row for row, d in zip(rows, df["dataset"]) if d == ds]) for ds in dict.fromkeys(df["dataset"])]
    return Table(title, columns, groups)


def _flag_text(r: pd.Series) -> list[str]:
    found = r["flags"]
    found = json.loads(found) if isinstance(found, str) and found.strip() else found
    found = found if isinstance(found, dict) else {}
    warns = [f"{name}: {f.get('detail', '')}" for name, f in sorted(found.items()) if f.get("status") != "PASS"]
    passed = sum(f.get("status") == "PASS" for f in found.values())
    return [f"{passed} PASS" + ("; WARN " + "; ".join(warns) if warns else "") if found else "none recorded"]


def flags(df: pd.DataFrame) -> Table:
    """The sanity flags of every evaluation row: how many PASS, and each WARN with its detail."""
    return per_evaluation_row(df, "Sanity flags of every evaluation", ("sanity flags",), _flag_text, "sanity flags")
