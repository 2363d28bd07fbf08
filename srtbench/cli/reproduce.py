"""`srtbench reproduce EXPERIMENT`: every run behind one of the paper's tables or figures, in order, resumable."""

from __future__ import annotations

import click

from srtbench.cli import main


@main.command("reproduce")
@click.argument("experiment", required=False)
@click.option("--scale", default="cpu", show_default=True,
              help="cpu: Fashion-MNIST + SmallCNN, short schedules; paper: the paper's datasets, models, schedules")
@click.option("--dry-run", is_flag=True, help="print the commands (finished ones as '# done: ...') and stop")
@click.option("--list", "list_", is_flag=True, help="list the experiments")
def reproduce(experiment, scale, dry_run, list_):
    """Run the train and evaluate commands of EXPERIMENT (table1..table9, figure1, figure2, figure7, figure9,
    quick), skipping finished ones, then print its table or draw its figure."""
    from srtbench import recipes
    from srtbench.config import require

    if list_:
        for name in recipes.RECIPES.names():
            click.echo(f"{name:8s} {recipes.RECIPES.meta(name)['title']}")
        return
    require(experiment is not None, "name an experiment (srtbench reproduce --list shows them)")
    steps = recipes.plan(experiment, scale)
    recipes.run(steps, dry_run=dry_run, echo=click.echo)
