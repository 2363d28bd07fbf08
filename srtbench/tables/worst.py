"""The "Worst case" column: the per-example worst case over a row's attacks, read from its per-example side files.

An example counts as robust only if every attack failed on it (`outcomes.worst_case`); "–" where any file is missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from srtbench import results
from srtbench.errors import SrtbenchError
from srtbench.files import inside
from srtbench.tables.model import Cell


def _per_example_path(row: pd.Series) -> Path | None:
    """The row's per-example file: it must lie in its CSV's side folder (NAME.examples/) and be named for the row's
    checkpoint and attack, so that a row cannot borrow another model's outcomes or read any other file."""
    rel = row.get("per_example")
    if rel is None or pd.isna(rel) or not str(rel).strip():
        return None
    csv = Path(str(row["source"]))
    path = csv.parent / str(rel)
    inside(csv.parent / f"{csv.stem}.examples", path, f"{csv}: per_example")
    own = f"{str(row.get('checkpoint_sha256', ''))[:12]}-{row['attack']}-"
    if not path.name.startswith(own):
        raise SrtbenchError(f"{csv}: per_example {rel} is not the file of its row ({row['attack']} of checkpoint "
                            f"{own[:12]}...)")
    return path if path.is_file() else None


def row_examples(row: pd.Series):
    """The row's per-example outcomes (`outcomes.Examples`), or None where it has no per-example file."""
    from srtbench.outcomes import Examples

    path = _per_example_path(row)
    return None if path is None else Examples.from_dict(results.read_per_example(path))


def worst_case_accuracy(rows: Sequence[pd.Series]) -> float | None:
    """Percent of examples that every attack failed on (`outcomes.worst_case`), over the examples all of them
    evaluated (`outcomes.common_examples`); None where a row has no per-example file."""
    from srtbench.outcomes import accuracy, common_examples, worst_case

    loaded = [row_examples(r) for r in rows]
    if any(e is None for e in loaded):
        return None
    if not loaded:
        return None
    aligned = common_examples(loaded)
    if not len(aligned[0].index):
        return None
    return accuracy(worst_case(aligned).adv_correct)


def _worst_cell(rows: Sequence[pd.Series]) -> Cell:
    """The per-example worst case over a row's attacks; for a run's seeds, each seed's, then mean ± std."""
    members = [r.get("seed_rows") for r in rows]
    if not all(isinstance(m, tuple) and m for m in members):
        return Cell(worst_case_accuracy(rows))
    by_seed = [dict(m) for m in members]
    common = sorted(set.intersection(*(set(m) for m in by_seed)))
    values = [v for v in (worst_case_accuracy([m[s] for m in by_seed]) for s in common) if v is not None]
    if len(values) < 2:
        return Cell(values[0] if values else None)
    mean = sum(values) / len(values)
    return Cell(mean, spread=math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)))
