"""`srtbench train DEFENSE ...` (one subcommand per registered defense) and `srtbench presets`.

Options are generated from the dataclasses (DefenseParams restricted to what the defense reads,
ThreatConfig, DataConfig, TrainConfig); a `--preset` fills in a paper setting and explicit options
override it.
"""

from __future__ import annotations

import sys
from dataclasses import fields

import click
from click.core import ParameterSource

from srtbench.cli.app import echo, main
from srtbench.config import click_options, from_options, option_name
from srtbench.data import DataConfig
from srtbench.defenses import DEFENSES, DefenseParams
from srtbench.neighborhoods import ThreatConfig
from srtbench.presets import PRESETS
from srtbench.trainer import Run, TrainConfig

SECTIONS = {"params": DefenseParams, "threat": ThreatConfig, "data": DataConfig, "train": TrainConfig}
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _build(section: str, cls: type, options: dict, ctx: click.Context, preset: dict, allowed=None):
    """Dataclass defaults ← preset overrides ← options given on the command line."""
    values = {}
    for f in fields(cls):
        if allowed is not None and f.name not in allowed:
            continue
        key = f.name  # config.click_options stores every option under its field's name
        given = key in options and ctx.get_parameter_source(key) not in (ParameterSource.DEFAULT, None)
        if given:
            values[f.name] = options[key]
        elif f.name in preset.get(section, {}):
            values[f.name] = preset[section][f.name]
        elif key in options:
            values[f.name] = options[key]
    return from_options(cls, values)


def default_out(defense: str, threat: str) -> str:
    """Where a run goes without --out: runs/srt-pixel.pt."""
    return f"runs/{defense}-{threat}.pt"


def _defense_command(name: str) -> click.Command:
    defense = DEFENSES.get(name)
    exclude = [f.name for f in fields(DefenseParams) if f.name not in defense.params]

    @click.pass_context
    def command(ctx, preset, out, resume, force, label, **options):
        from srtbench.runtime import set_threads
        from srtbench.trainer import train

        set_threads()  # this process's share of the cores ($SRTBENCH_THREADS), before any work
        overrides = PRESETS.get(preset).overrides(name) if preset else {}
        threat = _build("threat", ThreatConfig, options, ctx, overrides)
        out = out or default_out(name, threat.threat)
        run = Run(
            defense=name,
            out=out,
            params=_build("params", DefenseParams, options, ctx, overrides, allowed=defense.params),
            threat=threat,
            data=_build("data", DataConfig, options, ctx, overrides),
            train=_build("train", TrainConfig, options, ctx, overrides),
            label=label,
            preset=preset,
        )
        result = train(run, resume=resume, force=force)
        if result.interrupted:
            echo(f"interrupted: progress saved to {result.last}; continue with the same command plus --resume",
                       err=True)
            sys.exit(130)
        last = result.metrics[-1] if result.metrics else {}
        echo(f"saved {result.path}  clean {last.get('clean_acc', float('nan')):.2f}%  "
                   f"robust {last.get('robust_acc', float('nan')):.2f}%  ({run.threat.threat} check)  "
                   f"train time {result.train_time_s:.1f} s")

    command.__doc__ = f"{defense.objective.__doc__.strip().splitlines()[0]}\n\nSource: {defense.source}."
    command = click_options(TrainConfig)(command)
    command = click_options(DataConfig)(command)
    command = click_options(ThreatConfig)(command)
    command = click_options(DefenseParams, exclude=exclude)(command)
    command = click.option("--label", default=None,
                           help="row name in tables (default: the paper's, e.g. 'SRT (λ = 0.2)')")(command)
    command = click.option("--force", is_flag=True, help="train afresh over a finished run or resume state at OUT")(
        command)
    command = click.option("--resume", is_flag=True, help="continue from OUT's .resume state (same options); "
                           "without one, start afresh")(command)
    command = click.option("--out", default=None, help="final checkpoint path (default runs/DEFENSE-THREAT.pt; "
                           "beside it: .resume for --resume, .metrics.csv)")(command)
    command = click.option("--preset", type=click.Choice(PRESETS.names()), default=None, metavar="NAME",
                           help="a paper setting in one word (see `srtbench presets`); explicit options "
                           "override it")(command)
    return click.command(name, context_settings=CONTEXT,
                         short_help=f"[{', '.join(defense.threats)}] {defense.summary}")(command)


class _DefenseGroup(click.Group):
    def get_command(self, ctx, cmd_name):
        if cmd_name in DEFENSES:
            return _defense_command(cmd_name)
        return None

    def list_commands(self, ctx):
        return DEFENSES.names()

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name is not None and not name.startswith("-") and name not in DEFENSES:
            DEFENSES.get(name)  # one-line "unknown defense ..., choose one of ..." error
        return super().resolve_command(ctx, args)


@main.group("train", cls=_DefenseGroup, context_settings=CONTEXT)
def train_group():
    """Train a defense: `srtbench train DEFENSE [--out runs/NAME.pt] [--preset NAME] [options]`.

    `srtbench train DEFENSE --help` shows its hyperparameters with the paper's defaults.  Threats:
    --threat pixel | spatial | compound (AT+ = `at --threat compound`, SRT+ = `srt --threat compound`).
    RST needs a teacher: first `srtbench train standard --out runs/teacher.pt` (same --dataset and
    --n-labeled), then `srtbench train rst --teacher runs/teacher.pt ...`.  Several GPUs or machines:
    `torchrun --nproc-per-node N -m srtbench train ...`.
    """


@main.command("presets")
def presets():
    """List the presets (paper settings and short CPU runs) and what each sets."""
    for name in PRESETS.names():
        p = PRESETS.get(name)
        echo(f"{name}\n    {p.description}\n    source: {p.source}")
        sets = []
        for section, cls in SECTIONS.items():
            flags = {f.name: option_name(f) for f in fields(cls)}
            for key, value in p.overrides()[section].items():
                shown = ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else value
                sets.append(f"--{flags[key]} {shown}")
        echo(f"    sets: {' '.join(sets)}")
        echo(f"    for: {', '.join(p.defenses)}")
