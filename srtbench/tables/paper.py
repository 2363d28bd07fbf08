"""The paper's reference numbers: reading them (`reference_results`) and setting them beside ours (Δ)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from srtbench import measurements, results
from srtbench.data import DATASETS, display_name
from srtbench.errors import SrtbenchError
from srtbench.tables.labels import distinguish_models
from srtbench.tables.layouts import Layout
from srtbench.tables.model import Table
from srtbench.tables.rows import _group_rows, _select

# where a dataset stands in for one of the paper's (`--scale cpu` maps MNIST settings to Fashion-MNIST)
PAPER_DIR = Path(__file__).resolve().parent.parent.parent / "results" / "paper"


def _attach_reference(table: Table, layout: Layout, reference: pd.DataFrame) -> None:
    ref = _select(reference, layout)
    if ref.empty:
        raise SrtbenchError(f"the reference holds nothing for layout {layout.name}")
    ref = distinguish_models(measurements.pick(ref)[0])
    datasets = list(dict.fromkeys(ref["dataset"]))
    table.compared = True
    for group in table.groups:
        stand_in = DATASETS.get(group.dataset).paper_stand_in if group.dataset in DATASETS else None
        ds = group.dataset if group.dataset in datasets else stand_in
        if ds not in datasets:
            ds = datasets[0] if len(datasets) == 1 else None
        if ds is None:
            continue
        group.reference_dataset = ds
        if ds != group.dataset:
            table.notes.append(f"{display_name(group.dataset)} is compared with the paper's "
                               f"{display_name(ds)} numbers")
        ref_rows = {r.label: r for r in _group_rows(layout, table.columns, ref[ref["dataset"] == ds])}
        for row in group.rows:
            other = ref_rows.get(row.label)
            if other is not None:
                for mine, theirs in zip(row.cells, other.cells):
                    mine.reference = theirs.value


def reference_results(name: str) -> pd.DataFrame:
    """`--compare paper` reads results/paper/; any other value is a results file or folder."""
    if name == "paper":
        if not PAPER_DIR.is_dir():
            raise SrtbenchError(f"the paper's numbers are not installed ({PAPER_DIR} is missing)")
        return results.collect([PAPER_DIR])
    return results.collect([name])
