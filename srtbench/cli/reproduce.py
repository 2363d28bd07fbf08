"""`srtbench reproduce EXPERIMENT...`: every run behind the paper's tables or figures, in order, resumable; with
`--jobs N`, independent runs side by side on Ray (this machine, or a cluster with `--address`)."""

from __future__ import annotations

import math

import click

from srtbench.cli.app import echo, main


def scheduling_options(fn):
    """--jobs, --address, --cpus-per-step, --gpus-per-step: shared by `reproduce` and `sweep`."""
    fn = click.option("--gpus-per-step", type=float, default=None, metavar="F",
                      help="GPUs of each step, a fraction shares one (e.g. 0.25; default: the GPUs divided among "
                      "--jobs, at most 1; none without GPUs)")(fn)
    fn = click.option("--cpus-per-step", type=float, default=None, metavar="K",
                      help="CPUs (torch threads) of each step (default: the CPUs divided among --jobs)")(fn)
    fn = click.option("--address", default=None, metavar="auto|HOST:PORT",
                      help="with --jobs: join this Ray cluster instead of starting one here (its nodes must share "
                      "the working folder)")(fn)
    fn = click.option("--jobs", type=int, default=None, metavar="N",
                      help="run up to N independent steps at once on Ray (pip install 'srtbench[cluster]'); "
                      "default: one after another, no Ray")(fn)
    return fn


def run_steps(steps, dry_run, jobs, address, cpus_per_step, gpus_per_step) -> None:
    """Sequentially (today's way: each step a fresh process on this terminal) or on Ray with --jobs."""
    from srtbench import recipes
    from srtbench.config import require

    require(jobs is not None or (address is None and cpus_per_step is None and gpus_per_step is None),
            "--address, --cpus-per-step and --gpus-per-step schedule steps on Ray: add --jobs N")
    for flag, value in (("--cpus-per-step", cpus_per_step), ("--gpus-per-step", gpus_per_step)):
        require(value is None or math.isfinite(value), f"{flag} must be a finite number, got {value}")
    if dry_run or jobs is None:
        recipes.run(steps, dry_run=dry_run, echo=echo)
        return
    from srtbench import scheduler

    report = scheduler.run(steps, jobs, address, cpus_per_step, gpus_per_step, echo=echo)
    scheduler.outcome(report, len(steps))


@main.command("reproduce")
@click.argument("experiments", nargs=-1, metavar="EXPERIMENT...")
@click.option("--scale", default="cpu", show_default=True,
              help="cpu: Fashion-MNIST + SmallCNN, short schedules; paper: the paper's datasets, models, schedules")
@click.option("--seeds", default="0", show_default=True, metavar="LIST",
              help="train and evaluate every run once per training seed (0,1,2); seed 0 keeps the single-seed "
              "paths, seed s adds -sS; tables show mean ± std over seeds")
@click.option("--protocol", type=click.Choice(["epochs", "steps"]), default=None,
              help="steps (the cpu scale's default): every defense the same SGD steps, as the official code trains RT "
              "and SRT (runs/PRESET-steps/, tables titled so); epochs (the paper scale's, which trains the presets' "
              "epochs): every defense the same passes over its data, a semi-supervised defense's epoch covering "
              "D_L ∪ D_U (6x the SGD steps at the cpu scale)")
@click.option("--dry-run", is_flag=True,
              help="print the commands (finished ones as '# done: ...', trainings that no step still to run reads "
              "as '# not needed: ...') and stop")
@click.option("--list", "list_", is_flag=True, help="list the experiments")
@scheduling_options
def reproduce(experiments, scale, seeds, protocol, dry_run, list_, jobs, address, cpus_per_step, gpus_per_step):
    """Run the train and evaluate steps of each EXPERIMENT (table1..table9, figure1, figure2, figure7, figure9,
    quick), skipping finished ones, then print its table or draw its figure.

    \b
    srtbench reproduce table4 --dry-run                 the equivalent commands
    srtbench reproduce table3 table4 --jobs 2           two steps at once on an embedded Ray
    srtbench reproduce table4 --jobs 16 --address auto --gpus-per-step 0.25
    srtbench reproduce table6 --seeds 0,1,2             mean ± std over three training seeds
    """
    from srtbench import recipes
    from srtbench.config import require

    if list_:
        for name in recipes.RECIPES.names():
            echo(f"{name:8s} {recipes.RECIPES.meta(name)['title']}")
        return
    require(bool(experiments), "name an experiment (srtbench reproduce --list shows them)")
    steps = recipes.plan_all(experiments, scale, protocol, recipes.parse_seeds(seeds))
    run_steps(steps, dry_run, jobs, address, cpus_per_step, gpus_per_step)
