"""The learning-rate schedules: piecewise decay at milestones and the triangular cyclic one (Figure 8)."""

from __future__ import annotations

from srtbench.trainer.config import TrainConfig


def learning_rate(cfg: TrainConfig, schedule: str, step: int, total: int) -> float:
    """η at SGD step `step` of `total` (0-based)."""
    if schedule == "cyclic":
        # Appendix J / Wong et al. 2020: linear 0 → lr_max over the first cycle_peak of the run, then → 0
        t, peak = (step + 1) / total, cfg.cycle_peak
        return cfg.lr_max * (t / peak if t <= peak else max(0.0, (1 - t) / (1 - peak)))
    passed = sum(step >= round(m * total) for m in cfg.milestones)
    return cfg.lr * cfg.gamma**passed
