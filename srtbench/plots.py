"""The paper's figures from results CSVs, checkpoints and training metrics (PNG and PDF, matplotlib Agg).

Each plot function draws, writes `OUT.png` and `OUT.pdf`, and returns the data behind the curves, so
that what is drawn can be checked without looking at pixels:

- `budget`     accuracy against the perturbation fraction, per defense and attack (Figures 1 and 7)
- `threats`    the threat profile: per model, the worst case under each threat and their mean (bars)
- `unlabeled`  robust accuracy against the number of unlabeled examples (Figure 2)
- decision surfaces (Figures 3-6) are `srtbench.surfaces`'
- `schedule`   learning rate per step (Figure 8), from the trainer's metrics CSV
- `training`   loss terms and accuracies per epoch, from the trainer's metrics CSV
- held-out accuracy per step and a convergence verdict are `srtbench.convergence`'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from srtbench.attacks import header, rank  # noqa: E402
from srtbench.data import display_name, display_order  # noqa: E402
from srtbench.errors import SrtbenchError  # noqa: E402
from srtbench.measurements import pick  # noqa: E402
from srtbench.runtime import atomic_path, notice  # noqa: E402
from srtbench.tables import distinguish_models  # noqa: E402

FORMATS = ("png", "pdf")
# training-set sizes, for checkpoints whose unlabeled part is "the rest" (n_unlabeled = None)


def stem_of(out: str | os.PathLike) -> Path:
    """A figure's path without its format: `figures/x.png` and `figures/x` are both `figures/x`."""
    out = Path(out)
    return out.with_suffix("") if out.suffix.lower() in (".png", ".pdf") else out


def save(fig, out: str | os.PathLike, values: pd.DataFrame | None = None) -> list[Path]:
    """Write `out` as PNG and PDF (any suffix of `out` is replaced), atomically, and `values`, the numbers behind
    the figure, as OUT.values.csv (which results folders skip: `results.SIDE_CSVS`), so a reading cites a file."""
    stem = stem_of(out)
    written = []
    # the tight box measured once for both formats: bbox_inches="tight" draws the figure an extra time per file (a
    # quarter of `plot budget`'s time over a hundred panels)
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(plt.rcParams["savefig.pad_inches"])
    for fmt in FORMATS:
        path = stem.parent / f"{stem.name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches=box)
        written.append(path)
    plt.close(fig)
    if values is not None:
        path = stem.parent / f"{stem.name}.values.csv"
        with atomic_path(path) as tmp:
            values.to_csv(tmp, index=False, float_format="%.6g")
        written.append(path)
    return written


def grid(n_rows: int, n_cols: int, size=(4.0, 3.2), **kw):
    """A figure of n_rows x n_cols panels of `size` inches each; axes always 2-D."""
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size[0] * n_cols, size[1] * n_rows), squeeze=False, **kw)
    return fig, axes


def literal(text) -> str:
    """Free text from files (labels, attack and file names) as matplotlib shows it verbatim: `$` would start
    mathtext (`$\\undefinedcmd$` stops the plot), and control and invisible characters are written out."""
    from srtbench.results import clean_text

    return clean_text(str(text)).replace("$", r"\$")


def _title(dataset: str, attack: str) -> str:
    return literal(f"{display_name(dataset)}: {header(attack)}")


def shown(df: pd.DataFrame) -> pd.DataFrame:
    """One measurement per model and attack, chosen as the tables choose (`measurements.pick`); the rows left out
    are named on stderr."""
    df, notes = pick(df)
    for note in notes:
        notice(note)
    return df


# ---------------------------------------------------------------- Figures 1 and 7


def budget(df: pd.DataFrame, out: str | os.PathLike, attacks: Sequence[str] | None = None) -> dict:
    """Robust accuracy against the budget fraction: one panel per (dataset, attack), one curve per defense.

    Fraction 0 is the clean accuracy (N(x) = {x}); returns {(dataset, attack): {label: (fractions, accs)}}.
    """
    if attacks:
        df = df[df["attack"].isin(attacks)]
    if df.empty:
        raise SrtbenchError(f"no results for attacks {', '.join(attacks or [])}")
    df = distinguish_models(shown(df))  # one curve per model, named as the tables name it
    panels = sorted({(str(d), str(a)) for d, a in zip(df["dataset"], df["attack"])},
                    key=lambda p: (display_order(p[0]), rank(p[1]), p))
    datasets = list(dict.fromkeys(d for d, _ in panels))
    columns = max(sum(d == ds for d, _ in panels) for ds in datasets)
    fig, axes = grid(len(datasets), columns)
    data: dict[tuple[str, str], dict[str, tuple[list[float], list[float]]]] = {}
    for (ds, attack) in panels:
        r = datasets.index(ds)
        c = [p for p in panels if p[0] == ds].index((ds, attack))
        ax = axes[r][c]
        part = df[(df["dataset"] == ds) & (df["attack"] == attack)]
        curves = {}
        for label, rows in part.groupby("label", sort=False):
            rows = rows.assign(fraction=rows["fraction"].astype(float)).sort_values("fraction")
            rows = rows.drop_duplicates("fraction")
            fr, acc = rows["fraction"].tolist(), rows["robust_acc"].astype(float).tolist()
            if 0.0 not in fr and rows["clean_acc"].notna().any():
                fr, acc = [0.0, *fr], [float(rows["clean_acc"].dropna().iloc[0]), *acc]
            curves[str(label)] = (fr, acc)
            ax.plot(fr, acc, marker="o", ms=3, label=literal(label))
        data[(ds, attack)] = curves
        ax.set(title=_title(ds, attack), xlabel="perturbation fraction", ylabel="accuracy (%)", ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for r, ds in enumerate(datasets):
        for c in range(sum(d == ds for d, _ in panels), columns):
            axes[r][c].set_visible(False)
    save(fig, out)
    return data


# ---------------------------------------------------------------- the threat profile


def threats(df: pd.DataFrame, out: str | os.PathLike) -> dict[str, dict[str, dict[str, float | None]]]:
    """The threat profile (`srtbench table --layout threats`) as bars: one panel per dataset, one bar group per model,
    a bar per threat column and the mean over threats, each the table's own number (its notes go to stderr).

    Returns {dataset: {model: {column header: value, None where the table shows '–'}}}.
    """
    from srtbench.tables import build

    table = build(df, "threats")
    for note in table.notes:
        notice(note)
    shown = [i for i, c in enumerate(table.columns) if c.kind in ("threat", "mean")]
    # a tenth of an inch and more per bar, up to a width any viewer still opens
    width = min(40.0, max(6.0, 0.12 * len(shown) * max(len(g.rows) for g in table.groups)))
    fig, axes = grid(len(table.groups), 1, size=(width, 3.6))
    data: dict[str, dict[str, dict[str, float | None]]] = {}
    for ax, group in zip(axes[:, 0], table.groups):
        bars = data[group.dataset] = {r.label: {table.columns[i].header: r.cells[i].value for i in shown}
                                      for r in group.rows}
        step = 1.0 / (len(shown) + 1)  # bars of one model side by side, a bar's gap between models
        for k, i in enumerate(shown):
            header = table.columns[i].header
            heights = [float("nan") if v[header] is None else v[header] for v in bars.values()]
            ax.bar([j + k * step for j in range(len(bars))], heights, step, label=literal(header))
        ax.set_xticks([j + step * (len(shown) - 1) / 2 for j in range(len(bars))], [literal(lb) for lb in bars],
                      rotation=45, ha="right", fontsize=7)
        ax.set(title=literal(display_name(group.dataset)), ylabel="accuracy (%)", ylim=(0, 100))
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    save(fig, out)
    return data


# ---------------------------------------------------------------- Figure 2


def n_unlabeled(row: pd.Series) -> int:
    """|D_U| of the checkpoint behind a results row (its `n_unlabeled` column)."""
    if "n_unlabeled" in row and pd.notna(row["n_unlabeled"]):
        return int(row["n_unlabeled"])
    raise SrtbenchError(f"{row['source']}: the row of {row['label']} does not record n_unlabeled (written by an "
                        f"older srtbench): evaluate {row['checkpoint']} again to plot it")


def probes_own_neighborhood(train_threat: Any, attack: str) -> bool:
    """Whether `attack` tests the neighborhood a model was trained against (Figure 2: the pixel-wise sweep
    under PGD, the spatial one under GridAdv); a model trained against none (standard) fits every attack."""
    from srtbench.attacks import ATTACKS, neighborhood
    from srtbench.neighborhoods import canonical

    try:
        trained = canonical(str(train_threat))
    except SrtbenchError:  # none (standard), unknown or a threat this version does not know
        return True
    return attack not in ATTACKS or canonical(neighborhood(attack)) == trained


def unlabeled(df: pd.DataFrame, out: str | os.PathLike, attacks: Sequence[str] | None = None) -> dict:
    """Robust accuracy against |D_U|: a defense run at several |D_U| is a curve; one run alone (the
    supervised baselines trained on every label) is a dashed reference line. A panel per (dataset, attack)
    shows the runs trained against the neighborhood that attack probes, so a spatial sweep's PGD rows (from
    Figure 1's evaluation of the same checkpoint) do not turn into a reference line on the PGD panel.

    Returns {(dataset, attack): {"curves": {label: (ns, accs)}, "references": {label: acc}}}.
    """
    df = df[df["fraction"].astype(float) == 1.0].copy()
    if attacks:
        df = df[df["attack"].isin(attacks)]
    df = df[[probes_own_neighborhood(t, a) for t, a in zip(df["train_threat"], df["attack"])]]
    if df.empty:
        raise SrtbenchError(f"no results at fraction 1.0 for attacks {', '.join(attacks or ['(any)'])}")
    df = shown(df).copy()
    df["n_unlabeled"] = [n_unlabeled(r) for _, r in df.iterrows()]
    panels = list(dict.fromkeys(zip(df["dataset"], df["attack"])))
    fig, axes = grid(1, len(panels))
    data = {}
    for ax, (ds, attack) in zip(axes[0], panels):
        part = df[(df["dataset"] == ds) & (df["attack"] == attack)]
        curves, references = {}, {}
        for label, rows in part.groupby("label", sort=False):
            rows = rows.sort_values("n_unlabeled").drop_duplicates("n_unlabeled")
            ns, acc = rows["n_unlabeled"].tolist(), rows["robust_acc"].astype(float).tolist()
            if len(ns) > 1:
                curves[str(label)] = (ns, acc)
                ax.plot(ns, acc, marker="o", label=literal(label))
            else:
                references[str(label)] = acc[0]
                ax.axhline(acc[0], ls="--", lw=1, color=f"C{len(curves) + len(references) + 3}", label=literal(label))
        data[(ds, attack)] = {"curves": curves, "references": references}
        ax.set(title=_title(ds, attack), xlabel="number of unlabeled examples", ylabel="robust accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, out)
    return data


# ---------------------------------------------------------------- Figure 8 and training curves


def read_metrics(path: str | os.PathLike, needed: Sequence[str]) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise SrtbenchError(f"{path}: not a readable metrics CSV ({type(err).__name__})") from None
    missing = [c for c in needed if c not in df.columns]
    if missing or df.empty:
        raise SrtbenchError(f"{path}: not a trainer metrics CSV (missing {', '.join(missing) or 'rows'})")
    return df


def run_name(path: str | os.PathLike) -> str:
    """A run's name in legends: its metrics file's name without `.metrics.csv` (or `.csv`)."""
    return Path(path).name.removesuffix(".metrics.csv").removesuffix(".csv")


def schedule(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict[str, tuple[list, list]]:
    """Learning rate against the optimizer step (the epoch where the CSV has no steps), one curve per run."""
    fig, axes = grid(1, 1, size=(6, 3.5))
    ax = axes[0][0]
    data = {}
    for path in paths:
        df = read_metrics(path, ("epoch", "lr"))
        x = "step" if "step" in df.columns and df["step"].notna().all() else "epoch"
        name = run_name(path)
        data[name] = (df[x].tolist(), df["lr"].astype(float).tolist())
        ax.plot(*data[name], marker=".", label=literal(name))
        ax.set_xlabel(x)
    ax.set(ylabel="learning rate", title="learning-rate schedule")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, out)
    return data


TRAINING_PANELS = {
    "loss": ("loss", "natural_loss", "robust_loss"),
    "accuracy (%)": ("train_acc", "clean_acc", "robust_acc"),
}


def training(path: str | os.PathLike, out: str | os.PathLike) -> dict[str, dict[str, tuple[list, list]]]:
    """Loss terms (total, natural, robust) and accuracies (train, held-out clean and robust) per epoch."""
    df = read_metrics(path, ("epoch",))
    fig, axes = grid(1, len(TRAINING_PANELS))
    data: dict[str, dict[str, tuple[list, list]]] = {}
    for ax, (panel, columns) in zip(axes[0], TRAINING_PANELS.items()):
        data[panel] = {}
        for col in columns:
            if col in df.columns and df[col].notna().any():
                rows = df[df[col].notna()]
                data[panel][col] = (rows["epoch"].tolist(), rows[col].astype(float).tolist())
                ax.plot(*data[panel][col], marker="o", ms=3, label=col)
        ax.set(xlabel="epoch", ylabel=panel, title=literal(f"{Path(path).name}: {panel}"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if not any(data.values()):
        raise SrtbenchError(f"{path}: no loss or accuracy columns to plot")
    save(fig, out)
    return data
