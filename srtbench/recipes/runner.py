"""Planning and running recipes: the steps of named experiments, their dependencies, and running them in order."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence

from srtbench.errors import SrtbenchError
from srtbench.recipes.planning import RECIPES, Plan, check_scale
from srtbench.recipes.step import Step


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


def plan(experiment: str, scale: str = "cpu", protocol: str | None = None, seeds: Sequence[int] = (0,)) -> list[Step]:
    """The steps of one experiment; `protocol` None: the recipe's own if it pins one (`quick`), else the scale's."""
    build = RECIPES.get(experiment)
    check_scale(scale)  # before `quick` pins its own scale, so a typo is never accepted
    protocol = protocol or RECIPES.meta(experiment).get("protocol")
    p = Plan("cpu" if experiment == "quick" else scale, experiment, protocol, parse_seeds(seeds))
    for seed in p.seeds:
        p.seed = seed
        build(p)
    return p.steps


def plan_all(experiments: Sequence[str], scale: str = "cpu", protocol: str | None = None,
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


SKIPPED = {"done": "done already", "not needed": "not needed (what reads its checkpoint is done)"}


def skipped(steps: Sequence[Step]) -> list[str]:
    """Why each step need not run, "" where it must: "done" (its output is finished), or "not needed" for a training
    whose checkpoint no step still to run reads (its evaluations are in their CSVs, its figure kept its held-out
    checks). A clone that holds the results, not the checkpoints, so redraws the tables without training again; a
    training nothing reads still runs."""
    readers: list[list[int]] = [[] for _ in steps]
    for j, waits in enumerate(dependencies(steps)):
        for i in waits:
            readers[i].append(j)
    why = [""] * len(steps)
    for i in reversed(range(len(steps))):  # readers come after what they read
        step = steps[i]
        if step.done():
            why[i] = "done"
        elif step.kind == "train" and readers[i] and not any(
                not why[j] and steps[j].needs(step.output) for j in readers[i]):
            why[i] = "not needed"
    return why


def _invoke(step: Step) -> int:
    # a child process per step: each run starts clean (threads, seeds, memory), as when typed by hand
    return subprocess.run([sys.executable, "-m", "srtbench.worker"], input=pickle.dumps(step), check=False).returncode


def run(steps: Sequence[Step], dry_run: bool = False, echo: Callable[[str], None] = print,
        invoke: Callable[[Step], int] = _invoke) -> int:
    """Run the steps in order, skipping finished ones; with `dry_run` only list them. Returns the number run."""
    ran = 0
    for i, (step, why) in enumerate(zip(steps, skipped(steps)), 1):
        if dry_run:
            echo((f"# {why}: " if why else "") + step.command)
            continue
        if why:
            echo(f"[{i}/{len(steps)}] {SKIPPED[why]}: {step.command}")
            continue
        step = step.resumed()
        echo(f"[{i}/{len(steps)}] {step.command}")
        code = invoke(step)
        if code != 0:
            raise SrtbenchError(f"step {i}/{len(steps)} failed with exit code {code}: {step.command}")
        ran += 1
    return ran
