"""Checkpointing and resume: what a resume state holds, when it is saved, whether a run may continue from it,
and the final checkpoint and metrics CSV beside it.

A resume state keeps every rank's random states and running totals, the optimizer, where the run stands and the
fingerprint of the options that must match for --resume; continuing from it replays the run bit for bit on CPU.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import torch

from srtbench import checkpoint
from srtbench.config import to_dict
from srtbench.defenses import DefenseParams
from srtbench.distributed import all_sum, barrier, gather
from srtbench.errors import SrtbenchError
from srtbench.runtime import atomic_write_text, command_line, device_label, notice
from srtbench.trainer.run import Run, TrainResult
from srtbench.trainer.schedules import learning_rate

METRICS_COLUMNS = ("epoch", "step", "lr", "loss", "natural_loss", "robust_loss", "train_acc", "clean_acc",
                   "robust_acc", "epoch_time_s", "total_time_s", "robust_correct")


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    state = {"gen": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(gen: torch.Generator, state: dict[str, Any]) -> None:
    gen.set_state(state["gen"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# settings that do not change what a run computes: --resume may change them
NOT_FINGERPRINTED = ("device", "save_every", "save_every_steps")


def _fingerprint(run: Run, params: DefenseParams, names: tuple[str, ...]) -> dict[str, Any]:
    """What must match for --resume to continue the same run (the device, how often it saves may change)."""
    train = {k: v for k, v in to_dict(run.train).items() if k not in NOT_FINGERPRINTED}
    return {"defense": run.defense, "defense_params": params.as_dict(names), "threat": to_dict(run.threat),
            "data": to_dict(run.data), "train": train}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRICS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def _resume_state(run: Run, fingerprint: dict[str, Any], resume: bool, force: bool, main: bool):
    """The saved state to continue from (None: start afresh) and the old-style NAME.last.pt it came from, if so.

    --resume with nothing saved (a run killed before its first save) starts afresh with a notice; a finished
    run or a resume state at OUT is never trained over without --force."""
    final_path, last_path, _ = run.paths
    legacy = checkpoint.legacy_resume_path(run.out)
    if resume:
        source = next((p for p in (last_path, legacy) if p.exists()), None)
        if source is None and main:
            notice(f"{last_path}: nothing to resume (no such file); starting afresh")
        elif source is not None:
            if source == legacy and main:
                notice(f"{legacy}: resume state under its old name; continuing from it (saved as {last_path} "
                       "from now on)")
            state = checkpoint.load(source)
            if state.resume is None or state.resume.get("fingerprint") != _jsonable(fingerprint):
                raise SrtbenchError(f"{source}: written by a different run (defense or options differ); "
                                    "resume with the same options or start afresh under another --out")
            return state, legacy if source == legacy else None
    if final_path.exists() and not force and main:
        raise SrtbenchError(f"{final_path} exists (a finished run): choose another --out, or add --force to train "
                            "afresh over it")
    for path in (last_path, legacy):
        if path.exists() and not force and main:
            raise SrtbenchError(f"{path} exists: continue that run with --resume, or add --force to start afresh")
    return None, None


COLLAPSED, LEARNED = 1.5, 3.0  # × chance: a held-out clean accuracy this low after one this high is a collapse


class _SaveClock:
    """When the resume state is due between epoch ends: every `seconds` or every `steps` SGD steps (0: never)."""

    def __init__(self, seconds: float, steps: int, step: int):
        self.seconds, self.steps = seconds, steps
        self.saved(step)

    def saved(self, step: int) -> None:
        self.time, self.step = time.perf_counter(), step

    def due(self, step: int) -> bool:
        by_steps = self.steps > 0 and step - self.step >= self.steps
        return by_steps or (self.seconds > 0 and time.perf_counter() - self.time >= self.seconds)


class _Saving:
    """How a run is written: the checkpoints' meta, the divergence check, the resume state and the final
    checkpoint.  Mixed into _Training (loop.py), whose _Setup (setup.py) builds and restores what it saves."""

    def meta(self, metrics: dict[str, float], finished: bool, time_s: float) -> dict[str, Any]:
        run, cfg, total = self.run, self.cfg, self.total
        return {
            **checkpoint.model_meta(cfg.model, run.data.spec),
            "label": run.label or self.defense.label(self.params, run.threat.threat), "defense": run.defense,
            "defense_params": self.params.as_dict(self.defense.params), "threat": to_dict(run.threat),
            "train": {**to_dict(cfg), "schedule": self.schedule, "total_steps": total}, "data": to_dict(run.data),
            "seed": cfg.seed, "epoch": len(self.rows), "step": self.step, "metrics": metrics, "train_time_s": time_s,
            "preset": run.preset, "finished": finished, "world_size": self.d.world,
            "device": device_label(self.device), "threads": list(self.threads), "torch_version": str(torch.__version__),
            "lr_curve": [[s, learning_rate(cfg, self.schedule, s, total)]
                         for s in sorted({round(i * (total - 1) / 99) for i in range(100)})],
            "command": command_line(),
        }

    def check_finite(self) -> None:
        """Refuse to save a diverged run: a non-finite weight or loss stops it with one line (exit 2), and the
        resume state on disk stays the last finite one.  Runs only where the run saves (a sync each)."""
        weights = [n for n, p in self.model.state_dict().items() if p.is_floating_point() and not p.isfinite().all()]
        if weights or not self.totals.tensor().isfinite().all():
            what = f"weights ({weights[0]})" if weights else "loss"
            kept = f"{self.resume_path} keeps the last finite state" if self.resume_path.exists() else "nothing saved"
            raise SrtbenchError(f"training diverged by step {self.step}: non-finite {what}; {kept}. Lower --lr "
                                f"(now {self.cfg.lr:g}) or check the other hyperparameters")

    def check_collapse(self) -> None:
        """Stop a run that learned and then fell back to chance: its last held-out clean accuracy at most
        COLLAPSED × chance after an earlier check at LEARNED × chance or more (a weight update that kills the
        network leaves finite weights and a loss stuck at ln(classes), which no later step repairs).  The resume
        state on disk stays the last one before the fall; the metrics CSV has the fall."""
        chance = 100.0 / self.run.data.spec.num_classes
        checks = [(r["step"], r["clean_acc"]) for r in self.rows if not math.isnan(r["clean_acc"])]
        fell = len(checks) > 1 and checks[-1][1] <= COLLAPSED * chance and max(a for _, a in checks) >= LEARNED * chance
        if not all_sum(torch.tensor([float(fell)]), self.d)[0]:  # rank 0 checks; every rank stops with it
            return
        if not fell:  # another rank: rank 0 says why
            raise SrtbenchError(f"training collapsed by step {self.step} (rank 0's held-out check)")
        step, best = max(checks, key=lambda c: c[1])
        raise SrtbenchError(f"training collapsed by step {self.step}: held-out clean accuracy fell from {best:.1f}% "
                            f"(step {step:,}) to {checks[-1][1]:.1f}% (chance: {chance:.0f}%); {self.resume_path} "
                            f"keeps the state before. Lower --lr (now {self.cfg.lr:g}) or the defense's loss weights")

    def save_resume(self, finished: bool = False, time_s: float | None = None) -> None:
        """The resume state (every rank's generator and totals, gathered), written by rank 0."""
        self.check_finite()
        time_s = self.train_time if time_s is None else time_s
        rngs = gather(_rng_state(self.gen), self.d)
        totals = gather(self.totals.tensor().cpu(), self.d)
        self.saver.saved(self.step)
        if not self.d.main:
            return
        last = {k: self.rows[-1][k] for k in ("clean_acc", "robust_acc")} if self.rows else {}
        checkpoint.save(self.resume_path, self.model, self.meta(last, finished, time_s), resume={
            "epoch": self.epoch, "batch": self.batch, "step": self.step, "optimizer": self.optimizer.state_dict(),
            "rng": rngs, "acc": totals, "rows": self.rows, "train_time_s": time_s, "finished": finished,
            "fingerprint": _jsonable(self.fingerprint),
        })
        if self.legacy is not None and self.legacy.exists():
            self.legacy.unlink()  # continued from NAME.last.pt: NAME.resume now holds more

    def finish(self) -> TrainResult:
        """The final checkpoint (its metrics: the last held-out check) beside the metrics CSV."""
        self.check_finite()
        if self.d.main:
            final = self.rows[-1] if self.rows else {}
            metrics = {k: final.get(k, float("nan")) for k in ("clean_acc", "robust_acc")}
            checkpoint.save(self.final_path, self.model, self.meta(metrics, True, self.train_time))
            if not self.metrics_path.exists():
                _write_metrics(self.metrics_path, self.rows)
            if self.legacy is not None and self.legacy.exists():
                self.legacy.unlink()
        barrier(self.d)
        return TrainResult(self.final_path, self.resume_path, self.rows, False, self.train_time)
