"""Results as plain data: one CSV row per (checkpoint, attack, budget fraction), with full provenance.

Accuracies are percentages (0-100), as in the paper's tables.  JSON-valued columns hold dicts
(attack parameters, budgets, sanity flags).  Files are rewritten atomically; `key` identifies a row
for resume (a re-run skips rows already present) and for conflict detection in tables.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from srtbench.errors import SrtbenchError
from srtbench.runtime import atomic_path

COLUMNS = (
    # what was attacked
    "checkpoint",  # path as given
    "checkpoint_sha256",
    "label",  # human row label, e.g. "SRT (λ = 0.2)"
    "defense",  # registry name of the training objective, e.g. "srt"
    "defense_params",  # JSON: the defense's hyperparameters (lambda, beta, ...)
    "train_threat",  # neighborhood the model was trained against: pixel | spatial | compound | none
    "train_budget",  # JSON: its budgets as trained, e.g. {"epsilon": 0.1, "norm": "linf"} ({} for none)
    "train_seed",  # seed of the training run (initialization, batch order, inner maximizers)
    "n_labeled",  # |D_L| and |D_U| it was trained on
    "n_unlabeled",
    "preset",  # the preset it was trained with, if any
    "train_time_s",  # its training wall time
    "model",
    "dataset",
    "split",  # "test"
    # how it was attacked
    "attack",  # registry name, e.g. "pgd", "gridadv.t", "autoattack"
    "attack_params",  # JSON: every setting of the attack (steps, step size, k, library ...)
    "fraction",  # budget fraction (Figures 1 and 7); 1.0 = the attack's full budget
    "budget",  # JSON: the effective budgets, e.g. {"epsilon": 0.3} or {"rotation": 30, "translation": 3}
    "budget_source",  # JSON: where each budget came from: checkpoint (its trained threat), dataset, command line
    "n",  # number of examples
    "seed",
    # what came out (percent)
    "clean_acc",
    "robust_acc",
    "robust_ci_low",  # 95% Wilson interval of robust_acc
    "robust_ci_high",
    "mean_distance",  # minimum-norm attacks: mean / median distance of successful examples (else empty)
    "median_distance",
    "flags",  # JSON: sanity flags {name: {"status": "PASS"|"WARN", "detail": ...}}
    "per_example",  # path of the per-example side file, relative to the CSV
    # provenance
    "wall_time_s",
    "device",
    "srtbench_version",
    "git_commit",
    "command",
    "timestamp",
)

KEY = ("checkpoint_sha256", "attack", "attack_params", "fraction", "n", "seed")
JSON_COLUMNS = ("defense_params", "train_budget", "attack_params", "budget", "budget_source", "flags")
PERCENT_COLUMNS = ("clean_acc", "robust_acc", "robust_ci_low", "robust_ci_high")
WHOLE_COLUMNS = ("n", "seed", "train_seed", "n_labeled", "n_unlabeled")
NUMBER_COLUMNS = ("fraction", *WHOLE_COLUMNS, *PERCENT_COLUMNS, "mean_distance", "median_distance", "wall_time_s",
                  "train_time_s")
REQUIRED = ("label", "attack", "fraction", "clean_acc", "robust_acc", "dataset")


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys), so equal settings give equal strings and equal keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# a terminal escape sequence (CSI, OSC up to its terminator, or a two-byte ESC sequence), then any other control
# character: C0, DEL, C1 and the bidirectional overrides that reorder what a terminal shows
_ESCAPE_SEQUENCE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                              r"|\x1b[ -/]*[0-~]")
_LINE_BREAK = re.compile(r"[\t\n\v\f\r\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    """Free text from a results file (a label, a path) as it may be shown: escape sequences and control characters
    removed, line breaks and tabs made spaces.  A label travels inside any checkpoint a user downloads."""
    return _CONTROL.sub("", _LINE_BREAK.sub(" ", _ESCAPE_SEQUENCE.sub("", text)))


def normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as written: every column, JSON columns as canonical JSON, free text cleaned (a carriage return in a
    label would otherwise end the CSV record: the writer quotes only fields with a newline)."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown result columns {sorted(unknown)}")
    out = {c: row.get(c, "") for c in COLUMNS}
    for c in COLUMNS:
        if c in JSON_COLUMNS and not isinstance(out[c], str):
            out[c] = dumps(out[c])
        elif c not in JSON_COLUMNS and isinstance(out[c], str):
            out[c] = clean_text(out[c])
    return out


def key(row: dict[str, Any] | pd.Series) -> tuple:
    return tuple(str(row[c]) if c not in ("fraction", "n", "seed") else float(row[c]) for c in KEY)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a proportion, in percent."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (100 * max(0.0, centre - half), 100 * min(1.0, centre + half))


def read(path: str | os.PathLike) -> pd.DataFrame:
    """One results CSV read against the schema: numbers, whole numbers and JSON objects where COLUMNS says so, free
    text cleaned (`clean_text`); a malformed row is a one-line error naming the file and its first bad line."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header, records = _records(path, handle)
    except UnicodeDecodeError:
        raise SrtbenchError(f"{path}: not a readable results CSV (not UTF-8 text)") from None
    except OSError as err:
        raise SrtbenchError(f"{path}: not a readable results CSV ({err.strerror or type(err).__name__})") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise SrtbenchError(f"{path}: not an srtbench results CSV (missing columns {', '.join(missing)})")
    for line, fields in records:
        problem = next(filter(None, map(_problem, header, fields)), None)
        if problem:
            raise SrtbenchError(f"{path}, line {line}: {problem}")
    columns = {}
    for i, name in enumerate(header):
        values = [fields[i] for _, fields in records]
        if name in NUMBER_COLUMNS:
            columns[name] = pd.to_numeric(pd.Series([v.strip() or None for v in values], dtype=object))
        else:
            clean = name not in JSON_COLUMNS
            columns[name] = pd.Series([(clean_text(v) if clean else v) if v else math.nan for v in values],
                                      dtype=object)
    df = pd.DataFrame(columns, index=range(len(records)))
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    df["source"] = str(path)
    return df


def _records(path: Path, handle) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and each record with the line it starts on, every record as wide as the header."""
    reader = csv.reader(handle, strict=True)
    records, line = [], 1
    try:
        header = next(reader, None)
        if header is None:
            raise SrtbenchError(f"{path}: not an srtbench results CSV (the file is empty)")
        twice = [c for c in dict.fromkeys(header) if header.count(c) > 1]
        if twice:
            raise SrtbenchError(f"{path}, line 1: column {twice[0]} appears twice")
        line = reader.line_num + 1
        for fields in reader:
            if fields and len(fields) != len(header):
                raise SrtbenchError(f"{path}, line {line}: {len(fields)} fields where the header has {len(header)} "
                                    "(a field missing or an unquoted comma)")
            if fields:
                records.append((line, fields))
            line = reader.line_num + 1
    except csv.Error as err:
        raise SrtbenchError(f"{path}, line {line}: not a CSV record ({err})") from None
    return header, records


def _problem(column: str, text: str) -> str | None:
    """What is wrong with one cell of `column`, or None (an empty cell is a missing value, allowed anywhere)."""
    if not text.strip():
        return None
    shown = repr(text if len(text) <= 40 else text[:37] + "...")
    if column in NUMBER_COLUMNS:
        try:
            value = float(text)
        except ValueError:
            return f"{column} is not a number ({shown})"
        if math.isnan(value):
            return None  # another writer's spelling of a missing value
        if column in WHOLE_COLUMNS and not value.is_integer():
            return f"{column} is not a whole number ({shown})"
    elif column in JSON_COLUMNS:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            return f"{column} is not valid JSON ({err.msg})"
        if not isinstance(value, dict):
            return f"{column} is not a JSON object"
        if column == "flags":
            bad = [name for name, flag in value.items() if not isinstance(flag, dict)]
            if bad:
                return f"flags entry {bad[0]!r} is not a JSON object"
    return None


def collect(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Every results CSV under the given files/folders (recursively), concatenated."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*.csv") if not f.name.startswith("."))
        elif p.exists():
            files.append(p)
        else:
            raise SrtbenchError(f"{p}: no such file or folder")
    if not files:
        raise SrtbenchError(f"no results CSV found in {', '.join(map(str, paths))}")
    return pd.concat([read(f) for f in files], ignore_index=True)


def existing_keys(path: str | os.PathLike) -> set[tuple]:
    path = Path(path)
    if not path.exists():
        return set()
    return {key(r) for _, r in read(path).iterrows()}


def append(path: str | os.PathLike, rows: Iterable[dict[str, Any]], replace: bool = False) -> None:
    """Add rows to a results CSV atomically; with `replace`, rows of the same key are overwritten."""
    path = Path(path)
    new = pd.DataFrame([normalize_row(r) for r in rows], columns=list(COLUMNS))
    with _locked(path):  # read, merge and replace as one step: evaluations running side by side lose no rows
        if path.exists():
            old = read(path).drop(columns=["source"])[list(COLUMNS)]
            if replace:
                new_keys = {key(r) for _, r in new.iterrows()}
                old = old[[key(r) not in new_keys for _, r in old.iterrows()]]
            new = pd.concat([old, new], ignore_index=True) if len(old) else new
        with atomic_path(path) as tmp:
            new.to_csv(tmp, index=False)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive advisory lock on PATH.lock for the duration (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------- per-example side files

PER_EXAMPLE_KEYS = ("index", "clean_pred", "adv_pred", "label", "clean_correct", "adv_correct", "distance")


def write_per_example(path: str | os.PathLike, outcomes: dict[str, Any], row: dict[str, Any] | None = None) -> None:
    """Per-example outcomes of one (checkpoint, attack, fraction): tensors keyed by PER_EXAMPLE_KEYS, and the
    results row they make (before the flags that compare rows), so an evaluation cut short resumes from its files.

    `index` is the test-set index of each example, `distance` the perturbation size found (NaN where
    the attack has no notion of it or did not succeed).  Saved with torch.save (loadable weights_only).
    """
    import torch

    missing = [k for k in PER_EXAMPLE_KEYS if k not in outcomes]
    if missing:
        raise ValueError(f"per-example outcomes lack {missing}")
    saved: dict[str, Any] = {k: outcomes[k] for k in PER_EXAMPLE_KEYS}
    if row is not None:
        saved["row"] = json.dumps(normalize_row(row))
    with atomic_path(path) as tmp:
        torch.save(saved, tmp)


def read_per_example(path: str | os.PathLike) -> dict[str, Any]:
    import torch

    try:
        out = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same one-line error
        raise SrtbenchError(f"{path}: unreadable per-example file ({type(err).__name__})") from None
    if not isinstance(out, dict) or any(k not in out for k in PER_EXAMPLE_KEYS):
        raise SrtbenchError(f"{path}: not an srtbench per-example file")
    return out
