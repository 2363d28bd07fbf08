"""Decision surfaces (Section 4.6, Figures 3-6): the decision value D(x) = p_y − max_{i≠y} p_i, or the loss, around
one test example along the one or two directions a threat draws (`Neighborhood.surface`), for checkpoints side by
side; drawn as a curve (one direction) or in 3-D and as a map (two)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srtbench.errors import SrtbenchError
from srtbench.maximizers import cross_entropy
from srtbench.plots import literal, plt, save


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
    """The surface around one example x (1, C, H, W) along the one or two directions the threat's neighborhood draws
    (`Neighborhood.surface`), out to its budget (`budget`: ThreatConfig fields such as epsilon=0.1, rotation=30; the
    rest at their defaults): values z[i, j] at (u[i], v[j]) for two directions, z[i] at u[i] for one."""
    from srtbench.config import from_options
    from srtbench.neighborhoods import ThreatConfig

    model = model.eval()
    neighborhood = from_options(ThreatConfig, budget, threat=threat).build()
    axes, images, names = neighborhood.surface(model, x, y, steps, seed)
    with torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in images.split(256)])
        z = SURFACE_VALUES[value](logits, y.expand(len(images))).reshape(*(len(a) for a in axes))
    return {"axes_values": [a.numpy() for a in axes], "z": z.numpy(), "axes": names, "value": value}


def surface(checkpoints: Sequence[str], out: str | os.PathLike, threat: str = "pixel", value: str = "decision",
            index: int = 0, steps: int = 21, data_dir: str | None = None, seed: int = 0,
            **budget: float | str | None) -> dict[str, dict]:
    """One row per checkpoint: the surface in 3-D and as a 2-D map (D > 0, correct, in red).

    Budgets (`budget`: ThreatConfig fields, None where not given) default to the first checkpoint's training
    threat, else the ThreatConfig defaults.  Returns {checkpoint label: surface_grid(...)}.
    """
    from srtbench import checkpoint, data
    from srtbench.neighborhoods import ThreatConfig, config_fields

    if value not in SURFACE_VALUES:
        raise SrtbenchError(f"unknown surface value {value!r}; choose one of: {', '.join(SURFACE_VALUES)}")
    if not 2 <= steps <= 401:
        raise SrtbenchError(f"--steps must be 2 to 401 grid points per direction, got {steps}")
    ckpts = [checkpoint.load(p) for p in checkpoints]
    datasets = {c.meta["dataset"] for c in ckpts}
    if len(datasets) > 1:
        raise SrtbenchError(f"the checkpoints are trained on different datasets ({', '.join(sorted(datasets))})")
    trained = {**ThreatConfig().__dict__, **config_fields(ckpts[0].meta.get("threat") or {})}
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
    save(fig, out, values=_values(out_data))
    return out_data


def _values(grids: dict[str, dict]):
    """The numbers behind the figure, one row per model and grid point: `model`, each direction's coordinate (named
    as the axis), and the value (`decision` or `loss`)."""
    import pandas as pd

    frames = []
    for label, grid in grids.items():
        coords = np.meshgrid(*grid["axes_values"], indexing="ij")
        frame = pd.DataFrame({name: c.ravel() for name, c in zip(grid["axes"], coords)})
        frame.insert(0, "model", label)
        frame[grid["value"]] = grid["z"].ravel()
        frames.append(frame)
    return pd.concat(frames)


def _draw_surface(fig, row: int, rows: int, label: str, grid: dict) -> None:
    """A two-direction surface in 3-D and as a map; a one-direction surface as a curve (its map: a band)."""
    from matplotlib.colors import TwoSlopeNorm

    z, names = grid["z"], grid["axes"]
    lo, hi = float(z.min()), float(z.max())
    if z.ndim == 1:
        ax = fig.add_subplot(rows, 1, row + 1)
        ax.plot(grid["axes_values"][0], z, color="C0")
        if grid["value"] == "decision":
            ax.axhline(0.0, color="k", lw=1, ls="--")  # above: correct
        ax.set(title=literal(label), xlabel=names[0], ylabel="decision value D(x)" if grid["value"] == "decision"
               else "loss")
        ax.grid(alpha=0.3)
        return
    uu, vv = np.meshgrid(*grid["axes_values"], indexing="ij")
    # decision values: red where correct (D > 0), blue where wrong, whatever the range
    norm = TwoSlopeNorm(0.0, min(lo, -1e-6), max(hi, 1e-6)) if grid["value"] == "decision" else None
    cmap = "coolwarm" if grid["value"] == "decision" else "viridis"
    ax3 = fig.add_subplot(rows, 2, 2 * row + 1, projection="3d")
    ax3.plot_surface(uu, vv, z, cmap=cmap, norm=norm, linewidth=0, antialiased=True)
    ax3.set(title=f"{literal(label)} (3-D)", xlabel=names[0], ylabel=names[1])
    ax2 = fig.add_subplot(rows, 2, 2 * row + 2)
    filled = ax2.contourf(uu, vv, z, levels=20, cmap=cmap, norm=norm)
    if grid["value"] == "decision" and lo < 0 < hi:
        ax2.contour(uu, vv, z, levels=[0.0], colors="k", linewidths=1)
    fig.colorbar(filled, ax=ax2)
    ax2.set(title=f"{literal(label)} (2-D)", xlabel=names[0], ylabel=names[1])
