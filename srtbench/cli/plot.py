"""`srtbench plot KIND ...`: the paper's figures as PNG and PDF."""

from __future__ import annotations

import click

from srtbench.cli import main

OUT = click.option("--out", required=True, type=click.Path(dir_okay=False),
                   help="output path; OUT.png and OUT.pdf are written")


def _written(out: str) -> None:
    from pathlib import Path

    stem = Path(out).with_suffix("") if Path(out).suffix.lower() in (".png", ".pdf") else Path(out)
    click.echo(f"wrote {stem}.png and {stem}.pdf")


@main.group("plot")
def plot():
    """Draw the paper's figures from results CSVs, checkpoints or training metrics."""


@plot.command("budget")
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--attacks", default=None, help="comma-separated attacks to draw (default: all in the CSVs)")
@OUT
def budget(results, attacks, out):
    """Accuracy against perturbation fraction per defense and attack (Figures 1 and 7)."""
    from srtbench import plots
    from srtbench import results as results_csv

    plots.budget(results_csv.collect(results), out, attacks.split(",") if attacks else None)
    _written(out)


@plot.command("unlabeled")
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--attacks", default=None, help="comma-separated attacks to draw (default: all in the CSVs)")
@OUT
def unlabeled(results, attacks, out):
    """Robust accuracy against the number of unlabeled examples (Figure 2)."""
    from srtbench import plots
    from srtbench import results as results_csv

    plots.unlabeled(results_csv.collect(results), out, attacks.split(",") if attacks else None)
    _written(out)


@plot.command("surface")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path())
@click.option("--threat", type=click.Choice(["pixel", "spatial"]), default="pixel", show_default=True,
              help="pixel: adversarial and random directions; spatial: rotation and translation")
@click.option("--value", type=click.Choice(["decision", "loss"]), default="decision", show_default=True,
              help="decision value D(x) = p_y - max_{i!=y} p_i (Figures 3-4) or the loss (Figures 5-6)")
@click.option("--index", default=0, show_default=True, help="test-set index of the example")
@click.option("--steps", default=21, show_default=True, help="grid points per direction")
@click.option("--epsilon", type=float, default=None, help="pixel extent (default: the first checkpoint's)")
@click.option("--rotation", type=float, default=None, help="rotation extent in degrees")
@click.option("--translation", type=float, default=None, help="translation extent in pixels")
@click.option("--data-dir", default=None, help="folder holding the dataset files")
@OUT
def surface(checkpoints, threat, value, index, steps, epsilon, rotation, translation, data_dir, out):
    """Decision or loss surface around one example, checkpoints side by side (Figures 3-6)."""
    from srtbench import plots

    plots.surface(checkpoints, out, threat, value, index, steps, epsilon, rotation, translation, data_dir)
    _written(out)


@plot.command("schedule")
@click.argument("metrics", nargs=-1, required=True, type=click.Path())
@OUT
def schedule(metrics, out):
    """Learning rate per step from the trainer's metrics CSVs (Figure 8)."""
    from srtbench import plots

    plots.schedule(metrics, out)
    _written(out)


@plot.command("training")
@click.argument("metrics", type=click.Path())
@OUT
def training(metrics, out):
    """Loss terms and accuracies per epoch from one trainer metrics CSV."""
    from srtbench import plots

    plots.training(metrics, out)
    _written(out)
