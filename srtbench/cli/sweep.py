"""`srtbench sweep FILE.toml`: a user-defined experiment (defenses × threats × hyperparameters × seeds), resumable,
one after another or on Ray with --jobs, its table printed at the end."""

from __future__ import annotations

import click

from srtbench.cli.app import main
from srtbench.cli.reproduce import run_steps, scheduling_options


@main.command("sweep")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--seeds", default=None, metavar="LIST", help="training seeds (0,1,2), instead of the file's")
@click.option("--dry-run", is_flag=True, help="print the commands (finished ones as '# done: ...') and stop")
@click.option("--allow-code", is_flag=True, help="let FILE name code to run ([evaluate] model = \"module:function\"); "
              "a sweep file is shared like data, so this is off unless you trust its author")
@click.option("--yes", is_flag=True, help=f"run a sweep of more than {1000:,} training runs")
@scheduling_options
def sweep_cmd(file, seeds, dry_run, allow_code, yes, jobs, address, cpus_per_step, gpus_per_step):
    """Train every defense × threat × [grid] point × seed of FILE, attack each with its [evaluate] settings and
    print the table (mean ± std over seeds); finished steps are skipped.

    \b
    srtbench sweep examples/sweeps/tiny.toml                 one step after another
    srtbench sweep examples/sweeps/lambda.toml --jobs 4      four at once on an embedded Ray
    """
    from srtbench import recipes, sweep

    spec = sweep.load(file, allow_code=allow_code)
    steps = sweep.plan(spec, recipes.parse_seeds(seeds) if seeds else None, yes=yes)
    run_steps(steps, dry_run, jobs, address, cpus_per_step, gpus_per_step)
