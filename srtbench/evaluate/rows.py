"""A results row of one attack run: its key columns (what was attacked, how, on which examples) and its outcome
columns (accuracies with their interval, distances, provenance)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import torch

from srtbench import __version__, results
from srtbench.attacks import BuiltAttack
from srtbench.evaluate.config import EvalConfig
from srtbench.evaluate.targets import Target
from srtbench.outcomes import Examples
from srtbench.runtime import command_line, device_label, git_commit


def key_columns(t: Target, c: EvalConfig, atk: BuiltAttack, fraction: float) -> dict[str, Any]:
    return {"checkpoint": t.path, "checkpoint_sha256": t.sha256, "label": t.label, "defense": t.defense,
            "defense_params": t.defense_params, "train_threat": t.train_threat, "model": t.model_name,
            **t.training, "dataset": t.dataset, "split": "test", "attack": atk.name,
            "attack_params": results.dumps(atk.params), "fraction": float(fraction), "budget": atk.budget,
            "budget_source": atk.budget_source, "n": c.n, "seed": c.seed}


def outcome_columns(ex: Examples, atk: BuiltAttack, clean_acc: float, device: torch.device) -> dict[str, Any]:
    robust = int(ex.adv_correct.sum())
    low, high = results.wilson_interval(robust, len(ex.label))
    found = ex.broken | torch.tensor(atk.minimum_norm)  # a minimum-norm distance counts beyond the budget too
    dist = ex.distance[ex.clean_correct & torch.isfinite(ex.distance) & found]
    return {"clean_acc": round(clean_acc, 4), "robust_acc": round(100 * robust / len(ex.label), 4),
            "robust_ci_low": round(low, 4), "robust_ci_high": round(high, 4),
            "mean_distance": round(dist.mean().item(), 6) if len(dist) else "",
            "median_distance": round(dist.median().item(), 6) if len(dist) else "",
            "device": device_label(device), "srtbench_version": __version__, "git_commit": git_commit(),
            "command": command_line(), "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}
