"""The sanity-flags table (`flags`): how many flags of each evaluation row PASS, and each WARN with its detail."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from srtbench.errors import SrtbenchError
from srtbench.tables.formatting import MISSING
from srtbench.tables.labels import distinguish_models
from srtbench.tables.layouts import Column
from srtbench.tables.model import Cell, Group, Row, Table


def flags(df: pd.DataFrame) -> Table:
    """The sanity flags of every evaluation row: how many PASS, and each WARN with its detail."""
    df = df[~df["checkpoint"].astype(str).str.startswith("paper:")]
    if df.empty:
        raise SrtbenchError("no evaluation rows (the paper's numbers carry no sanity flags)")
    df = distinguish_models(df)  # two files named m.pt under one label stay apart
    rows = []
    for _, r in df.iterrows():
        found = r["flags"]
        found = json.loads(found) if isinstance(found, str) and found.strip() else found
        found = found if isinstance(found, dict) else {}
        warns = [f"{name}: {f.get('detail', '')}" for name, f in sorted(found.items()) if f.get("status") != "PASS"]
        passed = sum(f.get("status") == "PASS" for f in found.values())
        text = f"{passed} PASS" + ("; WARN " + "; ".join(warns) if warns else "")
        cells = [Cell(str(r["attack"])), Cell(f"{float(r['fraction']):g}" if pd.notna(r["fraction"]) else MISSING),
                 Cell(str(int(r["n"])) if pd.notna(r["n"]) else MISSING),
                 Cell(text if found else "none recorded")]
        rows.append(Row(f"{r['label']} ({Path(str(r['checkpoint'])).name})", cells))
    columns = [Column("text", h) for h in ("attack", "fraction", "n", "sanity flags")]
    groups = [Group(ds, [row for row, d in zip(rows, df["dataset"]) if d == ds]) for ds in dict.fromkeys(df["dataset"])]
    return Table("Sanity flags of every evaluation", columns, groups)
