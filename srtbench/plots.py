"""The paper's figures from results CSVs, checkpoints and training metrics (PNG and PDF, matplotlib Agg).

Each plot function draws, writes `OUT.png` and `OUT.pdf`, and returns the data behind the curves, so
that what is drawn can be checked without looking at pixels:

- `budget`     accuracy against the perturbation fraction, per defense and attack (Figures 1 and 7)
- `unlabeled`  robust accuracy against the number of unlabeled examples (Figure 2)
- `surface`    decision surface D(x) = p_y − max_{i≠y} p_i (Section 4.6) or the loss, around one test
               example along two directions, for checkpoints side by side (Figures 3-6)
- `schedule`   learning rate per step (Figure 8), from the trainer's metrics CSV
- `training`   loss terms and accuracies per epoch, from the trainer's metrics CSV
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from srtbench.attacks import header, rank  # noqa: E402
from srtbench.data import display_name, display_order  # noqa: E402
from srtbench.errors import SrtbenchError  # noqa: E402
from srtbench.maximizers import cross_entropy  # noqa: E402
from srtbench.measurements import pick  # noqa: E402
from srtbench.runtime import atomic_path, notice  # noqa: E402
from srtbench.tables import distinguish_models  # noqa: E402

FORMATS = ("png", "pdf")
# training-set sizes, for checkpoints whose unlabeled part is "the rest" (n_unlabeled = None)


def save(fig, out: str | os.PathLike) -> list[Path]:
    """Write `out` as PNG and PDF (any suffix of `out` is replaced), atomically."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix.lower() in (".png", ".pdf") else out
    written = []
    for fmt in FORMATS:
        path = stem.parent / f"{stem.name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    return written


def _grid(n_rows: int, n_cols: int, size=(4.0, 3.2), **kw):
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
    fig, axes = _grid(len(datasets), columns)
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
    fig, axes = _grid(1, len(panels))
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


# ---------------------------------------------------------------- Figures 3-6


def decision_value(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """D(x) = p_y − max_{i≠y} p_i (Section 4.6): positive iff the prediction is correct."""
    p = logits.softmax(1)
    py = p.gather(1, y[:, None]).squeeze(1)
    others = p.scatter(1, y[:, None], float("-inf")).amax(1)
    return py - others


SURFACE_VALUES = {
    "decision": lambda logits, y: decision_value(logits, y),
    "loss": cross_entropy,
}


def surface_grid(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, threat: str = "pixel",
                 value: str = "decision", steps: int = 21, seed: int = 0, **budget: Any) -> dict[str, Any]:
    """The surface around one example x (1, C, H, W): values z[i, j] at perturbation (u[i], v[j]) along the two
    directions the threat's neighborhood draws (`Neighborhood.surface`), out to its budget (`budget`: ThreatConfig
    fields such as epsilon=0.1, rotation=30; the rest at their defaults)."""
    from srtbench.config import from_options
    from srtbench.neighborhoods import ThreatConfig

    model = model.eval()
    neighborhood = from_options(ThreatConfig, budget, threat=threat).build()
    u, v, images, names = neighborhood.surface(model, x, y, steps, seed)
    with torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in images.split(256)])
        z = SURFACE_VALUES[value](logits, y.expand(len(images))).reshape(len(u), len(v))
    return {"u": u.numpy(), "v": v.numpy(), "z": z.numpy(), "axes": names, "value": value}


def surface(checkpoints: Sequence[str], out: str | os.PathLike, threat: str = "pixel", value: str = "decision",
            index: int = 0, steps: int = 21, data_dir: str | None = None, seed: int = 0,
            **budget: float | str | None) -> dict[str, dict]:
    """One row per checkpoint: the surface in 3-D and as a 2-D map (D > 0, correct, in red).

    Budgets (`budget`: ThreatConfig fields, None where not given) default to the first checkpoint's training
    threat, else the ThreatConfig defaults.  Returns {checkpoint label: surface_grid(...)}.
    """
    from srtbench import checkpoint, data
    from srtbench.neighborhoods import ThreatConfig

    if value not in SURFACE_VALUES:
        raise SrtbenchError(f"unknown surface value {value!r}; choose one of: {', '.join(SURFACE_VALUES)}")
    if not 2 <= steps <= 401:
        raise SrtbenchError(f"--steps must be 2 to 401 grid points per direction, got {steps}")
    ckpts = [checkpoint.load(p) for p in checkpoints]
    datasets = {c.meta["dataset"] for c in ckpts}
    if len(datasets) > 1:
        raise SrtbenchError(f"the checkpoints are trained on different datasets ({', '.join(sorted(datasets))})")
    trained = {**ThreatConfig().__dict__, **(ckpts[0].meta.get("threat") or {})}
    budget = {k: trained[k] if v is None else v for k, v in budget.items()}
    budget.update({k: v for k, v in trained.items() if k not in budget and k != "threat"})
    classes = data.DATASETS.get(ckpts[0].meta["dataset"]).num_classes
    for c in ckpts:
        if c.meta["num_classes"] != classes:
            raise SrtbenchError(f"{c.path}: predicts {c.meta['num_classes']} classes, {c.meta['dataset']} has "
                                f"{classes}")
    test = data.load(ckpts[0].meta["dataset"], train=False, data_dir=data_dir)
    if not 0 <= index < len(test):
        raise SrtbenchError(f"--index {index} is outside the test set (0..{len(test) - 1})")
    x, y = test.batch(torch.tensor([index]))
    fig = plt.figure(figsize=(11, 4.5 * len(ckpts)))
    fig.subplots_adjust(wspace=0.3, hspace=0.35)
    out_data = {}
    for r, ck in enumerate(ckpts):
        label = ck.meta.get("label") or Path(ck.path).stem
        if label in out_data:
            label = f"{label} ({Path(ck.path).stem})"
        grid = surface_grid(ck.build_model(), x, y, threat, value, steps, seed, **budget)
        out_data[label] = grid
        _draw_surface(fig, r, len(ckpts), label, grid)
    fig.suptitle(f"{'decision value D(x)' if value == 'decision' else 'loss'} around test example {index}")
    save(fig, out)
    return out_data


def _draw_surface(fig, row: int, rows: int, label: str, grid: dict) -> None:
    from matplotlib.colors import TwoSlopeNorm

    uu, vv = np.meshgrid(grid["u"], grid["v"], indexing="ij")
    z = grid["z"]
    lo, hi = float(z.min()), float(z.max())
    # decision values: red where correct (D > 0), blue where wrong, whatever the range
    norm = TwoSlopeNorm(0.0, min(lo, -1e-6), max(hi, 1e-6)) if grid["value"] == "decision" else None
    cmap = "coolwarm" if grid["value"] == "decision" else "viridis"
    ax3 = fig.add_subplot(rows, 2, 2 * row + 1, projection="3d")
    ax3.plot_surface(uu, vv, z, cmap=cmap, norm=norm, linewidth=0, antialiased=True)
    ax3.set(title=f"{literal(label)} (3-D)", xlabel=grid["axes"][0], ylabel=grid["axes"][1])
    ax2 = fig.add_subplot(rows, 2, 2 * row + 2)
    filled = ax2.contourf(uu, vv, z, levels=20, cmap=cmap, norm=norm)
    if grid["value"] == "decision" and lo < 0 < hi:
        ax2.contour(uu, vv, z, levels=[0.0], colors="k", linewidths=1)
    fig.colorbar(filled, ax=ax2)
    ax2.set(title=f"{literal(label)} (2-D)", xlabel=grid["axes"][0], ylabel=grid["axes"][1])


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


def schedule(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict[str, tuple[list, list]]:
    """Learning rate against the optimizer step (the epoch where the CSV has no steps), one curve per run."""
    fig, axes = _grid(1, 1, size=(6, 3.5))
    ax = axes[0][0]
    data = {}
    for path in paths:
        df = read_metrics(path, ("epoch", "lr"))
        x = "step" if "step" in df.columns and df["step"].notna().all() else "epoch"
        name = Path(path).name.removesuffix(".metrics.csv").removesuffix(".csv")
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
    fig, axes = _grid(1, len(TRAINING_PANELS))
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
