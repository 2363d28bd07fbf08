"""`srtbench plot KIND ...`: the paper's figures as PNG and PDF."""

from __future__ import annotations

import dataclasses

import click

from srtbench.cli.app import echo, main
from srtbench.config import choices_of, option_name
from srtbench.convergence import RULE
from srtbench.neighborhoods import ThreatConfig, atoms


def _writable(ctx, param, value):
    """OUT and the OUT.png, OUT.pdf written from it: regular files or nothing yet, in a folder we may write."""
    from pathlib import Path

    from srtbench.runtime import check_writable

    stem = Path(value).with_suffix("") if Path(value).suffix.lower() in (".png", ".pdf") else Path(value)
    for path in (value, f"{stem}.png", f"{stem}.pdf"):
        check_writable(path, "an image path (OUT.png and OUT.pdf are written)")
    return value


OUT = click.option("--out", required=True, type=click.Path(dir_okay=False), callback=_writable,
                   help="output path; OUT.png and OUT.pdf are written")


def _written(out: str, values: bool = False) -> None:
    from srtbench.plots import stem_of

    stem = stem_of(out)
    echo(f"wrote {stem}.png, {stem}.pdf and {stem}.values.csv (its numbers)" if values
         else f"wrote {stem}.png and {stem}.pdf")


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


@plot.command("threats")
@click.argument("results", nargs=-1, required=True, type=click.Path())
@OUT
def threats(results, out):
    """Per model, the worst case under each threat and their mean: `srtbench table --layout threats` as bars."""
    from srtbench import plots
    from srtbench import results as results_csv

    plots.threats(results_csv.collect(results), out)
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


def _budget_options(fn):
    """One option per ThreatConfig budget field (--epsilon, --rotation, --sigma, ...), unset by default: the first
    checkpoint's budget applies."""
    for f in reversed([f for f in dataclasses.fields(ThreatConfig) if f.name != "threat"]):
        kind = click.Choice(choices_of(f)) if "choices" in f.metadata else type(f.default)
        fn = click.option(f"--{option_name(f)}", f.name, type=kind, default=None,
                          help=f"{f.metadata.get('help', '')} (default: the first checkpoint's)")(fn)
    return fn


@plot.command("surface")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path())
@click.option("--threat", type=click.Choice(atoms()), default="pixel", show_default=True,
              help="the neighborhood drawn, along two directions of its own (e.g. pixel: adversarial and random; "
              "spatial: rotation and translation; blur: horizontal and vertical σ)")
@click.option("--value", type=click.Choice(["decision", "loss"]), default="decision", show_default=True,
              help="decision value D(x) = p_y - max_{i!=y} p_i (Figures 3-4) or the loss (Figures 5-6)")
@click.option("--index", default=0, show_default=True, help="test-set index of the example")
@click.option("--steps", default=21, show_default=True, help="grid points per direction")
@_budget_options
@click.option("--data-dir", default=None, help="folder holding the dataset files")
@OUT
def surface(checkpoints, threat, value, index, steps, data_dir, out, **budget):
    """Decision or loss surface around one example, checkpoints side by side (Figures 3-6)."""
    from srtbench import surfaces

    surfaces.surface(checkpoints, out, threat, value, index, steps, data_dir, **budget)
    _written(out, values=True)


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


@plot.command("convergence", help=f"""Held-out clean and robust accuracy per SGD step, and whether each run converged.

    METRICS are trainer metrics CSVs, folders standing for every *.metrics.csv in them, or checkpoints standing for
    the metrics their training wrote beside them (NAME.pt: NAME.metrics.csv); a line per run, named
    by its file's stem. Printed per run, the verdict: {RULE}. Rows without a held-out check are skipped; a run
    without a check that early gets no verdict. The images a check scored come from each run's checkpoint, else
    from the figure's values CSV, else --check-n.
    """)
@click.argument("metrics", nargs=-1, required=True, type=click.Path())
@click.option("--check-n", type=click.IntRange(min=1), default=None,
              help="images each held-out check scored, for runs whose checkpoint is gone and whose figure did not "
                   "keep it (the preset's check_size; default: no noise band for those runs)")
@OUT
def convergence(metrics, check_n, out):
    from srtbench.convergence import convergence as draw

    for verdict in draw(metrics, out, check_n).values():
        echo(verdict.line())
    _written(out, values=True)
