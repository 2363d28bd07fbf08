"""Run, what a training run trains and where its files go, and TrainResult, what it gave."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srtbench import checkpoint, data
from srtbench.config import require
from srtbench.defenses import DefenseParams
from srtbench.neighborhoods import ThreatConfig
from srtbench.runtime import check_writable
from srtbench.trainer.config import TrainConfig


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
