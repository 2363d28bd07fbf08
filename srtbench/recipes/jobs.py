"""The jobs a recipe step runs (train, evaluate, table, plot): the library call each makes, and its command line.

A job holds the configs of one library call (a training: the defense, preset and options that build a
`trainer.Run`; an evaluation: checkpoints and an `EvalConfig`; a table or plot: its arguments), prints as the
equivalent command line (`argv`, what `srtbench reproduce --dry-run` lists and what a user can type) and names the
files it reads that other steps write (`inputs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srtbench.errors import SrtbenchError


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    if isinstance(value, (tuple, list)):
        return ",".join(_flag_value(v) for v in value)
    return str(value)


def _flags(options: Sequence[tuple[str, Any]], fields_by_name: Mapping[str, dataclasses.Field]) -> list[str]:
    """Options (field name, value) as the command line spells them: `--lambda 0.2`, `--no-amp`."""
    from srtbench.config import option_name

    argv: list[str] = []
    for name, value in options:
        flag = option_name(fields_by_name[name]) if name in fields_by_name else name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            argv += [f"--{flag}", _flag_value(value)]
    return argv


def _train_sections() -> dict[str, type]:
    from srtbench.data import DataConfig
    from srtbench.defenses import DefenseParams
    from srtbench.neighborhoods import ThreatConfig
    from srtbench.trainer import TrainConfig

    return {"params": DefenseParams, "threat": ThreatConfig, "data": DataConfig, "train": TrainConfig}


@dataclass(frozen=True)
class TrainJob:
    """What builds a `trainer.Run`: a defense, an optional preset and the options given over it (field names of
    DefenseParams, ThreatConfig, DataConfig, TrainConfig, in the order the command line prints them; `label` is the
    row name).  Dataclass defaults ← preset ← options, as `srtbench train` builds them."""

    defense: str
    out: str
    preset: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    resume: bool = False
    kind = "train"

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    def argv(self) -> list[str]:
        fields_by_name = {f.name: f for cls in _train_sections().values() for f in dataclasses.fields(cls)}
        argv = ["srtbench", "train", self.defense] + (["--preset", self.preset] if self.preset else [])
        argv += _flags(self.options, fields_by_name) + ["--out", self.out]
        return argv + (["--resume"] if self.resume else [])

    @property
    def inputs(self) -> tuple[str, ...]:
        teacher = self.option("teacher")
        return (teacher,) if teacher else ()

    def build(self):
        """The `trainer.Run` this job trains."""
        from srtbench.config import from_options
        from srtbench.defenses import DEFENSES
        from srtbench.presets import PRESETS
        from srtbench.trainer import Run

        defense = DEFENSES.get(self.defense)
        overrides = PRESETS.get(self.preset).overrides(self.defense) if self.preset else {}
        given = {k: v for k, v in self.options if k != "label"}
        configs, taken = {}, set()
        for section, cls in _train_sections().items():
            names = {f.name for f in dataclasses.fields(cls)}
            if section == "params":
                unread = sorted(k for k in given if k in names and k not in defense.params)
                if unread:
                    raise SrtbenchError(f"{self.defense} takes no {', '.join(unread)}")
                names &= set(defense.params)
            values = {k: v for k, v in overrides.get(section, {}).items() if k in names}
            values.update({k: v for k, v in given.items() if k in names})
            taken |= names & set(given)
            configs[section] = from_options(cls, values)
        unknown = sorted(set(given) - taken)
        if unknown:
            raise SrtbenchError(f"unknown training options: {', '.join(unknown)}")
        return Run(defense=self.defense, out=self.out, label=self.option("label"), preset=self.preset, **configs)

    def execute(self, echo: Callable[[str], None]) -> None:
        from srtbench.trainer import train

        result = train(self.build(), resume=self.resume)
        if result.interrupted:
            raise SrtbenchError(f"interrupted: progress saved to {result.last}; run again to continue")
        last = result.metrics[-1] if result.metrics else {}
        echo(f"saved {result.path}  clean {last.get('clean_acc', float('nan')):.2f}%  "
             f"robust {last.get('robust_acc', float('nan')):.2f}%  train time {result.train_time_s:.1f} s")

    @property
    def name(self) -> str:
        return f"train {Path(self.out).parent.name}/{Path(self.out).stem}"


@dataclass(frozen=True)
class EvaluateJob:
    """`evaluate.evaluate(checkpoints, config)`."""

    checkpoints: tuple[str, ...]
    config: Any  # evaluate.EvalConfig
    kind = "evaluate"
    ALWAYS = ("attacks", "fractions", "n")  # printed even at their defaults, as recipes have always written them

    def argv(self) -> list[str]:
        from srtbench.evaluate import EvalConfig

        default = EvalConfig()
        shown = [(f.name, getattr(self.config, f.name)) for f in dataclasses.fields(EvalConfig) if f.name != "out"
                 and (f.name in self.ALWAYS or getattr(self.config, f.name) != getattr(default, f.name))]
        fields_by_name = {f.name: f for f in dataclasses.fields(EvalConfig)}
        return ["srtbench", "evaluate", *self.checkpoints, *_flags(shown, fields_by_name), "--out", self.config.out]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.checkpoints

    def execute(self, echo: Callable[[str], None]) -> None:
        from srtbench.evaluate import evaluate
        from srtbench.evaluate.evaluation import earlier_notes

        for summary in evaluate(list(self.checkpoints), self.config):
            for r in summary.runs:
                echo(f"{summary.target.label}: {r.attack} × {r.fraction:g}  robust {float(r.row['robust_acc']):.2f}%")
            for note in earlier_notes(self.config.out, summary):
                echo(note)
        echo(f"rows in {self.config.out}")

    @property
    def name(self) -> str:
        names = ",".join(a.split("[")[0] for a in _split_specs(self.config.attacks))
        return f"evaluate {' '.join(Path(c).stem for c in self.checkpoints)} {names}"


def _split_specs(attacks: str) -> list[str]:
    from srtbench.attacks import split_specs

    return split_specs(attacks)


@dataclass(frozen=True)
class TableJob:
    """`tables.build` of the CSVs, rendered as markdown to `out` and printed; `versus`: the row every other is tested
    against (`srtbench table --versus`)."""

    csvs: tuple[str, ...]
    layout: str = "auto"
    out: str | None = None
    compare: str | None = None
    title: str | None = None
    versus: str | None = None
    kind = "table"

    def argv(self) -> list[str]:
        argv = ["srtbench", "table", *self.csvs, "--layout", self.layout]
        argv += ["--out", self.out] if self.out else []
        argv += ["--compare", self.compare] if self.compare else []
        argv += ["--title", self.title] if self.title else []
        return argv + (["--versus", self.versus] if self.versus else [])

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.csvs

    def execute(self, echo: Callable[[str], None]) -> None:
        from srtbench import results, tables
        from srtbench.runtime import atomic_write_text

        layout = tables.LAYOUTS.get(self.layout)
        if self.title:
            layout = dataclasses.replace(layout, title=self.title)
        reference = tables.reference_results(self.compare) if self.compare else None
        text = tables.render(tables.build(results.collect(list(self.csvs)), layout, reference, versus=self.versus))
        if self.out:
            atomic_write_text(self.out, text)
        echo(text.rstrip("\n"))

    @property
    def name(self) -> str:
        return f"table {self.layout}"


@dataclass(frozen=True)
class PlotJob:
    """`plots.budget` / `plots.unlabeled` of results CSVs, `surfaces.surface` of checkpoints, or the convergence of
    the trainings that wrote checkpoints (`convergence.convergence`)."""

    kind_of_plot: str  # budget | unlabeled | surface | convergence
    inputs: tuple[str, ...]
    out: str
    options: tuple[tuple[str, Any], ...] = ()  # budget, unlabeled: attacks; surface: threat, index
    kind = "plot"

    def argv(self) -> list[str]:
        return ["srtbench", "plot", self.kind_of_plot, *self.inputs, *_flags(self.options, {}), "--out", self.out]

    def needs(self, path: str) -> bool:
        """Whether drawing reads the file `path` itself: a convergence figure reads only a training's held-out
        checks, which its values CSV may have kept (`convergence.drawable`)."""
        from srtbench.convergence import drawable

        return self.kind_of_plot != "convergence" or not drawable(path, self.out)

    def execute(self, echo: Callable[[str], None]) -> None:
        PLOTTERS.get(self.kind_of_plot, _results_plot)(self, echo)
        echo(f"wrote {self.out}.png and {self.out}.pdf")

    @property
    def name(self) -> str:
        return f"plot {self.kind_of_plot}"


def _results_plot(job: PlotJob, echo: Callable[[str], None]) -> None:
    """budget, unlabeled: a figure of results CSVs (`plots.KIND`)."""
    from srtbench import plots, results

    attacks = dict(job.options).get("attacks")
    figure = getattr(plots, job.kind_of_plot)
    figure(results.collect(list(job.inputs)), job.out, attacks.split(",") if attacks else None)


def _surface_plot(job: PlotJob, echo: Callable[[str], None]) -> None:
    from srtbench import surfaces

    options = dict(job.options)
    surfaces.surface(list(job.inputs), job.out, options.get("threat", "pixel"), index=options.get("index", 0))


def _convergence_plot(job: PlotJob, echo: Callable[[str], None]) -> None:
    """The held-out curves of the checkpoints' trainings, and each run's verdict."""
    from srtbench.convergence import convergence

    for verdict in convergence(job.inputs, job.out).values():
        echo(verdict.line())


# the figures that are not drawn from results CSVs, by `PlotJob.kind_of_plot`
PLOTTERS: dict[str, Callable[[PlotJob, Callable[[str], None]], None]] = {
    "surface": _surface_plot, "convergence": _convergence_plot}

Job = TrainJob | EvaluateJob | TableJob | PlotJob
