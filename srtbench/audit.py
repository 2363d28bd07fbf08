"""`srtbench audit`: whether a model's evaluation can be trusted, and what to run where it cannot.

The audit is an adaptive evaluation (`EvalConfig.adaptive`) on fewer examples: the model's own checks name each
cause of gradient masking with its remedy (srtbench/indicators/diagnosis.py), the remedies run as extra rows, and every
row gets the indicators of attack failure and the binarization test (srtbench/indicators).  `verdict` reads them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from srtbench.config import field
from srtbench.evaluate import AttackRun, EvalConfig, Summary

# indicator flags of a row, in the order the audit prints them (checks.py defines each)
INDICATORS = ("binarization", "non_convergence", "restarts", "transfer_stronger", "silent_success", "flat_loss",
              "eight_bit")
MODEL_FLAGS = ("deterministic", "probabilities", "input_gradients", "unbounded_pgd", "gradient_masking")


@dataclass
class AuditConfig(EvalConfig):
    """EvalConfig with the audit's defaults: the pixel-wise battery's core on 200 examples, rows to their own file."""

    attacks: str = field("fgsm,pgd", "attacks to audit (the remedies the checks call for are added)")
    n: int = field(200, "audit on the first N test examples")
    out: str = field("results/audit.csv", "results CSV of the audit's rows (per-example indicators beside it)")

    def evaluation(self) -> EvalConfig:
        known = {f.name for f in dataclasses.fields(EvalConfig)}
        return EvalConfig(**{**{k: v for k, v in vars(self).items() if k in known}, "adaptive": True})


def spec_text(name: str, params) -> str:
    """`pgd[bpda=identity,epsilon=0.1,...]`: the attack as a row ran it, in --attacks syntax."""
    import json

    settings = json.loads(params) if isinstance(params, str) and params else dict(params or {})
    body = ",".join(f"{k}={v}" for k, v in sorted(settings.items()) if k != "library")
    return f"{name}[{body}]" if body else name


@dataclass
class Verdict:
    trusted: bool
    lines: list[str]


def _warnings(flags: dict) -> list[str]:
    """The row's WARN flags the audit reads (in its order)."""
    return [name for name in (*INDICATORS, *MODEL_FLAGS) if flags.get(name, {}).get("status") == "WARN"]


def _distrusted(flags: dict) -> list[str]:
    # adversarial examples lost to rounding make a number lower, not higher: reported, never a reason for distrust
    return [name for name in _warnings(flags) if name != "eight_bit"]


def verdict(summary: Summary) -> Verdict:
    """Every cause found with its numbers, each attack's indicators, and a verdict.  The model's evaluation is
    trusted where no cause is found and, in each threat group, the strongest attack (the lowest robust accuracy)
    shows no indicator of failure; a weaker attack that fails its indicators (FGSM's single step) is named
    unreliable on the model without casting doubt on the strongest one's number."""
    lines = [f"CAUSE {f.cause}: {f.detail}" + (f" -> run {', '.join(f.attacks)}" if f.attacks else "")
             for f in summary.findings]
    adaptive = list(dict.fromkeys(spec for f in summary.findings for spec in f.attacks))
    strongest: dict[tuple[str, float], AttackRun] = {}
    for r in summary.runs:
        key = (r.group, r.fraction)
        if key not in strongest or r.row["robust_acc"] < strongest[key].row["robust_acc"]:
            strongest[key] = r
    for r in summary.runs:
        flags, warn = r.row["flags"], _warnings(r.row["flags"])
        lines.append(f"{spec_text(r.attack, r.row.get('attack_params'))} x {r.fraction:g}: "
                     f"robust {r.row['robust_acc']:.2f}%"
                     + (f"  WARN {', '.join(warn)}" if warn else "  indicators PASS")
                     + ("" if strongest[(r.group, r.fraction)] is r or not _distrusted(flags)
                        else "  (unreliable on this model; a stronger attack's number stands)"))
        for name in INDICATORS:
            if name in flags:
                lines.append(f"    {flags[name]['status']:4s} {name}: {flags[name]['detail']}")
    doubtful = [r for r in strongest.values() if _distrusted(r.row["flags"])]
    if not summary.findings and not doubtful:
        lines.append("VERDICT: no cause found, and the strongest attack of each threat shows no indicator of failure: "
                     "its number can be trusted")
        return Verdict(True, lines)
    best = min((r.row["robust_acc"] for r in summary.runs), default=float("nan"))
    run = ", ".join(adaptive) or "a stronger attack than " + ", ".join(sorted({r.attack for r in doubtful}))
    lines.append(f"VERDICT: gradient attacks overestimate this model's robustness; run {run} "
                 f"(lowest robust accuracy so far {best:.2f}%; srtbench evaluate --adaptive adds the remedies)")
    return Verdict(False, lines)
