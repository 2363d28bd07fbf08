"""One training loop for every defense: SGD with momentum and weight decay, the paper's schedules,
per-epoch metrics, a quick held-out robustness check, atomic checkpoints, exact resume and DDP.

The loop knows nothing about a defense beyond its objective (srtbench.defenses): each step draws one
batch of m examples (labeled + unlabeled in proportion, Section 4), calls the objective, and takes
an SGD step.  Runs under `torchrun` become DDP runs: every rank gets a disjoint share of each global
batch of both streams, DDP averages the gradients, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from srtbench import checkpoint, data
from srtbench.config import field, require, to_dict
from srtbench.defenses import DEFENSES, DefenseParams, at_progress
from srtbench.errors import SrtbenchError
from srtbench.maximizers import PGD, GridSearch, Sequential, eval_mode, misclassified
from srtbench.models import MODELS, create_model
from srtbench.neighborhoods import Compound, Neighborhood, PixelBall, Spatial, ThreatConfig
from srtbench.progress import progress_bar
from srtbench.runtime import (
    DEVICES,
    atomic_write_text,
    command_line,
    device_label,
    exact_fp32,
    resolve_device,
    set_deterministic,
)

METRICS_COLUMNS = ("epoch", "step", "lr", "loss", "natural_loss", "robust_loss", "train_acc", "clean_acc",
                   "robust_acc", "epoch_time_s", "total_time_s")


@dataclass
class TrainConfig:
    """The outer minimization: optimizer, schedule, length, held-out check and execution settings."""

    model: str = field("small-cnn", "architecture (see `srtbench models`)", choices=tuple(MODELS.names()))
    epochs: int = field(10, "passes over the batches (pixel-wise runs count epochs, Appendix B-C, E)")
    iterations: int | None = field(None, "train for this many SGD steps instead (spatial runs, Appendix B: 80,000)")
    batch_size: int = field(128, "global batch size m, labeled + unlabeled together (Appendix B)")
    lr: float = field(0.01, "initial learning rate η of the piecewise schedule (Appendix B-C, E)")
    momentum: float = field(0.9, "SGD momentum")
    weight_decay: float = field(5e-4, "SGD weight decay (official code: 5e-4 pixel-wise, 2e-4 spatial)")
    schedule: str | None = field(
        None, "piecewise: η·gamma^i after each milestone; cyclic: triangular 0 → lr-max → 0 (fast SRT, "
        "Figure 8). Default: the defense's (cyclic for fast-srt)", choices=("piecewise", "cyclic"))
    milestones: tuple[float, ...] = field((0.5, 0.75), "piecewise: fractions of the run where the rate decays")
    gamma: float = field(0.1, "piecewise: decay factor at each milestone")
    lr_max: float = field(0.2, "cyclic: peak learning rate (LR-max, Appendix J, Figure 9)")
    cycle_peak: float = field(0.4, "cyclic: fraction of the run at which the rate peaks (Figure 8)")
    check_size: int = field(500, "held-out check: the first N test images, scored after each epoch")
    check_steps: int = field(10, "held-out check: PGD steps of the pixel part (spatial parts use GridAdv)")
    check_every: int = field(1, "held-out check every this many epochs (and always after the last)")
    seed: int = field(0, "seed of initialization, batch order and the inner maximizers' randomness")
    device: str = field("auto", "where to train", choices=DEVICES)
    amp: bool = field(True, "bf16 autocast on CUDA (always off on CPU); --no-amp is exact fp32, TF32 off too")
    channels_last: bool = field(True, "channels_last memory format on CUDA (always off on CPU)")

    def __post_init__(self):
        require(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}")
        require(self.iterations is None or self.iterations >= 1, f"--iterations must be >= 1, got {self.iterations}")
        require(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        require(self.lr > 0 and self.lr_max > 0, "learning rates must be > 0")
        require(self.momentum >= 0 and self.weight_decay >= 0, "--momentum and --weight-decay must be >= 0")
        require(all(0 < m < 1 for m in self.milestones), f"--milestones are fractions in (0, 1), got {self.milestones}")
        require(0 < self.cycle_peak < 1, f"--cycle-peak must be in (0, 1), got {self.cycle_peak}")
        require(self.check_size >= 0 and self.check_steps >= 1 and self.check_every >= 1, "bad held-out check settings")
        self.milestones = tuple(self.milestones)


# ---------------------------------------------------------------- learning-rate schedules


def learning_rate(cfg: TrainConfig, schedule: str, step: int, total: int) -> float:
    """η at SGD step `step` of `total` (0-based)."""
    if schedule == "cyclic":
        # Appendix J / Wong et al. 2020: linear 0 → lr_max over the first cycle_peak of the run, then → 0
        t, peak = (step + 1) / total, cfg.cycle_peak
        return cfg.lr_max * (t / peak if t <= peak else max(0.0, (1 - t) / (1 - peak)))
    passed = sum(step >= round(m * total) for m in cfg.milestones)
    return cfg.lr * cfg.gamma**passed


# ---------------------------------------------------------------- distributed


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) → a process group:
    NCCL with one GPU per process on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device_name)
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=d.rank, world_size=world)
    return d, device


def _all_sum(values: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.world > 1:
        dist.all_reduce(values)
    return values


# ---------------------------------------------------------------- the held-out check


def check_attack(n: Neighborhood, steps: int):
    """Quick robustness check: PGD (uniform start, 2.5·ε/K steps) pixel-wise, GridAdv spatially, in
    sequence for a compound (PGD+); examples stop once misclassified."""
    if isinstance(n, PixelBall):
        return PGD(steps=steps, step_size=2.5 * n.epsilon / steps, start="uniform")
    if isinstance(n, Spatial):
        return GridSearch()
    if isinstance(n, Compound):
        return Sequential(tuple(check_attack(p, steps) for p in n.parts))
    raise TypeError(type(n).__name__)


def held_out_check(model: nn.Module, images: data.ImageSet, n: Neighborhood, steps: int, seed: int,
                   device: torch.device, chunk: int = 250) -> tuple[float, float]:
    """(clean accuracy, robust accuracy) in percent on `images`; its own generator, so it never
    disturbs the training randomness."""
    if len(images) == 0:
        return float("nan"), float("nan")
    attack, gen = check_attack(n, steps), torch.Generator().manual_seed(seed)
    clean = robust = 0
    with eval_mode(model):
        for lo in range(0, len(images), chunk):
            x, y = images.batch(torch.arange(lo, min(lo + chunk, len(images))))
            x, y = x.to(device), y.to(device)
            with torch.no_grad():
                clean += (model(x).argmax(1) == y).sum().item()
            theta = attack(model, n, x, y, _ce, done=misclassified, gen=gen)
            with torch.no_grad():
                robust += (model(n.apply(x, theta)).argmax(1) == y).sum().item()
    return 100.0 * clean / len(images), 100.0 * robust / len(images)


def _ce(logits, y):
    return torch.nn.functional.cross_entropy(logits, y, reduction="none")


# ---------------------------------------------------------------- the run


@dataclass
class Run:
    """Everything that defines a training run (all plain-data configs, recorded in the checkpoint)."""

    defense: str
    out: str
    params: DefenseParams = None  # type: ignore[assignment]
    threat: ThreatConfig = None  # type: ignore[assignment]
    data: data.DataConfig = None  # type: ignore[assignment]
    train: TrainConfig = None  # type: ignore[assignment]
    label: str | None = None
    preset: str | None = None

    def __post_init__(self):
        self.params = self.params or DefenseParams()
        self.threat = self.threat or ThreatConfig()
        self.data = self.data or data.DataConfig()
        self.train = self.train or TrainConfig()
        require(str(self.out).endswith(".pt"), f"--out must name a .pt file, got {self.out!r}")

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        out = Path(self.out)
        stem = out.with_suffix("")
        return out, Path(f"{stem}.last.pt"), Path(f"{stem}.metrics.csv")


@dataclass
class TrainResult:
    path: Path | None  # the final checkpoint (None when interrupted)
    last: Path
    metrics: list[dict[str, float]]
    interrupted: bool
    train_time_s: float


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to save and exit at the next step boundary; a second SIGINT aborts."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


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


def _gather(obj: Any, d: Dist) -> list[Any]:
    if d.world == 1:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def _load_teacher(path: str | None, run: Run, device: torch.device) -> nn.Module:
    if not path:
        raise SrtbenchError(
            "rst needs a teacher to pseudo-label D_U: pass --teacher CKPT, made first with "
            f"`srtbench train standard --dataset {run.data.dataset} --n-labeled {run.data.n_labeled} "
            "--out runs/teacher.pt`"
        )
    ckpt = checkpoint.load(path)
    if ckpt.meta["dataset"] != run.data.dataset:
        raise SrtbenchError(f"{path}: teacher was trained on {ckpt.meta['dataset']}, not {run.data.dataset}")
    return ckpt.build_model().to(device).eval()


def _fingerprint(run: Run, params: DefenseParams, names: tuple[str, ...]) -> dict[str, Any]:
    """What must match for --resume to continue the same run (the device may change)."""
    train = {k: v for k, v in to_dict(run.train).items() if k not in ("device",)}
    return {"defense": run.defense, "defense_params": params.as_dict(names), "threat": to_dict(run.threat),
            "data": to_dict(run.data), "train": train}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _channels_last(batch: data.Batch) -> data.Batch:
    cl = torch.channels_last
    xu = None if batch.x_unlabeled is None else batch.x_unlabeled.contiguous(memory_format=cl)
    return data.Batch(batch.x_labeled.contiguous(memory_format=cl), batch.y_labeled, xu)


def _write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRICS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def train(
    run: Run,
    *,
    labeled: data.ImageSet | None = None,
    unlabeled: data.UnlabeledSet | None = None,
    check: data.ImageSet | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    on_step=None,
) -> TrainResult:
    """Train `run.defense` and write the final checkpoint, the `.last.pt` resume checkpoint and the
    per-epoch metrics CSV beside `run.out`.

    `labeled` / `unlabeled` / `check` replace the sets named by `run.data` (tests use subsets);
    `on_step(step, stop)` is called after every SGD step, and `stop()` asks for the same clean exit as
    SIGINT.  A finished run at `run.out` is never overwritten unless `force`.  Resuming replays the
    interrupted epoch from its next batch with the saved random states, so on CPU the result equals the
    uninterrupted run's bit for bit.
    """
    cfg = run.train
    d, device = init_distributed(cfg.device)
    set_deterministic(device)
    defense = DEFENSES.get(run.defense)
    neighborhood = run.threat.build()
    params = defense.resolve(run.params, run.threat.threat, run.data.dataset, run.threat.epsilon)
    final_path, last_path, metrics_path = run.paths
    spec = run.data.spec
    fingerprint = _fingerprint(run, params, defense.params)

    state = None
    if resume:
        if not last_path.exists():
            raise SrtbenchError(f"{last_path}: nothing to resume (no such file); start without --resume")
        state = checkpoint.load(last_path)
        if state.resume is None or state.resume.get("fingerprint") != _jsonable(fingerprint):
            raise SrtbenchError(f"{last_path}: written by a different run (defense or options differ); "
                                "resume with the same options or start afresh under another --out")
    elif final_path.exists() and not force and d.main:
        raise SrtbenchError(f"{final_path} exists (a finished run): choose another --out, or add --force to train "
                            "afresh over it")
    elif last_path.exists() and not force and d.main:
        raise SrtbenchError(f"{last_path} exists: continue that run with --resume, or add --force to start afresh")

    if "teacher" in defense.params:
        params.attach_teacher(_load_teacher(params.teacher, run, device))

    if labeled is None:
        labeled, loaded_unlabeled = data.load_split(run.data)
        unlabeled = loaded_unlabeled if unlabeled is None else unlabeled
    if not defense.uses_unlabeled:
        unlabeled = None
    if check is None and cfg.check_size:
        test = data.load(run.data.dataset, False, run.data.data_dir, run.data.download)
        check = test.subset(torch.arange(min(cfg.check_size, len(test))))
    check = check if check is not None else data.ImageSet(torch.zeros(0, *spec.shape, dtype=torch.uint8),
                                                          torch.zeros(0, dtype=torch.long))

    per_batch = {}
    if "unlabeled_fraction" in defense.params and unlabeled is not None and len(unlabeled):
        b_u = round(cfg.batch_size * params.unlabeled_fraction)
        per_batch = {"labeled_per_batch": cfg.batch_size - b_u, "unlabeled_per_batch": b_u}
    batches = data.ProportionalBatches(labeled, unlabeled, cfg.batch_size, cfg.seed, spec.augment, d.rank, d.world,
                                       **per_batch)
    total = cfg.iterations or cfg.epochs * len(batches)
    n_epochs = math.ceil(total / len(batches))
    schedule = cfg.schedule or defense.schedule

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = create_model(cfg.model, spec.shape, spec.num_classes, spec.mean, spec.std).to(device)
    cuda = device.type == "cuda"
    if not cfg.amp:
        exact_fp32(device)
    if cuda and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 17 + d.rank)
    torch.manual_seed(cfg.seed + 7_919 * d.rank)  # dropout masks differ per rank, as their examples do

    epoch, start_batch, step, train_time = 0, 0, 0, 0.0
    rows: list[dict[str, float]] = []
    acc = torch.zeros(6, dtype=torch.float64)  # loss, natural, robust, steps, correct, count
    if state is not None:
        r = state.resume
        model.load_state_dict(state.state_dict)
        optimizer.load_state_dict(r["optimizer"])
        if len(r["rng"]) != d.world:
            raise SrtbenchError(f"{last_path}: saved by {len(r['rng'])} processes; resume with as many")
        _set_rng_state(gen, r["rng"][d.rank])
        epoch, start_batch, step = r["epoch"], r["batch"], r["step"]
        train_time, rows, acc = r["train_time_s"], list(r["rows"]), r["acc"][d.rank].clone()
        if r.get("finished"):
            epoch = n_epochs
    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)

    def meta(metrics: dict[str, float], finished: bool) -> dict[str, Any]:
        return {
            **checkpoint.model_meta(cfg.model, spec),
            "label": run.label or defense.label(params, run.threat.threat),
            "defense": run.defense,
            "defense_params": params.as_dict(defense.params),
            "threat": to_dict(run.threat),
            "train": {**to_dict(run.train), "schedule": schedule, "total_steps": total},
            "data": to_dict(run.data),
            "seed": cfg.seed,
            "epoch": len(rows),
            "step": step,
            "metrics": metrics,
            "train_time_s": train_time,
            "preset": run.preset,
            "finished": finished,
            "world_size": d.world,
            "device": device_label(device),
            "lr_curve": [[s, learning_rate(cfg, schedule, s, total)]
                         for s in sorted({round(i * (total - 1) / 99) for i in range(100)})],
            "command": command_line(),
        }

    def save_last(finished: bool = False) -> None:
        rngs = _gather(_rng_state(gen), d)
        accs = _gather(acc.clone(), d)
        if not d.main:
            return
        last_metrics = {k: rows[-1][k] for k in ("clean_acc", "robust_acc")} if rows else {}
        checkpoint.save(last_path, model, meta(last_metrics, finished), resume={
            "epoch": epoch, "batch": start_batch, "step": step, "optimizer": optimizer.state_dict(),
            "rng": rngs, "acc": accs, "rows": rows, "train_time_s": train_time, "finished": finished,
            "fingerprint": _jsonable(fingerprint),
        })

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and cfg.amp else contextlib.nullcontext()
    interrupted = False
    bar = progress_bar(disable=not (progress and d.main))
    with _StopFlag() as flag, bar:
        task = bar.add_task(f"{run.defense} {run.threat.threat}", total=total, completed=step, info="")
        stop_request = {"asked": False}

        def stop():
            stop_request["asked"] = True

        while epoch < n_epochs and step < total:
            epoch_start = time.perf_counter()
            for batch in batches.epoch(epoch, start=start_batch):
                if step >= total:
                    break
                lr = learning_rate(cfg, schedule, step, total)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = batch.to(device)
                if cuda and cfg.channels_last:
                    batch = _channels_last(batch)
                net.train()
                with autocast:
                    out = defense.objective(net, batch, neighborhood, at_progress(params, step / total), gen)
                optimizer.zero_grad(set_to_none=True)
                out["loss"].backward()
                optimizer.step()
                step, start_batch = step + 1, start_batch + 1
                acc += torch.tensor([out["loss"].item(), out["natural"].item(), out["robust"].item(), 1.0,
                                     out["correct"].item(), out["count"].item()], dtype=torch.float64)
                bar.update(task, completed=step, info=f"epoch {epoch + 1}/{n_epochs} loss {out['loss'].item():.3f}")
                if on_step is not None:
                    on_step(step, stop)
                asked = torch.tensor([float(flag.requested or stop_request["asked"])])
                if _all_sum(asked, d).item() > 0 and (step < total and start_batch < len(batches)):
                    train_time += time.perf_counter() - epoch_start
                    save_last()
                    interrupted = True
                    break
            if interrupted:
                break
            train_time += time.perf_counter() - epoch_start
            epoch_time = time.perf_counter() - epoch_start
            totals = _all_sum(acc.clone(), d)
            clean_acc = robust_acc = float("nan")
            last_epoch = epoch + 1 == n_epochs or step >= total
            if d.main and ((epoch + 1) % cfg.check_every == 0 or last_epoch):
                with autocast:
                    clean_acc, robust_acc = held_out_check(model, check, neighborhood, cfg.check_steps, cfg.seed,
                                                           device)
            n_steps = max(totals[3].item(), 1.0)
            rows.append({
                "epoch": epoch + 1, "step": step, "lr": learning_rate(cfg, schedule, step - 1, total),
                "loss": totals[0].item() / n_steps, "natural_loss": totals[1].item() / n_steps,
                "robust_loss": totals[2].item() / n_steps,
                "train_acc": 100.0 * totals[4].item() / max(totals[5].item(), 1.0),
                "clean_acc": clean_acc, "robust_acc": robust_acc,
                "epoch_time_s": epoch_time, "total_time_s": train_time,
            })
            epoch, start_batch = epoch + 1, 0
            acc.zero_()
            if d.main:
                _write_metrics(metrics_path, rows)
            save_last(finished=last_epoch)
            if d.world > 1:
                dist.barrier()
            if flag.requested or stop_request["asked"]:
                interrupted = not last_epoch
                break

    if interrupted:
        return TrainResult(None, last_path, rows, True, train_time)
    if d.main:
        final = rows[-1] if rows else {}
        checkpoint.save(final_path, model, meta({k: final.get(k, float("nan")) for k in ("clean_acc", "robust_acc")},
                                                True))
        if not metrics_path.exists():
            _write_metrics(metrics_path, rows)
    if d.world > 1:
        dist.barrier()
    return TrainResult(final_path, last_path, rows, False, train_time)
