"""Plan, the collector of one recipe's steps, and the registry of recipes (`recipe`, `RECIPES`).

A recipe is a function of a `Plan`: it names the runs it trains and the attacks it evaluates them with, and the
plan turns them into steps at the plan's scale, protocol and seed, sharing a checkpoint or an evaluation with every
other recipe that names it (through their file names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from srtbench.attacks import attack_info
from srtbench.errors import SrtbenchError
from srtbench.recipes.jobs import PlotJob, TableJob
from srtbench.recipes.scales import LABELED_UNIT, SCALE_PRESETS, SCALES
from srtbench.recipes.step import Step, evaluate_step, train_step
from srtbench.registry import Registry
from srtbench.tables.layouts import LAYOUTS

PROTOCOLS = ("epochs", "steps")


def check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise SrtbenchError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")


def check_protocol(protocol: str, scale: str) -> None:
    if protocol not in PROTOCOLS:
        raise SrtbenchError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if protocol == "steps" and not SCALE_PRESETS[scale].equal_steps:
        raise SrtbenchError(f"--protocol steps needs a scale that fixes run lengths in SGD steps (cpu); the {scale} "
                            "scale trains the presets' epochs")


def seed_suffix(seed: int) -> str:
    """Seed 0 keeps a single-seed run's paths (results computed before seeds were an axis stay valid)."""
    return f"-s{seed}" if seed else ""


def qualified(label: str, note: str) -> str:
    """A row name with a note: "AT" -> "AT (4,800 steps)", "RT (λ = 1)" -> "RT (λ = 1, 4,800 steps)"."""
    return f"{label[:-1]}, {note})" if label.endswith(")") else f"{label} ({note})"


def counted(defense: str, preset: str, lam: float | None, label: str | None, steps: int) -> tuple[str, str]:
    """The file tag and row name of a run of `steps` SGD steps, both naming the count ("-steps4800",
    "AT (4,800 steps)"), so runs of another count never share a file or a row with it.  The name is the one the
    trainer would give the run (`Defense.label` of its resolved parameters: SRT without λ is "SRT (λ = 1)")."""
    from srtbench.data import DataConfig
    from srtbench.defenses import DEFENSES, DefenseParams
    from srtbench.neighborhoods import ThreatConfig
    from srtbench.presets import PRESETS

    if label is None:
        p, entry = PRESETS.get(preset), DEFENSES.get(defense)
        threat, dataset = ThreatConfig(**p.threat), DataConfig(**p.data).dataset
        given = {**p.overrides(defense)["params"], **({"lam": lam} if lam is not None else {})}
        params = entry.resolve(DefenseParams(**given), threat.threat, dataset, threat.epsilon)
        label = entry.label(params, threat.threat)
    return f"-steps{steps}", qualified(label, f"{steps:,} steps")


def check_cadence(extra: Sequence[tuple[str, Any]], defense: str, preset: str, n_unlabeled: int | None = None,
                  batch_size: int | None = None) -> list[tuple[str, Any]]:
    """A scale's extra training options, with the held-out check every about as many SGD steps for every run:
    `check_every` counts epochs, and an epoch of a semi-supervised run covers D_L ∪ D_U (D_U the run's own where it
    sets one), one of a run on smaller batches takes more steps, so its count is scaled by
    |D_L| / (|D_L| + |D_U|) · batch / the preset's batch (at the cpu scale: every 5 epochs of 79 steps, or every
    epoch of 469 or of 476)."""
    from srtbench.defenses import DEFENSES
    from srtbench.presets import PRESETS

    if "check_every" not in dict(extra):  # the scale checks at the presets' own cadence
        return list(extra)
    p = PRESETS.get(preset)
    n_unlabeled = (p.data.get("n_unlabeled") if n_unlabeled is None else n_unlabeled) or 0
    n_labeled = p.data["n_labeled"] if n_unlabeled and DEFENSES.get(defense).uses_unlabeled else None
    share = (batch_size or p.train["batch_size"]) / p.train["batch_size"]
    if n_labeled:
        share *= n_labeled / (n_labeled + n_unlabeled)
    return [(k, max(1, round(v * share)) if k == "check_every" else v) for k, v in extra]


class Plan:
    """Collects the steps of one recipe, sharing checkpoints between recipes through their file names.

    A recipe is built once per seed (`seed` is the one being built): trainings and evaluations are per seed, the
    table or figure that closes the recipe is added once, after the last seed, over every seed's CSVs."""

    def __init__(self, scale: str, experiment: str, protocol: str | None = None, seeds: Sequence[int] = (0,)):
        check_scale(scale)
        self.scale = SCALE_PRESETS[scale]
        self.protocol = protocol or self.scale.protocol  # the scale's default: steps at cpu, epochs at paper
        check_protocol(self.protocol, scale)
        self.experiment = experiment
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
        if self.protocol == "steps" and not {"iterations", "epochs"} & set(extra):  # the count names the run
            steps = self.length(defense, preset)
            more, label = counted(defense, preset, lam, label, steps)
            tag, extra["iterations"] = tag + more, steps
        name = defense + (f"-lam{lam:g}" if lam is not None else "") + (f"-u{n_unlabeled}" if n_unlabeled is not None
                                                                       else "") + tag + seed_suffix(self.seed)
        # the preset fixes dataset, model and schedule: recipes share runs; the steps protocol keeps its own
        folder = preset + ("-steps" if self.protocol == "steps" else "")
        out = f"runs/{folder}/{name}.pt"
        options = [(k, v) for k, v in (("lam", lam), ("n_unlabeled", n_unlabeled), ("label", label)) if v is not None]
        if self.scale.iterations and not {"iterations", "epochs"} & set(extra):
            options.append(("iterations", self.length(defense, preset, n_unlabeled, extra)))
        options += check_cadence(self.scale.train_extra, defense, preset, n_unlabeled, extra.get("batch_size"))
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
        images one epoch of this run passes over, so every run gets the same number of epochs (this reading of
        Section 4: an epoch of a semi-supervised defense covers D_L ∪ D_U, its batches split in proportion to the
        two sets, so it takes (|D_L| + |D_U|) / |D_L| times the steps of a supervised one).  Under the steps
        protocol every run gets the scale's `equal_steps`."""
        from srtbench.defenses import DEFENSES
        from srtbench.presets import PRESETS

        data = PRESETS.get(preset).data
        if self.protocol == "steps":
            return self.scale.equal_steps
        n_labeled = (extra or {}).get("n_labeled", data["n_labeled"])
        n_u = data["n_unlabeled"] if n_unlabeled is None else n_unlabeled
        seen = n_labeled + (n_u if DEFENSES.get(defense).uses_unlabeled else 0)
        return round(self.scale.iterations * seen / LABELED_UNIT)

    def evaluate(self, checkpoint: str, attacks: Sequence[str], fractions: Sequence[float] = (1.0,),
                 n: int | None = None, slow: bool = True) -> None:
        """One CSV per checkpoint; the slow attacks (none if not `slow`) are a separate call, on fewer images."""
        stem = "--".join(Path(checkpoint).parts[-2:]).removesuffix(".pt")
        out = f"{self.evaluations}/{stem}.csv"
        if out not in self.csvs:
            self.csvs.append(out)
        attacks = [self.scale.attack(a, self.experiment, self.datasets.get(checkpoint, "")) for a in attacks]
        slow_ones = [a for a in attacks if attack_info(a.split("[")[0]).slow]  # on fewer images (AttackInfo.slow)
        fast = [a for a in attacks if a not in slow_ones]
        for chosen, count in ((fast, n or self.scale.n), (slow_ones if slow else [], n or self.scale.n_slow)):
            if chosen:
                self._add(evaluate_step((checkpoint,), out, chosen, fractions, count))

    def table(self, layout: str, versus: str | None = None) -> None:
        """The table closing the recipe; `versus`: a row the others are tested against (`srtbench table --versus`)."""
        if not self.last_seed:  # one table over every seed's CSVs
            return
        steps = self.protocol == "steps"
        title = f"{LAYOUTS.get(layout).title} (protocol: equal SGD steps for every defense)" if steps else None
        # the cpu scale's Fashion-MNIST beside the paper's MNIST
        self._add(Step(TableJob(tuple(self.csvs), layout, f"{self.results_dir}/{self.experiment}.md",
                                "paper" if layout != "auto" else None, title, versus)))

    def surface(self, checkpoints: Sequence[str], threat: str, index: int) -> None:
        if self.seed != self.seeds[0]:  # the surfaces of one seed's models
            return
        self._add(Step(PlotJob("surface", tuple(checkpoints), f"{self.results_dir}/surface-{threat}-{index}",
                               (("threat", threat), ("index", index)))))

    def convergence(self) -> None:
        """Held-out curves and verdicts (`srtbench plot convergence`): the first seed's runs once trained, and with
        several seeds every run after the last."""
        name = "convergence" if self.seed == self.seeds[0] else "convergence-seeds" if self.last_seed else None
        if name:
            trained = tuple(s.output for s in self.steps if s.kind == "train")
            self._add(Step(PlotJob("convergence", trained, f"{self.results_dir}/{name}")))

    def plot(self, kind: str, attacks: str) -> None:
        if not self.last_seed:
            return
        self._add(Step(PlotJob(kind, tuple(self.csvs), f"{self.results_dir}/{self.experiment}",
                               (("attacks", attacks),))))


RECIPES: Registry[Callable[[Plan], None]] = Registry("experiment")


def recipe(name: str, title: str, protocol: str | None = None):
    """Registers a recipe; `protocol` pins the one it runs under unless the caller names one."""
    return RECIPES.register(name, title=title, protocol=protocol)
