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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from srtbench import checkpoint, data
from srtbench.config import field, require, to_dict
from srtbench.defenses import DEFENSES, DefenseParams, at_progress
from srtbench.errors import SrtbenchError
from srtbench.maximizers import build, eval_mode, misclassified
from srtbench.models import MODELS, create_model
from srtbench.neighborhoods import Neighborhood, ThreatConfig
from srtbench.presets import PRESETS
from srtbench.progress import progress_bar
from srtbench.runtime import (
    DEVICES,
    atomic_write_text,
    available_memory,
    check_writable,
    command_line,
    device_label,
    exact_fp32,
    notice,
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
    save_every: float = field(300.0, "save the resume state (OUT.resume) every this many seconds, besides each "
                              "epoch end, so a kill loses at most this much (0: at epoch ends only)")
    save_every_steps: int = field(0, "also save the resume state every this many SGD steps (0: off)")
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
        require(self.save_every >= 0 and self.save_every_steps >= 0,
                "--save-every and --save-every-steps must be >= 0")
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
    """The sum over ranks (NCCL reduces only CUDA tensors: a CPU tensor travels through the current GPU)."""
    if d.world > 1:
        on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else values.device
        moved = values.to(on)
        dist.all_reduce(moved)
        values = moved.to(values.device)
    return values


# ---------------------------------------------------------------- the held-out check


def check_attack(n: Neighborhood, steps: int):
    """Quick robustness check, the attack the neighborhood names (`attack_solver`): PGD (uniform start, 2.5·ε/K
    steps) pixel-wise, GridAdv spatially, in sequence for a compound (PGD+); examples stop once misclassified."""
    return build(n.attack_solver(steps))


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
        check_writable(str(self.out), "a .pt file (e.g. runs/srt.pt)")

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        """The final checkpoint, the resume state and the metrics CSV."""
        out = Path(self.out)
        return out, checkpoint.resume_path(out), out.with_suffix(".metrics.csv")


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


def _fit_batch_size(cfg: TrainConfig, n_images: int, world: int, main: bool) -> TrainConfig:
    """A batch larger than the data is the whole data each step: clamp it (a 100,000-image batch of 64
    images was built, and killed by the kernel, before)."""
    fit = max(world, n_images // world * world)
    if cfg.batch_size <= fit:
        return cfg
    if main:
        notice(f"--batch-size {cfg.batch_size} exceeds the {n_images:,} training images: training with batches "
               f"of {fit} (all of them each step)")
    return replace(cfg, batch_size=fit)


def activation_bytes(model: nn.Module, shape: tuple[int, ...]) -> int:
    """fp32 bytes of one example's input and every layer's output: what one forward keeps for its backward."""
    total = 4 * math.prod(shape)

    def count(module, inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += 4 * output.numel()

    leaves = [m for m in model.modules() if not any(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    device = next(model.parameters()).device
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), eval_mode(model):
            model(torch.zeros(1, *shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def _check_memory(model: nn.Module, shape: tuple[int, ...], per_rank_batch: int, device: torch.device,
                  d: Dist) -> None:
    """Refuse, before any work, a step that cannot fit: about two forwards' activations (natural and robust)
    of the batch, plus weights, gradients and momentum; on every rank when one lacks the memory."""
    free, short = available_memory(device), None
    if free is not None:
        per_example = activation_bytes(model, shape)
        need = 2 * per_rank_batch * per_example + 3 * 4 * sum(p.numel() for p in model.parameters())
        if need > free:
            short = (f"a training step needs about {_bytes(need)} ({per_rank_batch} images × "
                     f"{_bytes(2 * per_example)} of activations) but {_bytes(free)} is free on {device}: "
                     "lower --batch-size")
    if _all_sum(torch.tensor([float(short is not None)]), d).item() > 0:
        raise SrtbenchError(short or "another process lacks the memory for a training step: lower --batch-size")


def _bytes(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


# a run on a machine without a GPU expected to take longer than this names the short CPU preset, once
LONG_CPU_RUN_S = 3600.0


class _PaceCheck:
    """After a few steps (the first one warms up), time the run; a long CPU-only run says so once."""

    def __init__(self, run: Run, total: int, enabled: bool):
        self.run, self.total, self.enabled = run, total, enabled
        self.start: tuple[float, int] | None = None

    def step(self, step: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.start is None:
            self.start = now, step
            return
        if step - self.start[1] < 3:
            return
        self.enabled = False
        left = (now - self.start[0]) / (step - self.start[1]) * (self.total - step)
        if left > LONG_CPU_RUN_S:
            threat = self.run.threat.threat
            preset = f"fmnist-{threat}-cpu" if f"fmnist-{threat}-cpu" in PRESETS else "fmnist-pixel-cpu"
            notice(f"no GPU here: at this pace the run's {self.total:,} steps take about {_duration(left)} on the "
                   f"CPU; `--preset {preset}` is the short CPU run (see `srtbench presets`)")


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


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
    """Train `run.defense` and write the final checkpoint, the `.resume` state and the per-epoch metrics
    CSV beside `run.out`.

    `labeled` / `unlabeled` / `check` replace the sets named by `run.data` (tests use subsets);
    `on_step(step, stop)` is called after every SGD step, and `stop()` asks for the same clean exit as
    SIGINT.  A finished run at `run.out` is never overwritten unless `force`.  The resume state is saved
    at each epoch end, on a stop, and every `save_every` seconds (or `save_every_steps` steps) between, so
    a kill -9 loses at most that much.  Resuming replays the interrupted epoch from its next batch with the
    saved random states, so on CPU the result equals the uninterrupted run's bit for bit.
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

    state, legacy = _resume_state(run, fingerprint, resume, force, d.main)

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

    cfg = _fit_batch_size(cfg, len(labeled) + (len(unlabeled) if unlabeled is not None else 0), d.world, d.main)
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
    _check_memory(model, spec.shape, cfg.batch_size // d.world, device, d)
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

    def meta(metrics: dict[str, float], finished: bool, time_s: float) -> dict[str, Any]:
        return {
            **checkpoint.model_meta(cfg.model, spec),
            "label": run.label or defense.label(params, run.threat.threat),
            "defense": run.defense,
            "defense_params": params.as_dict(defense.params),
            "threat": to_dict(run.threat),
            "train": {**to_dict(cfg), "schedule": schedule, "total_steps": total},
            "data": to_dict(run.data),
            "seed": cfg.seed,
            "epoch": len(rows),
            "step": step,
            "metrics": metrics,
            "train_time_s": time_s,
            "preset": run.preset,
            "finished": finished,
            "world_size": d.world,
            "device": device_label(device),
            "lr_curve": [[s, learning_rate(cfg, schedule, s, total)]
                         for s in sorted({round(i * (total - 1) / 99) for i in range(100)})],
            "command": command_line(),
        }

    def save_last(finished: bool = False, time_s: float | None = None) -> None:
        time_s = train_time if time_s is None else time_s
        rngs = _gather(_rng_state(gen), d)
        accs = _gather(acc.clone(), d)
        saver.saved(step)
        if not d.main:
            return
        last_metrics = {k: rows[-1][k] for k in ("clean_acc", "robust_acc")} if rows else {}
        checkpoint.save(last_path, model, meta(last_metrics, finished, time_s), resume={
            "epoch": epoch, "batch": start_batch, "step": step, "optimizer": optimizer.state_dict(),
            "rng": rngs, "acc": accs, "rows": rows, "train_time_s": time_s, "finished": finished,
            "fingerprint": _jsonable(fingerprint),
        })
        if legacy is not None and legacy.exists():
            legacy.unlink()  # continued from NAME.last.pt: NAME.resume now holds more

    saver = _SaveClock(cfg.save_every, cfg.save_every_steps, step)
    pace = _PaceCheck(run, total, d.main and device.type == "cpu" and not torch.cuda.is_available()
                      and not (run.preset or "").endswith("-cpu"))

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
                pace.step(step)
                if on_step is not None:
                    on_step(step, stop)
                # any rank's stop request or due save (its clock is its own) holds for all
                asked = _all_sum(torch.tensor([float(flag.requested or stop_request["asked"]),
                                               float(saver.due(step))]), d)
                mid_epoch = step < total and start_batch < len(batches)  # the epoch's end saves anyway
                if asked[0] > 0 and mid_epoch:
                    train_time += time.perf_counter() - epoch_start
                    save_last()
                    interrupted = True
                    break
                if asked[1] > 0 and mid_epoch:
                    save_last(time_s=train_time + time.perf_counter() - epoch_start)
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
                                                True, train_time))
        if not metrics_path.exists():
            _write_metrics(metrics_path, rows)
        if legacy is not None and legacy.exists():
            legacy.unlink()
    if d.world > 1:
        dist.barrier()
    return TrainResult(final_path, last_path, rows, False, train_time)
