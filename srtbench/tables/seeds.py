"""Training seeds: the runs trained at several seeds (seed families), as one row of mean ± std or a row per seed."""

from __future__ import annotations

import json
import re

import pandas as pd

from srtbench.measurements import identity

SEED_SUFFIX = re.compile(r"-s(\d+)(?=\.pt$)")  # recipes and sweeps write seed s > 0 to NAME-sS.pt
# what a row records of its training besides the seed (rows from before these columns still have label and dataset)
TRAINING_COLUMNS = ("label", "dataset", "defense", "defense_params", "train_threat", "train_budget", "n_labeled",
                    "n_unlabeled", "preset", "model")


def train_seed(row: pd.Series) -> int | None:
    """The training seed of the attacked checkpoint: the row's `train_seed`, else (rows written before that column)
    the seed its path names (`NAME-sS.pt`; none: seed 0)."""
    value = row.get("train_seed")
    if value is not None and pd.notna(value) and str(value).strip():
        try:
            return int(float(value))
        except ValueError:
            return None
    match = SEED_SUFFIX.search(str(row.get("checkpoint", "")))
    return int(match.group(1)) if match else 0


def _run_without_seed(row: pd.Series) -> str:
    """What a run is apart from its training seed: its recorded training and its path without the seed suffix.
    A file its training read at the same seed (RST's teacher `standard-s1.pt` for seed 1) counts by its name without
    that suffix, so the seeds of a run whose every part is seeded alike are one run; a file of another seed is not
    stripped, and keeps the two runs apart."""
    seed = train_seed(row)
    own = re.compile(rf"-s{seed}(?=\.pt\b)") if seed else None
    parts = [str(row.get(c, "")) for c in TRAINING_COLUMNS]
    if own is not None:
        parts = [own.sub("", part) for part in parts]
    return json.dumps([*parts, SEED_SUFFIX.sub("", str(row.get("checkpoint", "")))])


def seed_families(df: pd.DataFrame) -> list[tuple[list, dict[str, int]]]:
    """The runs of `df` trained at several seeds: (their rows' index, {model identity: seed}) each.  A run with one
    seed, a seed given twice (a retrained file) or an unknown seed is none; nor are published numbers."""
    if df.empty:
        return []
    groups: dict[str, list] = {}
    for idx, row in df.iterrows():
        if not str(row.get("checkpoint", "")).startswith("paper:"):
            groups.setdefault(_run_without_seed(row), []).append(idx)
    out = []
    for idxs in groups.values():
        models: dict[str, int | None] = {}
        for idx in idxs:
            models.setdefault(identity(df.loc[idx]), train_seed(df.loc[idx]))
        seeds = list(models.values())
        if len(models) > 1 and None not in seeds and len(set(seeds)) == len(seeds):
            out.append((idxs, models))
    return out


def aggregate_seeds(df: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    """Runs that differ only in their training seed as one model: per attack, settings and fraction one row whose
    clean_acc and robust_acc are the means over the seeds, clean_std and robust_std their sample standard deviations,
    and seed_rows the seeds' own rows (the worst case is per seed, then averaged).  Returns the rows, in the order of
    their first seed's, and the seeds averaged."""
    families = seed_families(df)
    if not families:
        return df, []
    replaced: dict = {}  # index of a family's first row per (attack, settings, fraction) -> the row replacing it
    dropped, used = set(), set()
    for idxs, models in families:
        rows = df.loc[idxs]
        ident = pd.Series([identity(r) for _, r in rows.iterrows()], index=rows.index)
        settings = rows["attack_params"].where(rows["attack_params"].notna(), "")
        for _, g in rows.groupby([rows["attack"], settings, rows["fraction"].astype(float)], sort=False):
            g = g[~ident[g.index].duplicated()]  # one row per seed
            merged = g.iloc[0].to_dict()
            for column in ("clean_acc", "robust_acc"):
                values = g[column].astype(float)
                merged[column] = float(values.mean())
                merged[column.replace("_acc", "_std")] = float(values.std(ddof=1)) if len(values) > 1 else None
            times = pd.to_numeric(g.get("train_time_s", pd.Series(dtype=float)), errors="coerce")
            merged["train_time_s"] = float(times.mean()) if len(times) and times.notna().all() else None
            merged["checkpoint_sha256"] = "seeds:" + "+".join(sorted(set(ident)))[:64]
            merged["seed_rows"] = tuple((models[ident[i]], df.loc[i]) for i in g.index)
            replaced[g.index[0]] = merged
        dropped |= set(idxs)
        used |= set(models.values())
    rows = [replaced[i] if i in replaced else df.loc[i].to_dict() for i in df.index
            if i not in dropped or i in replaced]
    return pd.DataFrame(rows), sorted(used)


def label_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """`--per-seed`: each seed of a run trained at several a row of its own, named `LABEL (seed S)`."""
    df = df.copy()
    for idxs, models in seed_families(df):
        for idx in idxs:
            df.loc[idx, "label"] = f"{df.loc[idx, 'label']} (seed {models[identity(df.loc[idx])]})"
    return df
