"""Results CSVs pivoted into the paper's tables (Tables 1-6, 8, 9) or into whatever the CSVs hold (`auto`).

A `Layout` is plain data: the rows (the paper's row names, in its order), the attacks of its columns
(after "Clean", in its order), whether it has a "Time (mins)" column, and the paper table it mirrors.
`build` turns results rows into a `Table` (one group per dataset, cells as numbers, "–" where a
result is missing); `render` writes it as markdown, LaTeX, CSV or a rich text table, with the best
value of each column and dataset in bold.  Numbers are shown exactly as in the CSVs, rounded to two
decimals as in the paper.

The "Worst case" column is the per-example worst case over the table's attacks: an example counts as
robust only if every attack failed on it (read from the per-example side files; "–" where any is missing).
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd

from srtbench import attacks, measurements, results
from srtbench.errors import SrtbenchError
from srtbench.files import inside
from srtbench.measurements import identity
from srtbench.registry import Registry

DATASET_NAMES = {"cifar10": "CIFAR-10", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
# where a dataset stands in for one of the paper's (`--scale cpu` maps MNIST settings to Fashion-MNIST)
PAPER_STAND_IN = {"fashion-mnist": "mnist"}
PAPER_DIR = Path(__file__).resolve().parent.parent / "results" / "paper"
MISSING = "–"


# ---------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Column:
    kind: str  # clean | attack | worst | time
    header: str
    attack: str = ""
    fraction: float = 1.0
    params: str | None = None  # the attack's settings, where rows of one attack differ in them (else any)

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "time"


@dataclass(frozen=True)
class Layout:
    name: str
    title: str
    rows: tuple[str, ...] = ()  # empty: the labels found in the results, in order of appearance
    attacks: tuple[str, ...] = ()  # empty: every attack found, in the paper's order
    time: bool = False  # Tables 8-9: training time in minutes
    paper: str | None = None  # the `checkpoint` tag of the paper's numbers, e.g. "paper:table3"


LAYOUTS: Registry[Layout] = Registry("layout")


def _register(layout: Layout) -> None:
    LAYOUTS.register(layout.name, title=layout.title)(layout)


_SPATIAL = ("randadv", "gridadv", "randadv.t", "gridadv.t", "randadv.r", "gridadv.r")
_PIXEL = ("fgsm", "pgd", "mifgsm", "jsma", "cw", "pointwise", "ddn")


def _lambda_rows(lams: Sequence[str]) -> tuple[str, ...]:
    return ("Standard", *[f"{d} (λ = {lam})" for lam in lams for d in ("RT", "SRT")])


_register(Layout("table1", "Table 1: SRT and RT under spatial attacks (CIFAR-10)",
                 _lambda_rows(("0.15", "0.20", "0.25", "0.30")), ("randadv", "gridadv"), paper="paper:table1"))
_register(Layout("table2", "Table 2: SRT and RT under pixel-wise attacks (CIFAR-10)",
                 _lambda_rows(("0.2", "0.4", "0.6", "0.8")), ("fgsm", "pgd"), paper="paper:table2"))
_register(Layout("table3", "Table 3: adversarial accuracy (%) under spatial attacks",
                 ("Standard", "AT", "Worst-of-k", "KLR", "SRT"), _SPATIAL, paper="paper:table3"))
_register(Layout("table4", "Table 4: adversarial accuracy (%) under pixel-wise attacks",
                 ("Standard", "AT", "TRADES", "UAT", "RST", "SRT"), _PIXEL, paper="paper:table4"))
_register(Layout("table5", "Table 5: SRT and RT under spatial attacks (MNIST)",
                 _lambda_rows(("0.15", "0.20", "0.25", "0.30")), ("randadv", "gridadv"), paper="paper:table5"))
_register(Layout("table6", "Table 6: SRT and RT under pixel-wise attacks (MNIST)",
                 _lambda_rows(("0.2", "0.4", "0.6", "0.8")), ("fgsm", "pgd"), paper="paper:table6"))
_register(Layout("table8", "Table 8: fast SRT under spatial attacks, with training time",
                 ("Worst-of-k", "KLR", "SRT", "fast SRT"), ("gridadv", "gridadv.t", "gridadv.r"), time=True,
                 paper="paper:table8"))
_register(Layout("table9", "Table 9: fast SRT under pixel-wise attacks, with training time",
                 ("AT", "TRADES", "SRT", "fast SRT"), ("fgsm", "pgd", "mifgsm", "jsma", "cw", "ddn"), time=True,
                 paper="paper:table9"))
_register(Layout("auto", "Accuracy (%) of every checkpoint under every attack in the results"))


def row_key(label: str) -> str:
    """Labels compare equal whatever the spelling of λ's number ("RT (λ = 0.20)" is "RT (λ = 0.2)")."""
    label = re.sub(r"\s+", " ", str(label).strip())
    return re.sub(r"λ ?= ?([0-9.]+)", lambda m: f"λ = {float(m.group(1)):g}", label)


def _without_lambda(key: str) -> str:
    return re.sub(r" \(λ = [0-9.]+\)$", "", key)


# ---------------------------------------------------------------- the pivoted table


@dataclass
class Cell:
    value: float | str | None  # a string only where the source prints no number (Table 9's "10,94")
    reference: float | str | None = None
    spread: float | None = None  # the standard deviation over training seeds, where `value` is their mean


@dataclass
class Row:
    label: str
    cells: list[Cell]


@dataclass
class Group:
    dataset: str
    rows: list[Row]
    reference_dataset: str | None = None


@dataclass
class Table:
    title: str
    columns: list[Column]
    groups: list[Group]
    compared: bool = False
    notes: list[str] = field(default_factory=list)

    def cell(self, dataset: str, label: str, header: str) -> Cell:
        """Test and script helper: the cell of a row label and column header."""
        col = [c.header for c in self.columns].index(header)
        for g in self.groups:
            if g.dataset == dataset:
                for r in g.rows:
                    if r.label == label:
                        return r.cells[col]
        raise KeyError((dataset, label, header))


def _attack_order(name: str) -> tuple[int, str]:
    return attacks.rank(name), name


def _settings(df: pd.DataFrame, attack: str, fraction: float) -> list[str]:
    """The distinct settings (attack_params) an attack was run with at `fraction`, in order of appearance."""
    rows = df[(df["attack"] == attack) & (df["fraction"].astype(float) == fraction)]
    return list(dict.fromkeys(p for p in rows["attack_params"] if isinstance(p, str) and p.strip()))


def _split(column: Column, df: pd.DataFrame) -> list[Column]:
    """One column per distinct setting of its attack (JSMA at γ 0.1 and γ 1 are different columns), headed by the
    settings that differ; rows without settings (published numbers) fall into the first."""
    settings = _settings(df, column.attack, column.fraction)
    if len(settings) < 2:
        return [column]
    parsed = [json.loads(p) for p in settings]
    differ = [k for k in dict.fromkeys(k for p in parsed for k in p) if len({str(p.get(k)) for p in parsed}) > 1]
    return [Column("attack", f"{column.header} [{','.join(f'{k}={p.get(k)}' for k in differ)}]", column.attack,
                   column.fraction, text) for p, text in zip(parsed, settings)]


def _columns(layout: Layout, df: pd.DataFrame) -> list[Column]:
    cols = [Column("clean", "Clean")]
    if layout.attacks:
        attacked = [Column("attack", attacks.header(a), a, 1.0) for a in layout.attacks]
    else:
        pairs = sorted({(str(a), float(f)) for a, f in zip(df["attack"], df["fraction"])},
                       key=lambda p: (_attack_order(p[0]), -p[1]))
        attacked = []
        for a, f in pairs:
            head = attacks.header(a)
            attacked.append(Column("attack", head if f == 1.0 else f"{head} ×{f:g}", a, f))
    cols += [c for col in attacked for c in _split(col, df)]
    if sum(c.kind == "attack" and c.fraction == 1.0 for c in cols) >= 2:
        cols.append(Column("worst", "Worst case"))
    if layout.time:
        cols.append(Column("time", "Time (mins)"))
    return cols


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
    numbers that a paper prints differently in two tables get their table; one checkpoint stays one row."""
    df = df.copy()
    if df.empty:
        return df
    ident = pd.Series([identity(r) for _, r in df.iterrows()], index=df.index)
    tags = df["checkpoint"].astype(str)
    published = tags.str.startswith("paper:")
    if tags[published].nunique() > 1:  # the paper's tables side by side: every published row names its table
        df.loc[published, "label"] = [f"{lb} ({t.replace('paper:table', 'paper Table ')})"
                                      for lb, t in zip(df.loc[published, "label"], tags[published])]
    for (_, _), g in df.groupby(["label", "dataset"], sort=False):
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


def _assign_rows(layout: Layout, labels: Sequence[str]) -> dict[str, str]:
    """Result label -> displayed row: the layout's row of the same name, else of the same name
    without "(λ = ...)" (Table 3's "SRT" is "SRT (λ = 0.2)"), else the label itself as an extra row."""
    by_key = {row_key(r): r for r in layout.rows}
    taken: set[str] = set()
    out: dict[str, str] = {}
    for label in labels:
        key = row_key(label)
        row = by_key.get(key) or by_key.get(_without_lambda(key))
        if row is None or row in taken:
            row = label
        taken.add(row)
        out[label] = row
    return out


def _clean_value(rows: pd.DataFrame) -> Cell:
    """Clean accuracy of a checkpoint (or the mean over a run's seeds): from its row evaluated on the most examples."""
    rows = rows.dropna(subset=["clean_acc"])
    if rows.empty:
        return Cell(None)
    n = pd.to_numeric(rows["n"], errors="coerce").fillna(0)
    best = rows.loc[n.idxmax()]
    return Cell(float(best["clean_acc"]), spread=_std(best, "clean_std"))


def _std(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    return float(value) if value is not None and pd.notna(value) else None


def _parse_minutes(text: str) -> float | str | None:
    """The paper prints minutes with thousands separators ("1,654"); anything else is kept verbatim."""
    text = str(text).strip()
    if not text or text.lower() == "nan":
        return None
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?|\d+(\.\d+)?", text):
        return float(text.replace(",", ""))
    return text


def _time_value(rows: pd.DataFrame) -> float | str | None:
    """Training time in minutes: a published row's `train_time_min`, else the row's recorded `train_time_s`."""
    for _, r in rows.iterrows():
        if "train_time_min" in r and pd.notna(r["train_time_min"]):
            return _parse_minutes(r["train_time_min"])
        if pd.notna(r.get("train_time_s")):
            return float(r["train_time_s"]) / 60
    return None


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


def worst_case(rows: Sequence[pd.Series]) -> float | None:
    """Percent of examples that every attack failed on (`outcomes.worst_case`), over the examples all of them
    evaluated; None where a row has no per-example file."""
    import torch

    from srtbench.outcomes import Examples, accuracy
    from srtbench.outcomes import worst_case as worst_per_example

    loaded: list[Examples] = []
    for r in rows:
        path = _per_example_path(r)
        if path is None:
            return None
        loaded.append(Examples.from_dict(results.read_per_example(path)))
    if not loaded:
        return None
    keep = loaded[0].index
    for ex in loaded[1:]:
        keep = keep[torch.isin(keep, ex.index)]
    if not len(keep):
        return None
    # each file's examples in index order, restricted to those every file holds
    aligned = [ex.select(ex.index.argsort()) for ex in loaded]
    aligned = [ex.select(torch.isin(ex.index, keep)) for ex in aligned]
    return accuracy(worst_per_example(aligned).adv_correct)


def _hits(rows: dict[tuple[str, float], pd.DataFrame], col: Column) -> pd.DataFrame:
    """The rows of one model (split by attack and fraction: `_by_attack`) that fill column `col` (its attack, fraction
    and, where split, settings)."""
    hit = rows.get((col.attack, col.fraction), _NONE)
    if col.params is not None:
        hit = hit[(hit["attack_params"] == col.params) | hit["attack_params"].isna()]
    return hit


_NONE = pd.DataFrame({"attack_params": pd.Series(dtype=object), "robust_acc": pd.Series(dtype=float)})


def _by_attack(rows: pd.DataFrame) -> dict[tuple[str, float], pd.DataFrame]:
    return {(str(a), float(f)): g for (a, f), g in rows.groupby([rows["attack"], rows["fraction"].astype(float)],
                                                                 sort=False)}


def _group_rows(layout: Layout, columns: list[Column], df: pd.DataFrame) -> list[Row]:
    labels = list(dict.fromkeys(df["label"].astype(str)))
    placement = _assign_rows(layout, labels)
    order = list(layout.rows) + [placement[lb] for lb in labels if placement[lb] not in layout.rows]
    by_row = {placement[lb]: lb for lb in labels}
    by_label = dict(list(df.groupby(df["label"].astype(str), sort=False)))
    out = []
    for row in order:
        label = by_row.get(row)
        mine = by_label.get(label, df.iloc[0:0])
        split = _by_attack(mine)
        cells = []
        for col in columns:
            if col.kind == "clean":
                cells.append(_clean_value(mine))
            elif col.kind == "attack":
                hit = _hits(split, col)
                found = len(hit) and pd.notna(hit["robust_acc"].iloc[0])
                cells.append(Cell(float(hit["robust_acc"].iloc[0]), spread=_std(hit.iloc[0], "robust_std")) if found
                             else Cell(None))
            elif col.kind == "time":
                cells.append(Cell(_time_value(mine)))
            else:
                attacked = [c for c in columns if c.kind == "attack" and c.fraction == 1.0]
                hits = [_hits(split, c) for c in attacked]
                cells.append(_worst_cell([h.iloc[0] for h in hits]) if all(len(h) for h in hits) else Cell(None))
        out.append(Row(row, cells))
    return out


def _dataset_order(name: str) -> tuple[int, str]:
    order = list(DATASET_NAMES)
    return (order.index(name) if name in order else len(order), name)


def _select(df: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    # the paper's numbers of other tables do not belong here (Tables 4 and 9 print TRADES differently)
    if layout.paper:
        tags = df["checkpoint"].astype(str)
        df = df[~tags.str.startswith("paper:") | (tags == layout.paper)]
    if layout.attacks:
        df = df[df["attack"].isin(layout.attacks) & (df["fraction"].astype(float) == 1.0)]
    return df


# ---------------------------------------------------------------- training seeds

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
    """What a run is apart from its training seed: its recorded training and its path without the seed suffix."""
    parts = [str(row.get(c, "")) for c in TRAINING_COLUMNS]
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


def _worst_cell(rows: Sequence[pd.Series]) -> Cell:
    """The per-example worst case over a row's attacks; for a run's seeds, each seed's, then mean ± std."""
    members = [r.get("seed_rows") for r in rows]
    if not all(isinstance(m, tuple) and m for m in members):
        return Cell(worst_case(rows))
    by_seed = [dict(m) for m in members]
    common = sorted(set.intersection(*(set(m) for m in by_seed)))
    values = [v for v in (worst_case([m[s] for m in by_seed]) for s in common) if v is not None]
    if len(values) < 2:
        return Cell(values[0] if values else None)
    mean = sum(values) / len(values)
    return Cell(mean, spread=math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)))


def build(df: pd.DataFrame, layout: Layout | str = "auto", reference: pd.DataFrame | None = None,
          per_seed: bool = False) -> Table:
    """Pivot results rows (`results.collect`) into `layout`; with `reference`, each cell also holds
    the reference's number for the same row, column and dataset (or the dataset it stands in for).  Runs that
    differ only in their training seed are one row, mean ± standard deviation over the seeds (`per_seed`: a row
    per seed)."""
    layout = LAYOUTS.get(layout) if isinstance(layout, str) else layout
    df = _select(df, layout)
    if df.empty:
        wanted = ", ".join(layout.attacks) if layout.attacks else "any attack"
        raise SrtbenchError(f"no results for layout {layout.name} (it needs {wanted} at fraction 1.0)")
    df, not_shown = measurements.pick(df)
    seeds: list[int] = []
    if per_seed:
        df = label_seeds(df)
    else:
        df, seeds = aggregate_seeds(df)
    df = distinguish_models(df)
    columns = _columns(layout, df)
    if any(c.kind == "worst" for c in columns) and not df["per_example"].map(
        lambda p: isinstance(p, str) and bool(p.strip())
    ).any():
        columns = [c for c in columns if c.kind != "worst"]  # nothing to compute it from (e.g. the paper's numbers)
    groups = [Group(ds, _group_rows(layout, columns, part))
              for ds, part in sorted(df.groupby("dataset", sort=False), key=lambda kv: _dataset_order(kv[0]))]
    table = Table(layout.title, columns, groups, notes=not_shown)
    if seeds:
        table.notes.append(f"A run trained at several seeds is one row: mean ± standard deviation over its seeds "
                           f"(here {', '.join(map(str, seeds))}); srtbench table --per-seed shows each")
    if reference is not None:
        _attach_reference(table, layout, reference)
    return table


def _attach_reference(table: Table, layout: Layout, reference: pd.DataFrame) -> None:
    ref = _select(reference, layout)
    if ref.empty:
        raise SrtbenchError(f"the reference holds nothing for layout {layout.name}")
    ref = distinguish_models(measurements.pick(ref)[0])
    datasets = list(dict.fromkeys(ref["dataset"]))
    table.compared = True
    for group in table.groups:
        ds = group.dataset if group.dataset in datasets else PAPER_STAND_IN.get(group.dataset)
        if ds not in datasets:
            ds = datasets[0] if len(datasets) == 1 else None
        if ds is None:
            continue
        group.reference_dataset = ds
        if ds != group.dataset:
            table.notes.append(f"{DATASET_NAMES.get(group.dataset, group.dataset)} is compared with the paper's "
                               f"{DATASET_NAMES.get(ds, ds)} numbers")
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


# ---------------------------------------------------------------- rendering


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


def _best(group: Group, col_index: int, column: Column) -> set[str]:
    shown = {}
    for row in group.rows:
        v = row.cells[col_index].value
        if isinstance(v, (int, float)) and not math.isnan(v):
            shown[row.label] = round2(v)
    if len(shown) < 2:
        return set()
    best = max(shown.values()) if column.higher_is_better else min(shown.values())
    return {label for label, v in shown.items() if v == best}


def _heading(table: Table, group: Group) -> str:
    heading = DATASET_NAMES.get(group.dataset, group.dataset)
    if table.compared and group.reference_dataset:
        heading += f" (ours / paper {DATASET_NAMES.get(group.reference_dataset, group.reference_dataset)} (Δ))"
    return heading


def _text_grid(table: Table, escape: Callable[[str], str],
               bold: Callable[[str], str]) -> list[tuple[str, list[list[str]]]]:
    """Per group: its heading and the rows of cell texts (label first), every text passed through the format's
    `escape` (labels, paths and flag details are free text) and the best values then through `bold`."""
    out = []
    for group in table.groups:
        best = [_best(group, i, c) for i, c in enumerate(table.columns)]
        rows = []
        for row in group.rows:
            texts = [escape(row.label)]
            for i, (cell, col) in enumerate(zip(row.cells, table.columns)):
                text = escape(format_value(cell.value, col) + _spread_text(cell))
                if row.label in best[i]:
                    text = bold(text)
                if table.compared:
                    text = f"{text} / {escape(format_value(cell.reference, col))} ({escape(_difference(cell, col))})"
                texts.append(text)
            rows.append(texts)
        out.append((escape(_heading(table, group)), rows))
    return out


FORMATS: Registry[Callable[[Table], str]] = Registry("table format")

# markdown (GFM) and HTML constructs a label could start: escaped with a backslash, or as an entity; an underscore
# inside a word and an ampersand that starts no entity are text already, and stay readable
_MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]|$~<>]|&(?=#?\w+;)|_(?![^\W_])|(?<![^\W_])_")
_HTML_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def _markdown(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(lambda m: _HTML_ENTITIES.get(m.group(), "\\" + m.group()),
                                 results.clean_text(text))


def _markdown_paragraph(text: str) -> str:
    """`_markdown` for a line of its own, whose start could also open a heading, list or quote."""
    text = _markdown(text).lstrip()
    number = re.match(r"\d+(?=[.)])", text)
    if number:
        return text[: number.end()] + "\\" + text[number.end():]
    return "\\" + text if text[:1] in ("#", ">", "+", "-", "=") else text


@FORMATS.register("markdown")
def to_markdown(table: Table) -> str:
    headers = ["Defense", *[c.header for c in table.columns]]
    lines = [f"**{_markdown(table.title)}**", "", "| " + " | ".join(map(_markdown, headers)) + " |",
             "| --- |" + " ---: |" * len(table.columns)]
    for heading, rows in _text_grid(table, _markdown, lambda t: f"**{t}**"):
        lines.append(f"| *{heading}* |" + " |" * len(table.columns))
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [f"\n{_markdown_paragraph(n)}." for n in table.notes]
    return "\n".join(lines) + "\n"


# every character TeX would read as markup, as text; brackets braced so that none is read as the optional
# argument of the `\\` before it
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "%": r"\%", "#": r"\#",
                  "_": r"\_", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}", "<": r"\textless{}",
                  ">": r"\textgreater{}", "|": r"\textbar{}", "[": "{[}", "]": "{]}",
                  "λ": r"$\lambda$", "±": r"$\pm$", "Δ": r"$\Delta$", "−": "$-$", "×": r"$\times$", "–": "--"}


def _latex(text: str) -> str:
    out = ""
    for ch in results.clean_text(text):
        piece = _LATEX_ESCAPES.get(ch, ch)
        out += ("{}" if out.endswith("-") and piece.startswith("-") else "") + piece  # no -- or --- ligature
    return out


@FORMATS.register("latex")
def to_latex(table: Table) -> str:
    n = len(table.columns) + 1
    lines = [f"% {_latex(table.title)}", r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule",
             " & ".join(_latex(h) for h in ["Defense", *[c.header for c in table.columns]]) + r" \\"]
    for heading, rows in _text_grid(table, _latex, lambda t: rf"\textbf{{{t}}}"):
        lines += [r"\midrule", rf"\multicolumn{{{n}}}{{c}}{{{heading}}} \\", r"\midrule"]
        lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {_latex(n)}" for n in table.notes]
    return "\n".join(lines) + "\n"


def _csv_text(text: str) -> str:
    """A text cell a spreadsheet shows as text: one that would start a formula gets a leading quote."""
    return results.spreadsheet_safe(results.clean_text(text))


@FORMATS.register("csv")
def to_csv(table: Table) -> str:
    """Machine-readable: one line per row, numbers rounded to two decimals (differences with an ASCII minus),
    empty where missing; text cells never start a spreadsheet formula."""
    headers = ["dataset", "label"]
    spread = [any(r.cells[i].spread is not None for g in table.groups for r in g.rows)
              for i in range(len(table.columns))]  # a column of means gets a column of their standard deviations
    for c, has_spread in zip(table.columns, spread):
        headers += [c.header] + ([f"{c.header} ±"] if has_spread else [])
        headers += [f"{c.header} (paper)", f"{c.header} Δ"] if table.compared else []
    lines = []
    for group in table.groups:
        for row in group.rows:
            line = [_csv_text(group.dataset), _csv_text(row.label)]
            for cell, col, has_spread in zip(row.cells, table.columns, spread):
                values = [cell.value] + ([cell.spread] if has_spread else [])
                values += [cell.reference, _delta(cell, col)] if table.compared else []
                line += ["" if v is None or (isinstance(v, float) and math.isnan(v)) else
                         _csv_text(v) if isinstance(v, str) else format_value(v, col).replace(",", "")
                         for v in values]
            lines.append(line)
    frame = pd.DataFrame(lines, columns=[_csv_text(h) for h in headers])
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


RICH_MAX_WIDTH = 240


@FORMATS.register("rich")
def to_rich(table: Table) -> str:
    """A box-drawn text table; no text is read as rich markup or emoji (labels are shown as written)."""
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    def styled(text: str) -> Text:  # "\x00" ... "\x01" marks a best value (control characters are gone from texts)
        out = Text()
        for i, part in enumerate(re.split("[\x00\x01]", text)):
            out.append(part, style="bold" if i % 2 else "")
        return out

    out = RichTable(title=Text(results.clean_text(table.title)), title_justify="left")
    out.add_column(Text("Defense"))
    for c in table.columns:
        out.add_column(Text(results.clean_text(c.header)), justify="left" if c.kind == "text" else "right")
    for gi, (heading, rows) in enumerate(_text_grid(table, results.clean_text, lambda t: f"\x00{t}\x01")):
        out.add_row(Text(heading, style="italic"), end_section=False)
        for i, r in enumerate(rows):
            out.add_row(*map(styled, r), end_section=(i == len(rows) - 1 and gi < len(table.groups) - 1))
    buf = io.StringIO()
    plain = dict(file=buf, force_terminal=False, markup=False, emoji=False, highlight=False)
    # as wide as the table needs (a number never wraps), up to a wide screen: only long text (flag details) wraps
    width = Console(width=1 << 16, **plain).measure(out).maximum
    console = Console(width=min(max(100, width), RICH_MAX_WIDTH), **plain)
    console.print(out)
    for n in table.notes:
        console.print(Text(results.clean_text(n) + "."))
    return buf.getvalue()


def render(table: Table, fmt: str = "markdown") -> str:
    return FORMATS.get(fmt)(table)


# ---------------------------------------------------------------- sanity flags


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
