"""The whole evaluation: every checkpoint checked, then attacked with every (attack, fraction), rows written once per
checkpoint, and the worst case per example within each threat."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from srtbench import distributed, results
from srtbench.attacks import build, split_specs
from srtbench.config import require
from srtbench.errors import SrtbenchError
from srtbench.evaluate.config import EvalConfig
from srtbench.evaluate.flags import cross_flags
from srtbench.evaluate.one_checkpoint import SUBSET, AttackRun, CheckpointEvaluation
from srtbench.evaluate.targets import Target, check_model, check_out, load_targets
from srtbench.indicators.diagnosis import Finding, diagnose
from srtbench.outcomes import accuracy, risks, worst_case
from srtbench.progress import progress_bar
from srtbench.runtime import exact_fp32, fast_layout


@dataclass
class Summary:
    target: Target
    clean_acc: float
    runs: list[AttackRun]
    worst: dict[tuple[str, float], dict[str, Any]]  # (group, fraction) -> risks of Definition 2, attacks
    findings: list[Finding] = dataclasses.field(default_factory=list)  # --adaptive: why gradients may mislead
    earlier: dict[str, int] = dataclasses.field(default_factory=dict)  # rows of an earlier file of its path, by hash


def evaluate(paths: list[str], cfg: EvalConfig) -> list[Summary]:
    from srtbench import data

    check_out(cfg.out)
    specs = split_specs(cfg.attacks)
    targets = load_targets(paths, cfg)
    for target in targets:  # every spec must build before the first attack runs
        for spec in specs:
            for fraction in cfg.fractions:
                build(spec, target.dataset, fraction, target.trained)
    d, device = distributed.init_distributed(cfg.device)
    exact_fp32(device)
    tests: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for target in targets:  # every model must answer its clean test images sanely before the first attack runs
        if target.dataset not in tests:
            test = data.load(target.dataset, False, cfg.data_dir)
            require(cfg.n <= len(test), f"--n {cfg.n} exceeds the {len(test)} test examples of {target.dataset}")
            tests[target.dataset] = test.batch(torch.arange(cfg.n))
        check_model(target, tests[target.dataset][0], data.DATASETS.get(target.dataset).num_classes, cfg.batch_size,
                    device)
        target.model.cpu()  # one model on the device at a time
    summaries = []
    for target in targets:
        x, y = tests[target.dataset]
        fast_layout(target.model.to(device), device).eval()
        findings = diagnose(target.model, x[:SUBSET].to(device)) if cfg.adaptive else []
        existing = set() if cfg.force else results.existing_keys(cfg.out)
        with progress_bar(disable=not d.main) as progress:
            ev = CheckpointEvaluation(target, cfg, x, y, device, existing, progress)
            for spec in [*specs, *_adaptive_specs(findings, specs, target)]:
                for fraction in cfg.fractions:
                    ev.runs.append(ev.run(spec, fraction))
            cross_flags(ev)
        if d.main:
            results.append(cfg.out, [r.row for r in ev.runs], replace=True)
        distributed.barrier(d)  # every rank sees the finished file before the next checkpoint
        summaries.append(Summary(target, ev.clean_acc, ev.runs, _worst(ev.runs), findings,
                                 earlier_rows(cfg.out, target, {str(r.row["model"]) for r in ev.runs})))
    return summaries


def earlier_notes(out: str, summary: Summary) -> list[str]:
    """A line per earlier file whose rows `out` still holds beside the ones just written for its path."""
    t = summary.target
    return [f"note: {out} also holds {count} rows of an earlier {t.path} (sha256 {sha[:12]}, now {t.sha256[:12]}); "
            "they stay, and tables show the two files as two models: move those rows out if this one replaces it"
            for sha, count in summary.earlier.items()]


def earlier_rows(out: str, target: Target, models: set[str]) -> dict[str, int]:
    """Rows of `out` from an earlier file at the target's path (a model retrained in place), per sha256: they stay
    (nothing is dropped), and tables show the two files as two models."""
    if not Path(out).exists():
        return {}
    df = results.read(out)
    old = df[(df["checkpoint"].astype(str) == target.path) & df["model"].astype(str).isin(models)
             & (df["checkpoint_sha256"].astype(str) != target.sha256)]
    return {str(sha): len(g) for sha, g in old.groupby("checkpoint_sha256", sort=False)}


def _adaptive_specs(findings: list[Finding], specs: list[str], target: Target) -> list[str]:
    """The attacks the findings call for that --attacks does not already list; one that cannot run here (transfer
    on a dataset that ships no surrogate) is dropped, and its finding says why."""
    out = []
    for f in findings:
        for spec in list(f.attacks):
            try:
                build(spec, target.dataset, 1.0, target.trained)
            except SrtbenchError as err:
                f.attacks.remove(spec)
                f.detail += f" ({spec} cannot run: {err})"
                continue
            if spec not in specs and spec not in out:
                out.append(spec)
    return out


def _worst(runs: list[AttackRun]) -> dict[tuple[str, float], dict[str, Any]]:
    groups: dict[tuple[str, float], list[AttackRun]] = {}
    for r in runs:
        groups.setdefault((r.group, r.fraction), []).append(r)
    out = {}
    for key, group in groups.items():
        ex = worst_case([r.examples for r in group])
        out[key] = {**risks(ex), "robust_acc": accuracy(ex.adv_correct), "attacks": [r.attack for r in group]}
    return out
