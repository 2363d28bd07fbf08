"""TrainConfig: the outer minimization's settings (optimizer, schedule, length, held-out check, execution)."""

from __future__ import annotations

from dataclasses import dataclass

from srtbench.config import field, require, validate
from srtbench.models import MODELS
from srtbench.runtime import DEVICES


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
