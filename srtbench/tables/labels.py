"""Row labels that tell models apart: one row name per model (`distinguish_models`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from srtbench.measurements import identity
from srtbench.tables.layouts import row_key


def _run_names(paths: Sequence[str]) -> list[str]:
    """The shortest trailing path parts (without .pt) that tell the checkpoints apart: preset/run for
    `runs/fmnist-pixel-cpu/srt-lam0.2.pt` beside `runs/fmnist-spatial-cpu/srt-lam0.2.pt`."""
    parts = [Path(p).with_suffix("").parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(set(paths)):
            return names
    return list(paths)


def distinguish_models(df: pd.DataFrame) -> pd.DataFrame:
    """One row name per model: different checkpoints that share a label (Figure 2's SRT at several |D_U|, or
    SRT (λ = 0.2) of the pixel and the spatial presets) get their run's name after the label, and published
    numbers that a paper prints differently in two tables get their table; one checkpoint stays one row. Labels
    that differ only in spelling ("RT (λ = 0.2)", "RT (λ=0.2)": `row_key`) count as one label."""
    df = df.copy()
    if df.empty:
        return df
    ident = pd.Series([identity(r) for _, r in df.iterrows()], index=df.index)
    tags = df["checkpoint"].astype(str)
    published = tags.str.startswith("paper:")
    if tags[published].nunique() > 1:  # the paper's tables side by side: every published row names its table
        df.loc[published, "label"] = [f"{lb} ({t.replace('paper:table', 'paper Table ')})"
                                      for lb, t in zip(df.loc[published, "label"], tags[published])]
    keys = df["label"].map(row_key)
    for (_, _), g in df.groupby([keys, df["dataset"]], sort=False):
        models = list(dict.fromkeys(ident[g.index]))
        if len(models) < 2:
            continue
        first = {m: str(g.loc[ident[g.index] == m, "checkpoint"].iloc[0]) for m in models}
        paths = [first[m] for m in models]
        names = (_run_names(paths) if len(set(paths)) == len(paths)
                 else [f"{Path(p).stem} {m[:8]}" for p, m in zip(paths, models)])  # one path, retrained: hash
        by_model = dict(zip(models, names))
        df.loc[g.index, "label"] = [f"{lb} ({by_model[m]})" for lb, m in zip(g["label"], ident[g.index])]
    return df
