"""Every paper experiment as one recipe: the ordered training, evaluation and table or plot steps that produce it.

A recipe is a function of the scale returning `Step`s.  A step holds the configs of the library call it makes
(a training: the defense, preset and options that build a `trainer.Run`; an evaluation: checkpoints and an
`EvalConfig`; a table or plot: its arguments) and prints as the equivalent command line (`Step.command`, what
`srtbench reproduce --dry-run` lists and what a user can type).  `--scale paper` uses the paper's presets
(MNIST, CIFAR-10, the paper's models and schedules, full test sets).  `--scale cpu` runs the same
experiment on Fashion-MNIST with SmallCNN through the `fmnist-{pixel,spatial,compound}-cpu` presets
(the paper's 10,000 labeled + 50,000 unlabeled images, PGD-5 / worst-of-10, short schedules), every
run 5 epochs as the paper counts them (400 SGD steps on D_L; 2,400 for the defenses whose epochs cover
D_L ∪ D_U), attacked at the presets' budget (ℓ∞ 0.1) on the first 1,000 test images (250 for
the slow minimum-norm attacks and AutoAttack).  Every evaluation names its attacks' budgets and steps
(`pgd[epsilon=0.031,steps=20,step_size=0.003]`): at `--scale paper` the settings of the table's appendix for
its dataset (`PAPER_ATTACKS`), at `--scale cpu` Appendix C's for ε 0.1 (`CPU_ATTACKS`), so no number depends
on the battery's defaults, which follow the attacked checkpoint's training budget.  Results go to one CSV per
checkpoint in the scale's folder (results/fmnist/: a checkpoint is attacked once for every experiment that
shows it), each experiment's table and figures to FOLDER/EXPERIMENT/.  CIFAR-10 and MNIST settings both map to
the one Fashion-MNIST preset of their threat, so a two-dataset table has one Fashion-MNIST group.  A step
whose output exists (evaluate: holds every row it would write, for the checkpoint as it is now) is
skipped, so an interrupted recipe resumes where it stopped; tables and plots are always redrawn.

Two axes apply to every recipe: seeds (`plan(..., seeds=(0, 1, 2))` trains and evaluates each run once per
training seed; seed 0 keeps the paths of a single-seed run, seed s adds `-sS`) and the protocol (`epochs`, the
paper's, or `steps`: every run of the experiment gets the SGD steps of a semi-supervised run, in a `PRESET-steps/`
folder of its own).  Steps run one after another in fresh processes (`run`), or side by side on Ray
(`srtbench.scheduler`).
"""

from __future__ import annotations

import dataclasses
import pickle
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srtbench.attacks import attack_info
from srtbench.errors import SrtbenchError
from srtbench.registry import Registry

SCALES = ("cpu", "paper")
PROTOCOLS = ("epochs", "steps")
FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)  # Figures 1 and 7


# ---------------------------------------------------------------- steps: configs, their command lines, execution


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

        for summary in evaluate(list(self.checkpoints), self.config):
            for r in summary.runs:
                echo(f"{summary.target.label}: {r.attack} × {r.fraction:g}  robust {float(r.row['robust_acc']):.2f}%")
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
    """`tables.build` of the CSVs, rendered as markdown to `out` and printed."""

    csvs: tuple[str, ...]
    layout: str = "auto"
    out: str | None = None
    compare: str | None = None
    title: str | None = None
    kind = "table"

    def argv(self) -> list[str]:
        argv = ["srtbench", "table", *self.csvs, "--layout", self.layout]
        argv += ["--out", self.out] if self.out else []
        argv += ["--compare", self.compare] if self.compare else []
        return argv + (["--title", self.title] if self.title else [])

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
        text = tables.render(tables.build(results.collect(list(self.csvs)), layout, reference))
        if self.out:
            atomic_write_text(self.out, text)
        echo(text.rstrip("\n"))

    @property
    def name(self) -> str:
        return f"table {self.layout}"


@dataclass(frozen=True)
class PlotJob:
    """`plots.budget` / `plots.unlabeled` of results CSVs, or `plots.surface` of checkpoints."""

    kind_of_plot: str  # budget | unlabeled | surface
    inputs: tuple[str, ...]
    out: str
    options: tuple[tuple[str, Any], ...] = ()  # budget, unlabeled: attacks; surface: threat, index
    kind = "plot"

    def argv(self) -> list[str]:
        return ["srtbench", "plot", self.kind_of_plot, *self.inputs, *_flags(self.options, {}), "--out", self.out]

    def execute(self, echo: Callable[[str], None]) -> None:
        from srtbench import plots, results

        options = dict(self.options)
        if self.kind_of_plot == "surface":
            plots.surface(list(self.inputs), self.out, options.get("threat", "pixel"), index=options.get("index", 0))
        else:
            attacks = options["attacks"].split(",") if options.get("attacks") else None
            getattr(plots, self.kind_of_plot)(results.collect(list(self.inputs)), self.out, attacks)
        echo(f"wrote {self.out}.png and {self.out}.pdf")

    @property
    def name(self) -> str:
        return f"plot {self.kind_of_plot}"


Job = TrainJob | EvaluateJob | TableJob | PlotJob


@dataclass(frozen=True)
class Step:
    job: Job
    output: str = ""  # the file whose existence means done ("" = always run: tables and plots)
    rows: tuple[tuple[str, str, float], ...] = ()  # evaluate: (checkpoint, attack, fraction) the CSV must hold

    @property
    def kind(self) -> str:
        """train, evaluate, table or plot."""
        return self.job.kind

    @property
    def argv(self) -> tuple[str, ...]:
        """The equivalent command line, word by word."""
        return tuple(self.job.argv())

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The files this step reads that other steps may write (checkpoints, a teacher, CSVs)."""
        return tuple(self.job.inputs)

    @property
    def name(self) -> str:
        """A short name for progress displays."""
        return self.job.name

    @property
    def log(self) -> str:
        """Where the step's output goes when it runs away from a terminal (beside its results)."""
        import hashlib

        if self.kind == "train":
            return str(Path(self.output).with_suffix(".log"))
        digest = hashlib.sha256(self.command.encode()).hexdigest()[:8]
        if self.kind == "evaluate":
            return str(Path(self.output).with_suffix("")) + f".evaluate-{digest}.log"
        out = getattr(self.job, "out", None) or "results/table"
        return str(Path(out).with_suffix("")) + f".{self.kind}-{digest}.log"

    def resumed(self) -> Step:
        """A training run cut short left its resume state behind (NAME.resume, or an older version's NAME.last.pt):
        continue it instead of starting over."""
        from srtbench.checkpoint import legacy_resume_path, resume_path

        if self.kind == "train" and (resume_path(self.output).exists() or legacy_resume_path(self.output).exists()):
            return dataclasses.replace(self, job=dataclasses.replace(self.job, resume=True))
        return self

    def execute(self, echo: Callable[[str], None] = print) -> None:
        """Make the library call, in this process (`run` and the scheduler give each step a fresh one)."""
        self.job.execute(echo)

    def done(self) -> bool:
        if not self.output or not Path(self.output).exists():
            return False
        if not self.rows:
            return True
        from srtbench import results

        try:
            df = results.read(self.output)
        except SrtbenchError:
            return False
        have = {(str(c), str(a), float(f)) for c, a, f in zip(df["checkpoint"], df["attack"], df["fraction"])}
        if not all(r in have for r in self.rows):
            return False
        # rows of an earlier file of the same name (a retrained model) are stale: evaluate the new one
        from srtbench.evaluate import sha256

        current = {c: sha256(c) for c in {r[0] for r in self.rows} if Path(c).exists()}
        return all(str(s) == current[str(c)] for c, s in zip(df["checkpoint"], df["checkpoint_sha256"])
                   if str(c) in current)


def train_step(defense: str, out: str, preset: str | None = None, options: Sequence[tuple[str, Any]] = ()) -> Step:
    return Step(TrainJob(defense, out, preset, tuple(options)), out)


def evaluate_step(checkpoints: Sequence[str], out: str, attacks: Sequence[str], fractions: Sequence[float] = (1.0,),
                  n: int = 1000, **config: Any) -> Step:
    """An evaluation whose output is done once the CSV holds a row per (checkpoint, attack name, fraction)."""
    from srtbench.evaluate import EvalConfig

    cfg = EvalConfig(attacks=",".join(attacks), fractions=tuple(float(f) for f in fractions), n=n, out=out, **config)
    names = [a.split("[")[0] for a in attacks]  # rows carry the attack's name, settings apart
    rows = tuple((c, a, float(f)) for c in checkpoints for a in names for f in fractions)
    return Step(EvaluateJob(tuple(checkpoints), cfg), out, rows)


@dataclass(frozen=True)
class Scale:
    """Which preset serves each of the paper's settings, and how many test images are attacked."""

    name: str
    presets: dict[str, str]
    n: int
    n_slow: int
    iterations: int | None = None  # SGD steps of a supervised run on LABELED_UNIT images, unless a recipe sets the
    # length (None: the preset's); other runs get as many epochs (`Plan.length`)
    train_extra: tuple[tuple[str, Any], ...] = ()  # options (field, value) added to every training run
    results: str = "results/paper-scale"  # one CSV per checkpoint, shared by every experiment; EXPERIMENT/ holds
    # each experiment's table and figures
    attack_settings: dict[str, str] = field(default_factory=dict)  # settings given to an attack named bare
    # per (experiment, dataset): the settings of every attack that experiment evaluates there ("" = none: bare);
    # where set, an attack or experiment missing from it is an error, never the battery's default
    table_settings: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def attack(self, spec: str, experiment: str = "", dataset: str = "") -> str:
        """`pgd` -> `pgd[epsilon=0.1,...]` with this scale's settings for the experiment's table on `dataset`; a spec
        with settings is kept."""
        if "[" in spec:
            return spec
        settings = self.attack_settings
        if self.table_settings:
            settings = self.table_settings.get((experiment, dataset), {})
            if spec not in settings:
                raise SrtbenchError(f"no {self.name}-scale settings for {spec} in {experiment} on {dataset}: add them"
                                    " to the recipes' settings table")
        return f"{spec}[{settings[spec]}]" if settings.get(spec) else spec

    def preset(self, setting: str) -> str:
        return self.presets[setting]


# the Fashion-MNIST presets train at the ℓ∞ budget of Table 6 (ε 0.1), so the cpu scale attacks there: Appendix C's
# FGSM and PGD-40 (step 0.005) for Table 6, the same budget and steps for MI-FGSM, the ℓ∞ C&W, AutoAttack and the
# compound attacks; the spatial attacks (the paper's 30°, 3 px), JSMA and the minimum-norm attacks keep the battery's
# settings (bare)
CPU_EPSILON = "epsilon=0.1"
CPU_PGD = f"{CPU_EPSILON},steps=40,step_size=0.005"
CPU_ATTACKS = {"fgsm": CPU_EPSILON, "pgd": CPU_PGD, "mifgsm": CPU_PGD, "cw": CPU_PGD, "autoattack": CPU_EPSILON,
               "pgd+": CPU_PGD, "gridadv+": CPU_PGD}

# ---------------------------------------------------------------- the paper's attack settings, table by table

# Appendix B (Section 4.1, and through Appendix D the spatial Tables 3, 5, 8): rotations up to 30°, translations up
# to 3 px; GridAdv over 31 rotations and 5 translations per direction.  The .t / .r variants attack one part, the
# other held at 0.  RandAdv's number of draws k is not in the paper: the battery's.
GRID = "rotations=31,translations=5"
PAPER_SPATIAL = {"randadv": "rotation=30,translation=3", "gridadv": f"rotation=30,translation=3,{GRID}",
                 "randadv.t": "rotation=0,translation=3", "gridadv.t": f"rotation=0,translation=3,{GRID}",
                 "randadv.r": "rotation=30,translation=0", "gridadv.r": f"rotation=30,translation=0,{GRID}"}


def paper_pixel(epsilon: str, steps: int, step_size: str) -> dict[str, str]:
    """Appendix E (Tables 4, 9): FGSM at ε; PGD and MI-FGSM with `steps` of `step_size`; the ℓ∞ C&W (the paper's C&W
    column, no settings given) at PGD's; AutoAttack (not in the paper) at PGD's ε; JSMA at advertorch's defaults θ 1,
    γ 1 (the paper's attacks are "implemented based on Advertorch"); point-wise, DDN and the ℓ2 C&W have no settings
    in the paper: the battery's.  The random start and MI-FGSM's decay are not in the paper: the battery's."""
    pgd = f"epsilon={epsilon},steps={steps},step_size={step_size}"
    return {"fgsm": f"epsilon={epsilon}", "pgd": pgd, "mifgsm": pgd, "cw": pgd, "jsma": "theta=1.0,gamma=1.0",
            "pointwise": "", "ddn": "", "cw-l2": "", "autoattack": f"epsilon={epsilon}"}


# Appendix E: CIFAR-10 "ε = 0.031 ..., the step size α = 0.007, and the iteration step is set to 10"; MNIST "PGD-40 and
# MI-FGSM-40 with step size 0.01 and FGSM under perturbation size 0.3"
TABLE4 = {"cifar10": paper_pixel("0.031", 10, "0.007"), "mnist": paper_pixel("0.3", 40, "0.01")}
# Appendix F: "the maximum perturbation size is the same as the one used in previous experiments": Table 4's pixel-wise
# settings with Appendix B's spatial ones
COMPOUND_ATTACKS = {d: {a: f"{TABLE4[d]['pgd']},rotation=30,translation=3,{GRID}" for a in ("pgd+", "gridadv+")}
                    for d in TABLE4}
PAPER_ATTACKS: dict[tuple[str, str], dict[str, str]] = {
    ("table1", "cifar10"): PAPER_SPATIAL,
    # Appendix B: "PGD-20 with step size 0.003 and FGSM under perturbation size 0.031"
    ("table2", "cifar10"): {"fgsm": "epsilon=0.031", "pgd": "epsilon=0.031,steps=20,step_size=0.003"},
    ("table3", "cifar10"): PAPER_SPATIAL, ("table3", "mnist"): PAPER_SPATIAL,
    ("table4", "cifar10"): TABLE4["cifar10"], ("table4", "mnist"): TABLE4["mnist"],
    ("table5", "mnist"): PAPER_SPATIAL,
    # Appendix C: "PGD-40 with step size 0.005 and FGSM under perturbation size 0.1"
    ("table6", "mnist"): {"fgsm": "epsilon=0.1", "pgd": "epsilon=0.1,steps=40,step_size=0.005"},
    # Appendix J (fast SRT): "Other settings are the same as those used in Section 4.2-4.3" (Tables 3 and 4)
    ("table8", "cifar10"): PAPER_SPATIAL, ("table9", "cifar10"): TABLE4["cifar10"],
    **{("figure1", d): {**TABLE4[d], **PAPER_SPATIAL, **COMPOUND_ATTACKS[d]} for d in TABLE4},
    **{("figure7", d): COMPOUND_ATTACKS[d] for d in TABLE4},
    # Section 4.5 (Figure 2) and Appendix J (Figure 9): "the same as those used in Section 4.2-4.3"
    **{("figure2", d): {**TABLE4[d], **PAPER_SPATIAL} for d in TABLE4},
    ("figure9", "cifar10"): {**TABLE4["cifar10"], **PAPER_SPATIAL},
}

LABELED_UNIT = 10_000  # the paper's |D_L|

SCALE_PRESETS = {
    "paper": Scale("paper", {
        "cifar10-spatial-table1": "cifar10-spatial-table1", "cifar10-pixel-table2": "cifar10-pixel-table2",
        "cifar10-spatial": "cifar10-spatial-table3", "mnist-spatial": "mnist-spatial-table5",
        "cifar10-pixel": "cifar10-pixel-table4", "mnist-pixel": "mnist-pixel-table4",
        "mnist-pixel-table6": "mnist-pixel-table6",
        "cifar10-fast-spatial": "cifar10-fast-table8", "cifar10-fast-pixel": "cifar10-fast-table9",
    }, n=10_000, n_slow=10_000, table_settings=PAPER_ATTACKS),
    "cpu": Scale("cpu", {
        **{s: "fmnist-spatial-cpu" for s in ("cifar10-spatial-table1", "cifar10-spatial", "mnist-spatial",
                                              "cifar10-fast-spatial")},
        **{s: "fmnist-pixel-cpu" for s in ("cifar10-pixel-table2", "cifar10-pixel", "mnist-pixel",
                                            "mnist-pixel-table6", "cifar10-fast-pixel")},
    }, n=1_000, n_slow=250, iterations=400, train_extra=(("check_every", 5), ("amp", False)),
        results="results/fmnist",
        attack_settings=CPU_ATTACKS),
}
# why 400 steps at the CPU scale: 5 epochs of D_L (10,000 / 128 = 79 steps each), where SmallCNN has left its
# chance plateau and AT clears 60% PGD accuracy; fp32 (--no-amp) wherever it runs, so a row trained on a GPU
# compares with one trained on the CPU; an SRT epoch covers D_L ∪ D_U (469 steps), so equal epochs give
# it 2,400 (`Plan.length`), and Table 4 adds AT at 2,400 steps as a control; the held-out check every 5 epochs
# the compound experiments (Figures 1, 7): the paper gives no separate schedule, so its pixel-wise one is used
COMPOUND = {"paper": {"cifar10-pixel": "cifar10-pixel-table4", "mnist-pixel": "mnist-pixel-table4"},
            "cpu": {"cifar10-pixel": "fmnist-compound-cpu", "mnist-pixel": "fmnist-compound-cpu"}}
# SRT+'s λ at both scales: Appendix F gives none; 0.2 is SRT's spatial λ (Section 4.2), the smaller of its two, as
# the srt defense takes for any non-pixel threat (the pixel-wise presets' λ = 1 would otherwise win at the paper scale)
SRT_PLUS = {"threat": "compound", "lam": 0.2}
# the unlabeled-data sweep of Figure 2 (|D_U|), beside |D_L| of the scale's presets (10,000 at both scales)
UNLABELED_SWEEP = {"paper": {"cifar10": (0, 10_000, 20_000, 30_000, 40_000),
                             "mnist": (0, 10_000, 20_000, 30_000, 40_000, 50_000)},
                   "cpu": {"fashion-mnist": (0, 10_000, 20_000, 50_000)}}
N_LABELED = {"paper": 10_000, "cpu": 10_000}
N_UNLABELED = {"paper": None, "cpu": 50_000}  # the presets' own |D_U|: that sweep point is the tables' run


def check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise SrtbenchError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")


def check_protocol(protocol: str, scale: str) -> None:
    if protocol not in PROTOCOLS:
        raise SrtbenchError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if protocol == "steps" and not SCALE_PRESETS[scale].iterations:
        raise SrtbenchError(f"--protocol steps needs a scale that fixes run lengths in SGD steps (cpu); the {scale} "
                            "scale trains the presets' epochs")


def seed_suffix(seed: int) -> str:
    """Seed 0 keeps a single-seed run's paths (results computed before seeds were an axis stay valid)."""
    return f"-s{seed}" if seed else ""


class Plan:
    """Collects the steps of one recipe, sharing checkpoints between recipes through their file names.

    A recipe is built once per seed (`seed` is the one being built): trainings and evaluations are per seed, the
    table or figure that closes the recipe is added once, after the last seed, over every seed's CSVs."""

    def __init__(self, scale: str, experiment: str, protocol: str = "epochs", seeds: Sequence[int] = (0,)):
        check_scale(scale)
        check_protocol(protocol, scale)
        self.scale = SCALE_PRESETS[scale]
        self.experiment = experiment
        self.protocol = protocol
        self.seeds = tuple(seeds)
        self.seed = self.seeds[0]
        self.steps: list[Step] = []
        self.csvs: list[str] = []  # the evaluation CSVs this experiment's table or figure reads
        self.evaluations = self.scale.results  # where they go (shared: a checkpoint is attacked once for all)
        self.datasets: dict[str, str] = {}  # checkpoint -> the dataset of the preset it is trained on

    @property
    def results_dir(self) -> str:
        # never under results/paper/, which holds the paper's published numbers
        return f"{self.scale.results}/{self.experiment}" + ("-steps" if self.protocol == "steps" else "")

    @property
    def last_seed(self) -> bool:
        return self.seed == self.seeds[-1]

    def _add(self, step: Step) -> Step:
        if step not in self.steps:
            self.steps.append(step)
        return step

    def train(self, defense: str, preset: str, lam: float | None = None, n_unlabeled: int | None = None,
              label: str | None = None, extra: Mapping[str, Any] | None = None, tag: str = "") -> str:
        """One run (of the seed being built); `extra` holds further options by field name (`{"teacher": path}`)."""
        extra = dict(extra or {})
        name = defense + (f"-lam{lam:g}" if lam is not None else "") + (f"-u{n_unlabeled}" if n_unlabeled is not None
                                                                       else "") + tag + seed_suffix(self.seed)
        # the preset fixes dataset, model and schedule: recipes share runs; the steps protocol keeps its own
        folder = preset + ("-steps" if self.protocol == "steps" else "")
        out = f"runs/{folder}/{name}.pt"
        options: list[tuple[str, Any]] = []
        if lam is not None:
            options.append(("lam", lam))
        if n_unlabeled is not None:
            options.append(("n_unlabeled", n_unlabeled))
        if label is not None:
            options.append(("label", label))
        if self.scale.iterations and not {"iterations", "epochs"} & set(extra):
            options.append(("iterations", self.length(defense, preset, n_unlabeled, extra)))
        options += self.scale.train_extra
        options += extra.items()
        if self.seed:
            options.append(("seed", self.seed))
        self._add(train_step(defense, out, preset, options))
        from srtbench.presets import PRESETS

        self.datasets[out] = PRESETS.get(preset).data["dataset"]
        return out

    def length(self, defense: str, preset: str, n_unlabeled: int | None = None,
               extra: Mapping[str, Any] | None = None) -> int:
        """A run's length at a fixed-length scale: the scale's steps per LABELED_UNIT labeled images, scaled by the
        images one epoch of this run passes over, so every run gets the same number of epochs, as in the paper
        (Section 4: an epoch of a semi-supervised defense covers D_L ∪ D_U, its batches split in proportion to the
        two sets, so it takes (|D_L| + |D_U|) / |D_L| times the steps of a supervised one).  Under the steps
        protocol every run gets the length of a semi-supervised run on the preset's D_L ∪ D_U."""
        from srtbench.defenses import DEFENSES
        from srtbench.presets import PRESETS

        data = PRESETS.get(preset).data
        if self.protocol == "steps":
            return round(self.scale.iterations * (data["n_labeled"] + (data["n_unlabeled"] or 0)) / LABELED_UNIT)
        n_labeled = (extra or {}).get("n_labeled", data["n_labeled"])
        n_u = data["n_unlabeled"] if n_unlabeled is None else n_unlabeled
        seen = n_labeled + (n_u if DEFENSES.get(defense).uses_unlabeled else 0)
        return round(self.scale.iterations * seen / LABELED_UNIT)

    def evaluate(self, checkpoint: str, attacks: Sequence[str], fractions: Sequence[float] = (1.0,),
                 n: int | None = None) -> None:
        """One CSV per checkpoint; fast and slow attacks are separate calls (the slow on fewer images)."""
        stem = "--".join(Path(checkpoint).parts[-2:]).removesuffix(".pt")
        out = f"{self.evaluations}/{stem}.csv"
        if out not in self.csvs:
            self.csvs.append(out)
        attacks = [self.scale.attack(a, self.experiment, self.datasets.get(checkpoint, "")) for a in attacks]
        slow = [a for a in attacks if attack_info(a.split("[")[0]).slow]  # on fewer images (AttackInfo.slow)
        fast = [a for a in attacks if a not in slow]
        for chosen, count in ((fast, n or self.scale.n), (slow, n or self.scale.n_slow)):
            if chosen:
                self._add(evaluate_step((checkpoint,), out, chosen, fractions, count))

    def table(self, layout: str) -> None:
        if not self.last_seed:  # one table over every seed's CSVs
            return
        title = None
        if self.protocol == "steps":
            from srtbench.tables import LAYOUTS

            title = f"{LAYOUTS.get(layout).title} (protocol: equal SGD steps for every defense)"
        # the cpu scale's Fashion-MNIST beside the paper's MNIST
        self._add(Step(TableJob(tuple(self.csvs), layout, f"{self.results_dir}/{self.experiment}.md",
                                "paper" if layout != "auto" else None, title)))

    def surface(self, checkpoints: Sequence[str], threat: str, index: int) -> None:
        if self.seed != self.seeds[0]:  # the surfaces of one seed's models
            return
        self._add(Step(PlotJob("surface", tuple(checkpoints), f"{self.results_dir}/surface-{threat}-{index}",
                               (("threat", threat), ("index", index)))))

    def plot(self, kind: str, attacks: str) -> None:
        if not self.last_seed:
            return
        self._add(Step(PlotJob(kind, tuple(self.csvs), f"{self.results_dir}/{self.experiment}",
                               (("attacks", attacks),))))


RECIPES: Registry[Callable[[Plan], None]] = Registry("experiment")


def recipe(name: str, title: str):
    return RECIPES.register(name, title=title)


# ---------------------------------------------------------------- Tables 1, 2: RT vs SRT over λ


def _lambda_sweep(plan: Plan, setting: str, lams: Sequence[float], attacks: Sequence[str], layout: str) -> None:
    preset = plan.scale.preset(setting)
    plan.evaluate(plan.train("standard", preset), attacks)
    for lam in lams:
        for defense in ("rt", "srt"):
            plan.evaluate(plan.train(defense, preset, lam), attacks)
    plan.table(layout)


@recipe("table1", "Table 1: RT vs SRT over λ, spatial attacks, CIFAR-10")
def _table1(plan: Plan) -> None:
    _lambda_sweep(plan, "cifar10-spatial-table1", (0.15, 0.2, 0.25, 0.3), ("randadv", "gridadv"), "table1")


@recipe("table2", "Table 2: RT vs SRT over λ, pixel-wise attacks, CIFAR-10")
def _table2(plan: Plan) -> None:
    _lambda_sweep(plan, "cifar10-pixel-table2", (0.2, 0.4, 0.6, 0.8), ("fgsm", "pgd"), "table2")


# ---------------------------------------------------------------- Tables 3, 4: SRT against its rivals

SPATIAL_ATTACKS = ("randadv", "gridadv", "randadv.t", "gridadv.t", "randadv.r", "gridadv.r")
PIXEL_ATTACKS = ("fgsm", "pgd", "mifgsm", "jsma", "cw", "pointwise", "ddn")  # Table 4's columns (cw: the ℓ∞ C&W)
MINIMUM_NORM = ("cw-l2",)  # the ℓ2 minimum-norm C&W, for its median ℓ2 distance (not a column of the paper)
TODAY = ("autoattack",)  # today's standard evaluation (Croce & Hein 2020), beside the paper's battery


@recipe("table3", "Table 3: spatial defenses (Standard, AT, Worst-of-k, KLR, SRT) under spatial attacks")
def _table3(plan: Plan) -> None:
    for spatial, pixel in (("cifar10-spatial", "cifar10-pixel"), ("mnist-spatial", "mnist-pixel")):
        s, p = plan.scale.preset(spatial), plan.scale.preset(pixel)
        # AT is the pixel-wise defense, trained as in Table 4 and attacked spatially (Section 4.2)
        for ckpt in (plan.train("standard", s), plan.train("at", p), plan.train("worst-of-k", s),
                     plan.train("klr", s), plan.train("srt", s, 0.2)):
            plan.evaluate(ckpt, SPATIAL_ATTACKS)
    plan.table("table3")


@recipe("table4", "Table 4: pixel-wise defenses (Standard, AT, TRADES, UAT, RST, SRT) under pixel-wise attacks")
def _table4(plan: Plan) -> None:
    for setting in ("cifar10-pixel", "mnist-pixel"):
        p = plan.scale.preset(setting)
        standard = plan.train("standard", p)
        runs = [standard, plan.train("at", p), plan.train("trades", p), plan.train("uat", p),
                # RST pseudo-labels D_U with a standard model trained on the same D_L (Carmon et al.)
                plan.train("rst", p, extra={"teacher": standard}), plan.train("srt", p, 1.0)]
        if plan.scale.iterations and plan.protocol == "epochs":  # a control the paper lacks: AT given as many SGD
            # steps as SRT's equal epochs (the steps protocol gives every run as many)
            long = plan.length("srt", p)
            runs.append(plan.train("at", p, label=f"AT ({long:,} steps)", extra={"iterations": long},
                                   tag=f"-steps{long}"))
        for ckpt in runs:
            plan.evaluate(ckpt, PIXEL_ATTACKS + MINIMUM_NORM + TODAY)
    plan.table("table4")


@recipe("table5", "Table 5: RT vs SRT over λ, spatial attacks, MNIST")
def _table5(plan: Plan) -> None:
    _lambda_sweep(plan, "mnist-spatial", (0.15, 0.2, 0.25, 0.3), ("randadv", "gridadv"), "table5")


@recipe("table6", "Table 6: RT vs SRT over λ, pixel-wise attacks, MNIST")
def _table6(plan: Plan) -> None:
    _lambda_sweep(plan, "mnist-pixel-table6", (0.2, 0.4, 0.6, 0.8), ("fgsm", "pgd"), "table6")


# ---------------------------------------------------------------- Tables 8, 9: fast SRT, with time


# fast SRT at the cpu scale keeps the paper's share of SRT's length (Table 8: 45,000 of 80,000 iterations; Table 9:
# 50 of 120 epochs) and peaks at LR-max 0.1, twice the presets' η (the paper's 0.2 is twice its 0.1)
FAST_SHARE = {"cifar10-fast-spatial": 45 / 80, "cifar10-fast-pixel": 50 / 120}


def _fast_srt(plan: Plan, setting: str, lam: float) -> str:
    preset, extra = plan.scale.preset(setting), {}
    if plan.scale.iterations:
        extra = {"lr_max": 0.1, "iterations": round(plan.length("srt", preset) * FAST_SHARE[setting])}
    return plan.train("fast-srt", preset, lam, extra=extra)


@recipe("table8", "Table 8: fast SRT vs Worst-of-k, KLR, SRT under spatial attacks, with training time")
def _table8(plan: Plan) -> None:
    s = plan.scale.preset("cifar10-spatial")
    attacks = ("gridadv", "gridadv.t", "gridadv.r")
    for ckpt in (plan.train("worst-of-k", s), plan.train("klr", s), plan.train("srt", s, 0.2),
                 _fast_srt(plan, "cifar10-fast-spatial", 0.2)):
        plan.evaluate(ckpt, attacks)
    plan.table("table8")


@recipe("table9", "Table 9: fast SRT vs AT, TRADES, SRT under pixel-wise attacks, with training time")
def _table9(plan: Plan) -> None:
    p = plan.scale.preset("cifar10-pixel")
    attacks = ("fgsm", "pgd", "mifgsm", "jsma", "cw", "ddn")
    for ckpt in (plan.train("at", p), plan.train("trades", p), plan.train("srt", p, 1.0),
                 _fast_srt(plan, "cifar10-fast-pixel", 1.0)):
        plan.evaluate(ckpt, attacks)
    plan.table("table9")


# ---------------------------------------------------------------- Figures 1, 7: compound attacks and defenses


@recipe("figure1", "Figure 1: single and compound defenses against PGD, GridAdv, PGD+, GridAdv+ over the budget")
def _figure1(plan: Plan) -> None:
    attacks = ("gridadv+", "pgd+", "pgd", "gridadv")
    for spatial, pixel in (("cifar10-spatial", "cifar10-pixel"), ("mnist-spatial", "mnist-pixel")):
        s, p = plan.scale.preset(spatial), plan.scale.preset(pixel)
        compound = COMPOUND[plan.scale.name][pixel]
        for ckpt in (plan.train("at", p), plan.train("worst-of-k", s),
                     plan.train("srt", p, 1.0), plan.train("srt", s, 0.2),  # λ tells pixel-wise from spatial
                     plan.train("at", compound, extra={"threat": "compound"}, tag="-compound"),
                     plan.train("srt", compound, extra=SRT_PLUS, tag="-compound")):
            plan.evaluate(ckpt, attacks, FRACTIONS)
    plan.plot("budget", ",".join(attacks))  # the CSVs hold other experiments' attacks too


# ---------------------------------------------------------------- Figure 2: the effect of unlabeled data


@recipe("figure2", "Figure 2: SRT's robust accuracy against the number of unlabeled examples")
def _figure2(plan: Plan) -> None:
    scenarios = (("pixel", "at", 1.0, "pgd"), ("spatial", "worst-of-k", 0.2, "gridadv"))
    for dataset, sweep in UNLABELED_SWEEP[plan.scale.name].items():
        prefix = "cifar10" if dataset == "cifar10" else "mnist"
        for scenario, defense, lam, attack in scenarios:
            preset = plan.scale.preset(f"{prefix}-{scenario}")
            for n in sweep:
                n = None if n == N_UNLABELED[plan.scale.name] else n  # shared with the tables' run
                plan.evaluate(plan.train("srt", preset, lam, n_unlabeled=n), (attack,))
            # the supervised reference has labels for every image the largest SRT run sees (Section 4.5:
            # all 60,000 MNIST / 50,000 CIFAR-10 training images at the paper's scale)
            every = {"n_labeled": N_LABELED[plan.scale.name] + max(sweep)}
            plan.evaluate(plan.train(defense, preset, n_unlabeled=0, extra=every, tag="-all-labeled"), (attack,))
    plan.plot("unlabeled", ",".join(attack for *_, attack in scenarios))


@recipe("figure7", "Figure 7: compound defenses AT+, SRT+, AT(avg), AT(max) against PGD+ and GridAdv+")
def _figure7(plan: Plan) -> None:
    for pixel in ("cifar10-pixel", "mnist-pixel"):
        compound = COMPOUND[plan.scale.name][pixel]
        for ckpt in (plan.train("at", compound, extra={"threat": "compound"}, tag="-compound"),
                     plan.train("srt", compound, extra=SRT_PLUS, tag="-compound"),
                     plan.train("at-avg", compound, extra={"threat": "compound"}),
                     plan.train("at-max", compound, extra={"threat": "compound"})):
            plan.evaluate(ckpt, ("gridadv+", "pgd+"), FRACTIONS)
    plan.plot("budget", "gridadv+,pgd+")


# ---------------------------------------------------------------- Figure 9: fast SRT's learning rate and length

# (LR-max values, training-length option, lengths): spatial runs count iterations, pixel-wise ones epochs
FAST_SWEEP = {
    "paper": {"cifar10-fast-spatial": ((0.1, 0.2), "iterations", (15_000, 30_000, 45_000)),
              "cifar10-fast-pixel": ((0.1, 0.2), "epochs", (10, 20, 30, 40, 50))},
    "cpu": {"cifar10-fast-spatial": ((0.05, 0.1), "iterations", (100, 200, 400)),
            "cifar10-fast-pixel": ((0.05, 0.1), "iterations", (100, 200, 400))},
}


@recipe("figure9", "Figure 9: fast SRT's robustness against maximum learning rate and training length")
def _figure9(plan: Plan) -> None:
    for setting, lam, attack in (("cifar10-fast-spatial", 0.2, "gridadv"), ("cifar10-fast-pixel", 1.0, "pgd")):
        preset = plan.scale.preset(setting)
        lrs, length, values = FAST_SWEEP[plan.scale.name][setting]
        for lr in lrs:
            for value in values:
                label = f"fast SRT (LR-max {lr:g}, {value:,} {length})"
                extra = {"lr_max": lr, length: value}
                plan.evaluate(plan.train("fast-srt", preset, lam, label=label, extra=extra,
                                         tag=f"-lrmax{lr:g}-{length}{value}"), (attack,))
    plan.table("auto")


# ---------------------------------------------------------------- the README's main job

# the demo trains the cheap model (standard, ~40 s on 2 cores) and attacks it beside the shipped reference
# checkpoints of the reproduction (AT, and SRT whose 2,400 steps take 17-26 minutes): under 2 minutes measured
QUICK_N = 500
QUICK_REFERENCE = ("models/fmnist-at.pt", "models/fmnist-srt-pixel.pt")  # `make models`, models/README.md


@recipe("quick", "Quick demo: standard training on Fashion-MNIST against the shipped AT and SRT models, FGSM and PGD")
def _quick(plan: Plan) -> None:
    preset = SCALE_PRESETS["cpu"].preset("mnist-pixel")
    # attacked at the budget the models were trained for (the cpu scale's ε 0.1), not Table 4's default of 0.3
    attacks = [SCALE_PRESETS["cpu"].attack(a) for a in ("fgsm", "pgd")]
    plan.evaluations = plan.results_dir  # 500 images, not the tables' 1,000: kept apart from the shared CSVs
    plan.evaluate(plan.train("standard", preset), attacks, n=QUICK_N)  # Table 4's standard run at this scale
    for shipped in QUICK_REFERENCE:
        plan.evaluate(shipped, attacks, n=QUICK_N)
    plan.table("auto")


# ---------------------------------------------------------------- Figure 3: decision surfaces


@recipe("figure3", "Figure 3: decision surfaces of standard training and SRT around test images")
def _figure3(plan: Plan) -> None:
    preset = plan.scale.preset("mnist-pixel")
    models = (plan.train("standard", preset), plan.train("srt", preset, 1.0))
    for index in (0, 1):
        plan.surface(models, "pixel", index)
    spatial = plan.scale.preset("mnist-spatial")
    plan.surface((plan.train("standard", spatial), plan.train("srt", spatial, 0.2)), "spatial", 0)


# ---------------------------------------------------------------- planning and running


def parse_seeds(text: str | Sequence[int]) -> tuple[int, ...]:
    """`0,1,2` (or a list from a sweep file) -> (0, 1, 2): distinct non-negative whole numbers below 2**32 (torch's
    generators take 64 bits; numpy's 32), in the order given."""
    if isinstance(text, str):
        try:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        except ValueError:
            raise SrtbenchError(f"--seeds must be comma-separated integers, got {text!r}") from None
    elif isinstance(text, (list, tuple)) and all(isinstance(s, int) and not isinstance(s, bool) for s in text):
        seeds = list(text)
    else:
        raise SrtbenchError(f"seeds must be a list of whole numbers, got {text!r}")
    name = "--seeds" if isinstance(text, str) else "seeds"
    if not seeds or min(seeds) < 0 or max(seeds) >= 2**32:
        raise SrtbenchError(f"{name} must be whole numbers in [0, 2**32), at least one, got {text!r}")
    if len(set(seeds)) < len(seeds):
        raise SrtbenchError(f"{name} must be distinct, got {text!r}")
    return tuple(seeds)


def plan(experiment: str, scale: str = "cpu", protocol: str = "epochs", seeds: Sequence[int] = (0,)) -> list[Step]:
    build = RECIPES.get(experiment)
    check_scale(scale)  # before `quick` pins its own scale, so a typo is never accepted
    p = Plan("cpu" if experiment == "quick" else scale, experiment, protocol, parse_seeds(seeds))
    for seed in p.seeds:
        p.seed = seed
        build(p)
    return p.steps


def plan_all(experiments: Sequence[str], scale: str = "cpu", protocol: str = "epochs",
             seeds: Sequence[int] = (0,)) -> list[Step]:
    """The steps of several experiments in order, each shared run or evaluation once."""
    steps: list[Step] = []
    for experiment in experiments:
        steps += [s for s in plan(experiment, scale, protocol, seeds) if s not in steps]
    return steps


def dependencies(steps: Sequence[Step]) -> list[set[int]]:
    """For each step, the earlier steps it must wait for: those writing a file it reads (an evaluation waits for its
    training, a table for its evaluations, RST for its teacher)."""
    writers: dict[str, list[int]] = {}
    out = []
    for i, step in enumerate(steps):
        out.append({w for path in step.inputs for w in writers.get(str(path), ())})
        if step.output:
            writers.setdefault(step.output, []).append(i)
    return out


def _invoke(step: Step) -> int:
    # a child process per step: each run starts clean (threads, seeds, memory), as when typed by hand
    return subprocess.run([sys.executable, "-m", "srtbench.worker"], input=pickle.dumps(step), check=False).returncode


def run(steps: Sequence[Step], dry_run: bool = False, echo: Callable[[str], None] = print,
        invoke: Callable[[Step], int] = _invoke) -> int:
    """Run the steps in order, skipping finished ones; with `dry_run` only list them. Returns the number run."""
    ran = 0
    for i, step in enumerate(steps, 1):
        finished = step.done()
        if dry_run:
            echo(("# done: " if finished else "") + step.command)
            continue
        if finished:
            echo(f"[{i}/{len(steps)}] done already: {step.command}")
            continue
        step = step.resumed()
        echo(f"[{i}/{len(steps)}] {step.command}")
        code = invoke(step)
        if code != 0:
            raise SrtbenchError(f"step {i}/{len(steps)} failed with exit code {code}: {step.command}")
        ran += 1
    return ran
