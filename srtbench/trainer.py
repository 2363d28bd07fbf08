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
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srtbench import checkpoint, data
from srtbench.config import field, require, to_dict, validate
from srtbench.defenses import DEFENSES, DefenseParams, Setup, ramp_lambda
from srtbench.distributed import Dist, all_sum, barrier, gather, init_distributed
from srtbench.errors import SrtbenchError
from srtbench.evaluate import held_out_check
from srtbench.maximizers import eval_mode
from srtbench.models import MODELS, create_model
from srtbench.neighborhoods import ThreatConfig
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
    set_deterministic,
)

METRICS_COLUMNS = ("epoch", "step", "lr", "loss", "natural_loss", "robust_loss", "train_acc", "clean_acc",
                   "robust_acc", "epoch_time_s", "total_time_s")


@dataclass
class TrainConfig:
    """The outer minimization: optimizer, schedule, length, held-out check and execution settings."""

    model: str = field("small-cnn", "architecture (see `srtbench models`)", choices=MODELS.names)
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
        validate(self)  # types, and finite numbers: NaN or inf never reaches the optimizer
        require(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}")
        require(self.iterations is None or self.iterations >= 1, f"--iterations must be >= 1, got {self.iterations}")
        require(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        require(self.lr > 0 and self.lr_max > 0, "learning rates must be > 0")
        require(0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}")
        require(self.gamma > 0, f"--gamma must be > 0, got {self.gamma}")
        require(0 <= self.seed < 2**32, f"--seed must be in [0, 2**32), got {self.seed}")
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
        require(self.label is None or len(self.label) <= checkpoint.MAX_LABEL,
                f"--label must be at most {checkpoint.MAX_LABEL} characters, got {len(self.label or '')}")
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

    def request(self) -> None:
        """Ask for the same clean exit as a signal (the `stop` that `train(on_step=...)` hands out)."""
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
    if all_sum(torch.tensor([float(short is not None)]), d).item() > 0:
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


@dataclass
class Totals:
    """One epoch's sums of the objective's parts on this rank, kept on the training device, so adding a step's
    values reads nothing back to the host (a GPU sync each): the epoch's end reduces and reads them once."""

    loss: torch.Tensor
    natural: torch.Tensor
    robust: torch.Tensor
    steps: torch.Tensor
    correct: torch.Tensor
    count: torch.Tensor

    @classmethod
    def of(cls, values: torch.Tensor) -> Totals:
        """From the float64 vector `tensor()` gives (the form resume states keep)."""
        return cls(*values.to(torch.float64).clone().unbind())

    @classmethod
    def zeros(cls, device: torch.device) -> Totals:
        return cls.of(torch.zeros(6, dtype=torch.float64, device=device))

    def tensor(self) -> torch.Tensor:
        return torch.stack([self.loss, self.natural, self.robust, self.steps, self.correct, self.count])

    def add(self, out: dict[str, torch.Tensor]) -> None:
        for name in ("loss", "natural", "robust", "correct", "count"):
            getattr(self, name).add_(out[name].detach().to(torch.float64))
        self.steps.add_(1)

    def means(self) -> dict[str, float]:
        steps = max(self.steps.item(), 1.0)
        return {"loss": self.loss.item() / steps, "natural_loss": self.natural.item() / steps,
                "robust_loss": self.robust.item() / steps,
                "train_acc": 100.0 * self.correct.item() / max(self.count.item(), 1.0)}


def _held_out_images(run: Run) -> data.ImageSet:
    """The first `check_size` test images (none when 0)."""
    cfg, spec = run.train, run.data.spec
    if not cfg.check_size:
        return data.ImageSet(torch.zeros(0, *spec.shape, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    test = data.load(run.data.dataset, False, run.data.data_dir, run.data.download)
    return test.subset(torch.arange(min(cfg.check_size, len(test))))


# under torchrun, the ranks agree on a stop request or a due save every this many steps (a collective, a GPU sync)
VOTE_EVERY = 10


class _Training:
    """One run between SGD steps: its model, optimizer, batch stream and generator, where it is (epoch, batch
    within it, step, time), its metrics rows and running totals; and how it is saved and restored."""

    def __init__(self, run: Run, sets: tuple, resume: bool, force: bool):
        self.run = run
        self.d, self.device = init_distributed(run.train.device)
        set_deterministic(self.device)
        self.defense = DEFENSES.get(run.defense)
        self.neighborhood = run.threat.build()
        self.params = self.defense.resolve(run.params, run.threat.threat, run.data.dataset, run.threat.epsilon)
        self.final_path, self.resume_path, self.metrics_path = run.paths
        self.fingerprint = _fingerprint(run, self.params, self.defense.params)
        state, self.legacy = _resume_state(run, self.fingerprint, resume, force, self.d.main)
        self._data(*sets)
        self._model()
        self.epoch, self.batch, self.step, self.train_time = 0, 0, 0, 0.0
        self.rows: list[dict[str, float]] = []
        self.totals = Totals.zeros(self.device)
        if state is not None:
            self._restore(state)
        self.net: nn.Module = self.model
        if self.d.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.saver = _SaveClock(self.cfg.save_every, self.cfg.save_every_steps, self.step)
        self.pace = _PaceCheck(run, self.total, self.d.main and self.device.type == "cpu"
                               and not torch.cuda.is_available() and not (run.preset or "").endswith("-cpu"))

    def _data(self, labeled: data.ImageSet | None, unlabeled: data.UnlabeledSet | None,
              check: data.ImageSet | None) -> None:
        """The sets (the run's, unless given), the batch size that fits them, the defense's own preparation and
        the batch stream: D_L and D_U in proportion (Section 4) unless the defense fixes its split."""
        run, d = self.run, self.d
        if labeled is None:
            labeled, loaded = data.load_split(run.data)
            unlabeled = loaded if unlabeled is None else unlabeled
        if not self.defense.uses_unlabeled:
            unlabeled = None
        self.check = check if check is not None else _held_out_images(run)
        n_unlabeled = len(unlabeled) if unlabeled is not None else 0
        self.cfg = _fit_batch_size(run.train, len(labeled) + n_unlabeled, d.world, d.main)
        setup = Setup(self.params, run.data, self.device, self.cfg.batch_size, n_unlabeled > 0)
        self.defense.prepare(setup)
        split = {}
        if setup.unlabeled_per_batch is not None:
            split = {"labeled_per_batch": self.cfg.batch_size - setup.unlabeled_per_batch,
                     "unlabeled_per_batch": setup.unlabeled_per_batch}
        self.batches = data.ProportionalBatches(labeled, unlabeled, self.cfg.batch_size, self.cfg.seed,
                                                run.data.spec.augment, d.rank, d.world, **split)
        self.total = self.cfg.iterations or self.cfg.epochs * len(self.batches)
        self.n_epochs = math.ceil(self.total / len(self.batches))
        self.schedule = self.cfg.schedule or self.defense.schedule

    def _model(self) -> None:
        """Identical initial weights on every rank, then per-rank randomness (dropout masks, inner maximizers)."""
        cfg, spec, d, device = self.cfg, self.run.data.spec, self.d, self.device
        torch.manual_seed(cfg.seed)
        model = create_model(cfg.model, spec.shape, spec.num_classes, spec.mean, spec.std).to(device)
        _check_memory(model, spec.shape, cfg.batch_size // d.world, device, d)
        cuda = device.type == "cuda"
        if not cfg.amp:
            exact_fp32(device)
        self.channels_last = cuda and cfg.channels_last
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 17 + d.rank)
        torch.manual_seed(cfg.seed + 7_919 * d.rank)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and cfg.amp else contextlib.nullcontext()

    def _restore(self, state: checkpoint.Checkpoint) -> None:
        r = state.resume
        self.model.load_state_dict(state.state_dict)
        self.optimizer.load_state_dict(r["optimizer"])
        if len(r["rng"]) != self.d.world:
            raise SrtbenchError(f"{self.resume_path}: saved by {len(r['rng'])} processes; resume with as many")
        _set_rng_state(self.gen, r["rng"][self.d.rank])
        self.epoch, self.batch, self.step = r["epoch"], r["batch"], r["step"]
        self.train_time, self.rows = r["train_time_s"], list(r["rows"])
        self.totals = Totals.of(r["acc"][self.d.rank].to(self.device))
        if r.get("finished"):
            self.epoch = self.n_epochs

    def meta(self, metrics: dict[str, float], finished: bool, time_s: float) -> dict[str, Any]:
        run, cfg, total = self.run, self.cfg, self.total
        return {
            **checkpoint.model_meta(cfg.model, run.data.spec),
            "label": run.label or self.defense.label(self.params, run.threat.threat), "defense": run.defense,
            "defense_params": self.params.as_dict(self.defense.params), "threat": to_dict(run.threat),
            "train": {**to_dict(cfg), "schedule": self.schedule, "total_steps": total}, "data": to_dict(run.data),
            "seed": cfg.seed, "epoch": len(self.rows), "step": self.step, "metrics": metrics, "train_time_s": time_s,
            "preset": run.preset, "finished": finished, "world_size": self.d.world,
            "device": device_label(self.device),
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

    def sgd_step(self, batch: data.Batch) -> dict[str, torch.Tensor]:
        lr = learning_rate(self.cfg, self.schedule, self.step, self.total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = batch.to(self.device)
        if self.channels_last:
            batch = _channels_last(batch)
        self.net.train()
        with self.autocast:
            params = ramp_lambda(self.params, self.step / self.total)
            out = self.defense.objective(self.net, batch, self.neighborhood, params, self.gen)
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.optimizer.step()
        self.step, self.batch = self.step + 1, self.batch + 1
        self.totals.add(out)
        return out

    def vote(self, flag: _StopFlag) -> tuple[bool, bool]:
        """(stop now, save now): a stop request or a due save on any rank holds for all."""
        local = (flag.requested, self.saver.due(self.step))
        if self.d.world == 1:
            return local
        if self.step % VOTE_EVERY:
            return False, False
        asked = all_sum(torch.tensor([float(v) for v in local]), self.d)
        return bool(asked[0] > 0), bool(asked[1] > 0)

    def run_epoch(self, flag: _StopFlag, show: Callable, on_step: Callable | None) -> bool:
        """The epoch from where the run stands; False when a stop request ended the run early (state saved)."""
        start = time.perf_counter()
        for batch in self.batches.epoch(self.epoch, start=self.batch):
            if self.step >= self.total:
                break
            out = self.sgd_step(batch)
            show(self, out)
            self.pace.step(self.step)
            if on_step is not None:
                on_step(self.step, flag.request)
            stop, save = self.vote(flag)
            mid_epoch = self.step < self.total and self.batch < len(self.batches)  # an epoch's end saves anyway
            if stop and mid_epoch:
                self.train_time += time.perf_counter() - start
                self.save_resume()
                return False
            if save and mid_epoch:
                self.save_resume(time_s=self.train_time + time.perf_counter() - start)
        self.train_time += time.perf_counter() - start
        last = self.end_epoch(time.perf_counter() - start)
        return last or not flag.requested

    def end_epoch(self, epoch_time: float) -> bool:
        """The epoch's metrics row (the held-out check when due), the metrics CSV and the resume state; whether
        this was the run's last epoch."""
        self.check_finite()
        totals = Totals.of(all_sum(self.totals.tensor(), self.d))
        last = self.epoch + 1 == self.n_epochs or self.step >= self.total
        clean_acc = robust_acc = float("nan")
        if self.d.main and ((self.epoch + 1) % self.cfg.check_every == 0 or last):
            with self.autocast:
                clean_acc, robust_acc = held_out_check(self.model, self.check, self.neighborhood,
                                                       self.cfg.check_steps, self.cfg.seed, self.device)
        self.rows.append({"epoch": self.epoch + 1, "step": self.step,
                          "lr": learning_rate(self.cfg, self.schedule, self.step - 1, self.total), **totals.means(),
                          "clean_acc": clean_acc, "robust_acc": robust_acc, "epoch_time_s": epoch_time,
                          "total_time_s": self.train_time})
        self.epoch, self.batch = self.epoch + 1, 0
        self.totals = Totals.zeros(self.device)
        if self.d.main:
            _write_metrics(self.metrics_path, self.rows)
        self.save_resume(finished=last)
        barrier(self.d)
        return last

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


def _shower(bar, task) -> Callable:
    """The progress line's update after each step: the step count always, the loss once a second (reading it
    back is a device sync)."""
    shown = {"at": 0.0}

    def show(t: _Training, out: dict[str, torch.Tensor]) -> None:
        now = time.perf_counter()
        if now - shown["at"] < 1.0 and t.step < t.total:
            bar.update(task, completed=t.step)
            return
        shown["at"] = now
        bar.update(task, completed=t.step, info=f"epoch {t.epoch + 1}/{t.n_epochs} loss {out['loss'].item():.3f}")

    return show


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
    t = _Training(run, (labeled, unlabeled, check), resume, force)
    shown = progress and t.d.main
    with _StopFlag() as flag, progress_bar(disable=not shown) as bar:
        task = bar.add_task(f"{run.defense} {run.threat.threat}", total=t.total, completed=t.step, info="")
        show = _shower(bar, task) if shown else (lambda *_: None)
        while t.epoch < t.n_epochs and t.step < t.total:
            if not t.run_epoch(flag, show, on_step):
                return TrainResult(None, t.resume_path, t.rows, True, t.train_time)
    return t.finish()
