"""One step of a recipe: a job, the file whose existence means done, its log, and how it resumes.

`train_step` and `evaluate_step` build the two kinds whose output can be finished already: a training is done when
its checkpoint exists, an evaluation when its CSV holds every row it would write, for the checkpoint as it is now.
Tables and plots are always redrawn. A training nothing still to run reads is skipped (`runner.skipped`).
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srtbench.errors import SrtbenchError
from srtbench.recipes.jobs import EvaluateJob, Job, PlotJob, TrainJob


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

    def needs(self, path: str) -> bool:
        """Whether running this step reads the file `path` (a plot may draw from what it kept instead)."""
        return self.job.needs(path) if isinstance(self.job, PlotJob) else path in self.inputs

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
