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
from srtbench.files import open_regular
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
    "forward_passes",  # images the attack passed through the model (over every rank): PGD-K's floor is about K·n
    "backward_passes",  # images a gradient flowed back through
    "peak_memory_mb",  # GPU: the most the attack allocated; CPU: the process's peak resident size so far
    "device",
    "srtbench_version",
    "git_commit",
    "command",
    "timestamp",
)

# a row's identity: the file attacked and the model built around it (a broken defense or a --preprocess wraps it),
# the attack with its settings, the fraction, the examples
KEY = ("checkpoint_sha256", "model", "attack", "attack_params", "fraction", "n", "seed")
JSON_COLUMNS = ("defense_params", "train_budget", "attack_params", "budget", "budget_source", "flags")
PERCENT_COLUMNS = ("clean_acc", "robust_acc", "robust_ci_low", "robust_ci_high")
WHOLE_COLUMNS = ("n", "seed", "train_seed", "n_labeled", "n_unlabeled", "forward_passes", "backward_passes")
NUMBER_COLUMNS = ("fraction", *WHOLE_COLUMNS, *PERCENT_COLUMNS, "mean_distance", "median_distance", "wall_time_s",
                  "train_time_s", "peak_memory_mb")
REQUIRED = ("label", "attack", "fraction", "clean_acc", "robust_acc", "dataset")
SIDE_CSVS = (".metrics.csv", ".values.csv")  # not results (a run's metrics, a figure's values): folder scans skip them


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys), so equal settings give equal strings and equal keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# a terminal escape sequence (CSI, OSC up to its terminator, or a two-byte ESC sequence), then any other control
# character: C0, DEL, C1 and the bidirectional overrides that reorder what a terminal shows
_ESCAPE_SEQUENCE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                              r"|\x1b[ -/]*[0-~]")
_LINE_BREAK = re.compile(r"[\t\n\v\f\r\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# characters that show nothing, or reorder what follows: zero-width spaces and joiners, marks and overrides of
# direction, the byte-order mark, variation selectors, invisible operators, Unicode tags.  `S\u200bR\u200cT` would look
# exactly like `SRT`: they are shown as <U+200B>
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000e0000-\U000e0fff]")


def clean_text(text: str) -> str:
    """Free text from a results file (a label, a path) as it may be shown: escape sequences and control characters
    removed, line breaks and tabs made spaces, invisible and direction characters written out (<U+200B>).  A label
    travels inside any checkpoint a user downloads."""
    text = _CONTROL.sub("", _LINE_BREAK.sub(" ", _ESCAPE_SEQUENCE.sub("", text)))
    return _INVISIBLE.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


def shown(text: str) -> str:
    """`clean_text` line by line: what srtbench prints to a terminal, whatever paths and labels it holds."""
    return "\n".join(clean_text(line) for line in str(text).split("\n"))


FORMULA_START = ("=", "+", "-", "@")  # with tab and carriage return (spaces after clean_text): OWASP's list


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet shows as text: a cell that would start a formula (`=HYPERLINK(...)`, `+cmd|...`, `@SUM`,
    `-1+1`) gets a leading quote, as OWASP advises for CSV files."""
    return "'" + text if text.lstrip().startswith(FORMULA_START) else text


def _unquoted(text: str) -> str:
    """The text `spreadsheet_safe` quoted, as it was."""
    return text[1:] if text.startswith("'") and text[1:].lstrip().startswith(FORMULA_START) else text


def normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as written: every column, JSON columns as canonical JSON, free text cleaned (a carriage return in a
    label would otherwise end the CSV record: the writer quotes only fields with a newline)."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown result columns {sorted(unknown)}")
    out = {c: row.get(c, "") for c in COLUMNS}
    for c in COLUMNS:
        if c in JSON_COLUMNS and (out[c] is None or (isinstance(out[c], float) and math.isnan(out[c]))):
            out[c] = ""  # missing (a row read back from a file)
        elif c in JSON_COLUMNS and not isinstance(out[c], str):
            out[c] = dumps(out[c])
        elif c not in JSON_COLUMNS and isinstance(out[c], str):
            out[c] = clean_text(out[c]) if c in NUMBER_COLUMNS else spreadsheet_safe(clean_text(out[c]))
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
        with open_regular(path, "r", "results CSV", encoding="utf-8-sig") as handle:
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
        empty = next((c for c, v in zip(header, fields) if c in REQUIRED and (not v.strip() or v.strip().lower()
                                                                                == "nan")), None)
        if problem or empty:
            raise SrtbenchError(f"{path}, line {line}: {problem or f'{empty} is missing'}")
    columns = {}
    for i, name in enumerate(header):
        values = [fields[i] for _, fields in records]
        if name in NUMBER_COLUMNS:
            columns[name] = pd.to_numeric(pd.Series([v.strip() or None for v in values], dtype=object))
        else:
            clean = name not in JSON_COLUMNS
            columns[name] = pd.Series([(_unquoted(clean_text(v)) if clean else v) if v else math.nan
                                       for v in values], dtype=object)
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
        if math.isinf(value) and column not in ("mean_distance", "median_distance"):
            return f"{column} is not finite ({shown})"
        if column in WHOLE_COLUMNS and not value.is_integer():
            return f"{column} is not a whole number ({shown})"
        if column in PERCENT_COLUMNS and not 0 <= value <= 100:
            return f"{column} is a percentage outside [0, 100] ({shown})"
        if column not in PERCENT_COLUMNS and value < 0:
            return f"{column} is negative ({shown})"
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
            files += _folder_csvs(p)
        elif p.exists():
            files.append(p)
        else:
            raise SrtbenchError(f"{p}: no such file or folder")
    if not files:
        raise SrtbenchError(f"no results CSV found in {', '.join(map(str, paths))}")
    return pd.concat([read(f) for f in files], ignore_index=True)


def _folder_csvs(folder: Path) -> list[Path]:
    """The results CSVs under `folder` (not its `SIDE_CSVS`): a linked file must stay inside it; a linked
    sub-folder is not entered (a notice says so), so a link cannot pull in, or loop over, what lies elsewhere."""
    from srtbench.files import inside
    from srtbench.runtime import notice

    found = []
    for path in sorted(folder.rglob("*")):
        if path.name.startswith(".") or any(part.startswith(".") for part in path.relative_to(folder).parts[:-1]):
            continue
        if path.is_symlink() and path.is_dir():
            notice(f"skipped {path}: a linked folder (name it on the command line to read it)")
        elif path.suffix == ".csv" and not path.name.endswith(SIDE_CSVS):
            if path.is_symlink():
                inside(folder, path, "results CSV")
            found.append(path)
    return found


def existing_keys(path: str | os.PathLike) -> set[tuple]:
    path = Path(path)
    if not path.exists():
        return set()
    return {key(r) for _, r in read(path).iterrows()}


def _cell(value: Any) -> str:
    """A value as the CSV holds it (what `read` will parse)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _readable(path: Path, row: dict[str, Any]) -> None:
    """A row `read` accepts, checked before it is written: whatever srtbench writes, it reads back."""
    for column, value in row.items():
        problem = _problem(column, _cell(value)) if column in COLUMNS else None
        if column in REQUIRED and not _cell(value).strip():
            problem = f"{column} is missing"
        if problem:
            raise SrtbenchError(f"{path}: refusing to write a row its reader would reject: {problem}")


def append(path: str | os.PathLike, rows: Iterable[dict[str, Any]], replace: bool = False) -> None:
    """Add rows to a results CSV atomically; with `replace`, rows of the same key are overwritten.  Columns the
    file holds beyond COLUMNS (a user's notes) are kept, empty in the new rows."""
    path = Path(path)
    new = [_with_extras(r) for r in rows]
    for row in new:
        _readable(path, row)
    with _locked(path):  # read, merge and replace as one step: evaluations running side by side lose no rows
        old = []
        if path.exists():
            old = [_with_extras(r) for r in read(path).to_dict("records")]
            if replace:
                new_keys = {key(r) for r in new}
                old = [r for r in old if key(r) not in new_keys]
        extra = list(dict.fromkeys(c for r in (*old, *new) for c in r if c not in COLUMNS))
        table = pd.DataFrame([*old, *new], columns=[*COLUMNS, *extra])
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)


def _with_extras(row: dict[str, Any]) -> dict[str, Any]:
    """`normalize_row` of the schema's columns, and any other column a user added to the file kept beside them
    (spreadsheet-safe), never `source` (which file a row was read from)."""
    extra = {k: spreadsheet_safe(v) if isinstance(v, str) else v for k, v in row.items()
             if k not in COLUMNS and k != "source"}
    return {**normalize_row({k: v for k, v in row.items() if k in COLUMNS}), **extra}


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


def write_per_example(path: str | os.PathLike, outcomes: dict[str, Any], row: dict[str, Any] | None = None,
                      indicators: dict[str, Any] | None = None) -> None:
    """Per-example outcomes of one (checkpoint, attack, fraction): tensors keyed by PER_EXAMPLE_KEYS, and the
    results row they make (before the flags that compare rows), so an evaluation cut short resumes from its files.

    `index` is the test-set index of each example, `distance` the perturbation size found (NaN where
    the attack has no notion of it or did not succeed).  `indicators` (srtbench/indicators): per-example tensors of
    attack failure, each over the examples its `index` entry names.  Saved with torch.save (loadable weights_only).
    """
    import torch

    missing = [k for k in PER_EXAMPLE_KEYS if k not in outcomes]
    if missing:
        raise ValueError(f"per-example outcomes lack {missing}")
    saved: dict[str, Any] = {k: outcomes[k] for k in PER_EXAMPLE_KEYS}
    if row is not None:
        saved["row"] = json.dumps(normalize_row(row))
    if indicators:
        saved["indicators"] = indicators
    with atomic_path(path) as tmp:
        torch.save(saved, tmp)


def read_per_example(path: str | os.PathLike) -> dict[str, Any]:
    import torch

    try:
        with open_regular(path, "rb", "per-example file") as handle:
            out = torch.load(handle, map_location="cpu", weights_only=True)
    except SrtbenchError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same one-line error
        raise SrtbenchError(f"{path}: unreadable per-example file ({type(err).__name__})") from None
    if not isinstance(out, dict) or any(k not in out for k in PER_EXAMPLE_KEYS):
        raise SrtbenchError(f"{path}: not an srtbench per-example file")
    return out
