"""One number per cell: which of several measurements of one model under one attack a table or a plot shows.

A results row measures one model (its checkpoint's hash and label, on a dataset) under one attack (its name,
settings and budget fraction) on one set of examples (`n`, the evaluation `seed`, the `split`).  Rows of the same
model and attack on different example sets are different measurements, not a conflict: `make demo` attacks the
shipped AT model on 500 images beside the reproduction's 1,000.  The rule, in order:

1. the most examples (`n`);
2. then the test split;
3. then the lowest evaluation seed.

The rows not shown are reported, one line per results file.  Rows of the same measurement that disagree are a true
conflict, and stop with both files named; identical copies are one row.
"""

from __future__ import annotations

import pandas as pd

from srtbench.errors import SrtbenchError

# a model: its checkpoint's hash, label and dataset, and (for rows that name no checkpoint) what it was trained on
MODEL = ("_identity", "label", "dataset", "_n_labeled", "_n_unlabeled", "_train_seed")
ATTACK = ("attack", "_settings", "_fraction")
EXAMPLES = ("_n", "_split", "_seed")  # what makes two rows of one model and attack different measurements
NUMBERS = ("clean_acc", "robust_acc")
SHOWN_NOTES = 8  # notes listed one by one; the rest are counted


def identity(row: pd.Series) -> str:
    """What makes a result a model's: its checkpoint's hash, else (published numbers) its source tag."""
    sha = row.get("checkpoint_sha256")
    return str(sha).strip() if isinstance(sha, str) and sha.strip() else str(row.get("checkpoint", ""))


def _number(column: pd.Series | None, index: pd.Index, default: float) -> pd.Series:
    if column is None:
        return pd.Series(default, index=index, dtype=float)
    return pd.to_numeric(column, errors="coerce").fillna(default)


def _text(column: pd.Series) -> pd.Series:
    return column.astype(str).where(column.notna(), "")


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    text = {c: _text(df[c]) if c in df else pd.Series("", index=df.index)
            for c in ("attack_params", "split", "n_labeled", "n_unlabeled", "train_seed")}
    return df.assign(
        _identity=[identity(r) for _, r in df.iterrows()],
        _settings=text["attack_params"],
        _fraction=_number(df.get("fraction"), df.index, 1.0),
        _n=_number(df.get("n"), df.index, 0.0),
        _split=text["split"],
        _seed=_number(df.get("seed"), df.index, 0.0),
        **{f"_{c}": text[c] for c in ("n_labeled", "n_unlabeled", "train_seed")},
    )


def _check_same(keyed: pd.DataFrame) -> None:
    """Rows of one measurement (model, attack, examples) must agree; else name both files."""
    group = list(MODEL + ATTACK + EXAMPLES)
    numbers = keyed[list(NUMBERS)].apply(pd.to_numeric, errors="coerce").round(6).fillna(-1.0)
    distinct = keyed.assign(_clean=numbers["clean_acc"], _robust=numbers["robust_acc"]).drop_duplicates(
        [*group, "_clean", "_robust"])
    clash = distinct[distinct.duplicated(group, keep=False)]
    if clash.empty:
        return
    first = clash.iloc[0]
    second = clash[(clash[group] == first[group]).all(axis=1)].iloc[1]
    raise SrtbenchError(
        f"conflicting results for {first['label']} / {first['dataset']} / {first['attack']} @ "
        f"{first['_fraction']:g} on the same {int(first['_n'])} examples (seed {int(first['_seed'])}): "
        f"{first.get('source', '?')} has {first['robust_acc']}, {second.get('source', '?')} has "
        f"{second['robust_acc']}")


def pick(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows to show, one per model and attack (in `df`'s order), and one note per results file that had rows
    left out.  Raises SrtbenchError on a true conflict."""
    if df.empty:
        return df, []
    keyed = _keyed(df)
    _check_same(keyed)
    group = list(MODEL + ATTACK)
    # one row per measurement (identical copies are one), the preferred first within each model and attack
    ordered = keyed.drop_duplicates([*group, *EXAMPLES]).assign(_not_test=lambda k: k["_split"] != "test")
    ordered = ordered.sort_values(["_n", "_not_test", "_seed"], ascending=[False, True, True], kind="stable")
    best = ordered.drop_duplicates(group)
    shown = set(best.index)
    left: dict[str, dict] = {}  # results file -> the attacks, example sets and shown rows of its rows not shown
    if len(ordered) > len(best):
        chosen = {tuple(r[c] for c in group): r for _, r in best.iterrows()}
        for i in ordered.index.difference(best.index):
            row = keyed.loc[i]
            kept = chosen[tuple(row[c] for c in group)]
            note = left.setdefault(str(row.get("source", "?")), {"attacks": [], "examples": set(), "kept": set()})
            note["attacks"].append(str(row["attack"]))
            note["examples"].add(_examples(row))
            note["kept"].add((str(kept.get("source", "?")), _examples(kept)))
    return df.loc[[i for i in df.index if i in shown]], _notes(left)


def _examples(row: pd.Series) -> str:
    text = f"{int(row['_n']):,} examples"
    if row["_seed"]:
        text += f", seed {int(row['_seed'])}"
    if row["_split"] and row["_split"] != "test":
        text += f", {row['_split']} split"
    return text


def _notes(left: dict[str, dict]) -> list[str]:
    notes = []
    for source, note in left.items():
        attacks = ", ".join(dict.fromkeys(note["attacks"]))
        kept = "; ".join(f"{s} ({e})" for s, e in sorted(note["kept"]))
        notes.append(f"not shown: {source} ({'; '.join(sorted(note['examples']))}: {attacks}); shown instead: {kept}")
    if len(notes) > SHOWN_NOTES:
        notes = [*notes[:SHOWN_NOTES], f"not shown: rows of {len(notes) - SHOWN_NOTES} more results files"]
    return [RULE, *notes] if notes else []


RULE = ("One number per cell: where one model was attacked with the same settings on different example sets, a cell "
        "shows the measurement on the most examples (then the test split, then the lowest evaluation seed)")

