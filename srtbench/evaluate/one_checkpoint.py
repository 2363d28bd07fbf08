"""One checkpoint's evaluation: each (attack, fraction) run once, resumed from its side file, with its per-row flags."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from srtbench import checks, distributed, results
from srtbench.attacks import AttackOutput, BuiltAttack, build
from srtbench.attacks.eot import mode, vote
from srtbench.errors import SrtbenchError
from srtbench.evaluate.batches import run_attack
from srtbench.evaluate.config import EvalConfig
from srtbench.evaluate.cost import CountingModel, peak_memory
from srtbench.evaluate.rows import key_columns, outcome_columns
from srtbench.evaluate.targets import Target
from srtbench.indicators.battery import attack_indicators
from srtbench.indicators.reruns import Subset
from srtbench.indicators.rounding import on_grid
from srtbench.maximizers import predict
from srtbench.outcomes import Examples, accuracy

SUBSET = 64  # examples the extra sanity runs (ε = 0, ε = 1, Square) use



@dataclass
class AttackRun:
    """One row and the per-example outcomes behind it."""

    row: dict[str, Any]
    examples: Examples
    attack: str
    group: str  # where its worst case is taken (`AttackInfo.group`)
    fraction: float


def _params_hash(params: dict) -> str:
    return hashlib.sha256(results.dumps(params).encode()).hexdigest()[:8]


class CheckpointEvaluation:
    def __init__(self, target: Target, cfg: EvalConfig, x, y, device, existing: set, progress):
        self.t, self.cfg, self.x, self.y, self.device = target, cfg, x, y, device
        self.existing, self.progress = existing, progress
        self.out = Path(cfg.out)
        self.clean_pred = predict(target.model, x, cfg.batch_size, device)
        self._clean = {1: self.clean_pred}  # C(x) per number of EOT passes
        self.index = torch.arange(len(x))
        # run key -> (output, cost); the sanity runs' flags; one AttackRun per row
        self.cache, self.zero_flags, self.runs = {}, {}, []
        sample = x[:SUBSET].to(device)
        self.common_flags = checks.of_the_model(target.model, sample, self.clean_pred[:SUBSET].to(device))

    @property
    def clean_acc(self) -> float:
        return accuracy(self.clean_pred == self.y)

    def clean(self, samples: int) -> torch.Tensor:
        """C(x): one pass, or under EOT the most frequent class of `samples` passes (attacks/eot.py)."""
        if samples not in self._clean:
            self._clean[samples] = mode(self.t.model, self.x, samples, self.cfg.batch_size, self.device)
        return self._clean[samples]

    def _predict(self, x_adv: torch.Tensor, atk: BuiltAttack, batch_size: int) -> torch.Tensor:
        """The prediction a row counts: one pass, or under EOT a majority vote of fresh passes."""
        if atk.eot == 1:
            return predict(self.t.model, x_adv, batch_size, self.device)
        return vote(self.t.model, x_adv, self.clean(atk.eot), atk.eot, batch_size, self.device)

    def _side_path(self, name: str, params: dict, fraction: float) -> str:
        t, c = self.t, self.cfg
        # a wrapped model's outcomes are its own; the plain model's file names stay as they were
        settings = _params_hash({**params, "model": t.model_name} if t.wrapped else params)
        return f"{self.out.stem}.examples/{t.sha256[:12]}-{name}-{settings}-f{fraction:g}-n{c.n}-s{c.seed}.pt"

    def _outputs(self, attack: BuiltAttack, label: str) -> tuple[AttackOutput, dict[str, Any]]:
        """The attack's output on all examples and its cost: wall time, the model's forward and backward passes (over
        every rank) and peak memory.  A minimum-norm run serves every fraction, and each of their rows shows it."""
        if attack.run_key not in self.cache:
            task = self.progress.add_task(label, total=len(self.x), info="")
            counted = CountingModel(self.t.model)
            start = time.perf_counter()
            with peak_memory(self.device) as memory:
                out = run_attack(counted, attack, self.x, self.clean(attack.eot), self.cfg.batch_size, self.device,
                                 self.cfg.seed, self.progress, task)
            wall = time.perf_counter() - start
            passes = distributed.gather((counted.forward_images, counted.backward_images), distributed.current())
            self.cache[attack.run_key] = (out, {"wall_time_s": round(wall, 3),
                                                "forward_passes": sum(f for f, _ in passes),
                                                "backward_passes": sum(b for _, b in passes),
                                                "peak_memory_mb": memory["mb"]})
        return self.cache[attack.run_key]

    def run(self, spec: str, fraction: float) -> AttackRun:
        """One (attack, fraction): its row (every flag but those comparing rows, `cross_flags`) and outcomes. The
        side file is written as soon as the attack ends; the CSV once, after the cross-row flags."""
        atk = self._build(spec, fraction)
        key_row = key_columns(self.t, self.cfg, atk, fraction)
        side = self._side_path(atk.name, atk.params, fraction)
        done = None if self.cfg.force else self._finished(key_row, side)
        if done is not None:
            return AttackRun(*done, atk.name, atk.group, fraction)
        full, cost = self._outputs(atk, f"{self.t.label} · {spec} × {fraction:g}")
        out = atk.at_budget(full, self.x)
        adv_pred = self._predict(out.x_adv, atk, self.cfg.batch_size)
        again = self._predict(out.x_adv, atk, max(1, self.cfg.batch_size // 2 + 1))
        clean = self.clean(atk.eot)
        ex = Examples(self.index, self.y, clean, adv_pred, out.distance)
        flags = {**self.common_flags, "in_neighborhood": checks.in_neighborhood(out.inside),
                 "reclassified": checks.reclassified(adv_pred, again)}
        if self.cfg.sanity:
            flags["zero_budget"] = zero_budget(self, spec, atk)
        more, indicators = failure_indicators(self, atk, fraction, ex, out.x_adv)
        flags.update(more)
        row = {**key_row, **outcome_columns(ex, atk, accuracy(clean == self.y), self.device), "flags": flags,
               "per_example": side, **cost}
        if distributed.current().main:  # rank 0 writes, the others hold the same outcomes
            results.write_per_example(self.out.parent / side, ex.as_dict(), row, indicators)
        return AttackRun(row, ex, atk.name, atk.group, fraction)


    def _finished(self, key_row: dict, side: str) -> tuple[dict, Examples] | None:
        """The row and outcomes of this (attack, fraction) if done before: in --out, or only in its side file (an
        evaluation cut short before it wrote the CSV). A row without its side file is recomputed."""
        try:
            saved = results.read_per_example(self.out.parent / side)
        except SrtbenchError:
            return None
        key = results.key(key_row)
        row = next((r for r in self.existing_rows() if results.key(r) == key), None) if key in self.existing else None
        if row is None and "row" in saved:
            stored = json.loads(saved["row"])
            row = stored if results.key(stored) == key else None
        if row is None:
            return None
        parsed = {c: json.loads(row[c]) if isinstance(row[c], str) and row[c] else {}
                  for c in ("flags", "budget", "budget_source")}
        return {**row, **parsed}, Examples.from_dict(saved)

    def _build(self, spec: str, fraction: float) -> BuiltAttack:
        """The attack at this checkpoint's budgets; an attack that draws per batch records the batch size."""
        return build(spec, self.t.dataset, fraction, self.t.trained, self.cfg.batch_size)

    def existing_rows(self) -> list[dict]:
        if not hasattr(self, "_existing_rows"):
            df = results.read(self.out).drop(columns=["source"])
            self._existing_rows = [dict(r) for _, r in df.iterrows()]
        return self._existing_rows

def failure_indicators(ev: CheckpointEvaluation, atk: BuiltAttack, fraction: float, ex: Examples,
                       x_adv: torch.Tensor) -> tuple[dict, dict]:
    """A row's indicators of attack failure (srtbench/indicators): its flags, and the per-example tensors its side file
    keeps.  Every row but a minimum-norm attack's: adversarial examples that stop being adversarial on the 8-bit
    grid.  An adaptive evaluation adds the reruns, the path indicators and the binarization test, on the first
    SUBSET examples."""
    from srtbench.data import DATASETS

    clean = ev.clean(atk.eot)
    flags: dict = {}
    per: dict = {}
    if not atk.minimum_norm:  # a minimum-norm attack stops on the boundary by design: rounding toward x undoes it
        lost = ex.broken & (ev._predict(on_grid(atk, ev.x, x_adv), atk, ev.cfg.batch_size) == clean)
        flags["eight_bit"], per["eight_bit_lost"] = checks.eight_bit(int(lost.sum()), int(ex.broken.sum())), lost
    if ev.cfg.adaptive:
        k = min(SUBSET, len(ev.x))
        s = Subset(ev.t.model, ev.x[:k], clean[:k], ev.index[:k], ex.broken[:k], ev.cfg.seed, ev.cfg.batch_size,
                   ev.device)
        subset, more = attack_indicators(atk, s, ev.t.dataset, fraction, ev.t.trained,
                                         DATASETS.get(ev.t.dataset).num_classes)
        flags.update(more)
        per.update(subset, subset_index=ev.index[:k])
    return flags, per


def zero_budget(ev: CheckpointEvaluation, spec: str, atk: BuiltAttack) -> dict:
    """The `zero_budget` flag of an attack setting (once per run key): at fraction 0 it must leave the clean
    accuracy exactly."""
    if atk.run_key in ev.zero_flags:
        return ev.zero_flags[atk.run_key]
    zero = ev._build(spec, 0.0)
    if zero.minimum_norm:  # the unbounded run is cached; only the threshold changes
        x, label, out = ev.x, ev.y, zero.at_budget(ev._outputs(zero, "")[0], ev.x)
        clean = ev.clean_pred
    else:
        x, label, clean = ev.x[:SUBSET], ev.y[:SUBSET], ev.clean_pred[:SUBSET]
        out = run_attack(ev.t.model, zero, x, clean, ev.cfg.batch_size, ev.device, ev.cfg.seed)
    adv = predict(ev.t.model, out.x_adv, ev.cfg.batch_size, ev.device)
    flag = checks.zero_budget(accuracy(clean == label), accuracy((clean == label) & (adv == label)), len(x))
    ev.zero_flags[atk.run_key] = flag
    return flag
