"""Why gradient attacks may overestimate a model's robustness, read off the model itself on a few clean images, and
the adaptive attack that measures it anyway (Athalye et al. 2018; Tramèr et al. 2020).

Each cause is one registered detector: `detect(probe) -> detail` ("" where the model does not show it) and the
attack specs that remedy it.  `diagnose` returns every cause the model shows, in registration order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srtbench import checks
from srtbench.attacks.bpda import declaring
from srtbench.maximizers import eval_mode
from srtbench.registry import Registry

SATURATED_GAP = 80.0  # top logit minus the next: beyond it float32's softmax is one-hot and cross-entropy flat


@dataclass
class Probe:
    """What the detectors measure, once: repeated outputs, the outputs' rows, and the input gradients of
    cross-entropy to the model's own predictions."""

    model: nn.Module
    runs: torch.Tensor  # (passes, B, classes)
    grad: torch.Tensor | None  # (B, ...) or None where the output has no gradient at all

    @classmethod
    def of(cls, model: nn.Module, x: torch.Tensor) -> Probe:
        with eval_mode(model), torch.no_grad():
            runs = torch.stack([model(x) for _ in range(checks.PASSES)])
        xg = x.clone().requires_grad_(True)
        with eval_mode(model):
            out = model(xg)
            pred = runs[0].argmax(1)
            grad = torch.autograd.grad(F.cross_entropy(out, pred, reduction="sum"), xg, allow_unused=True)[0] \
                if out.requires_grad else None
        return cls(model, runs, grad)

    @property
    def zero_gradients(self) -> int:
        return checks.zero_gradient_rows(self.grad, len(self.runs[0]))


@dataclass(frozen=True)
class Cause:
    detect: Callable[[Probe], str]
    remedy: Callable[[Probe], list[str]]


CAUSES: Registry[Cause] = Registry("cause")


def cause(name: str, remedy: Callable[[Probe], list[str]]):
    def deco(detect: Callable[[Probe], str]) -> Callable[[Probe], str]:
        CAUSES.register(name)(Cause(detect, remedy))
        return detect

    return deco


def _eot(p: Probe) -> list[str]:
    n = checks.eot_samples(p.runs)
    return [f"pgd[eot={n}]"]


@cause("random at inference", _eot)
def _random(p: Probe) -> str:
    spread = (p.runs - p.runs[0]).abs().amax().item()
    return f"repeated passes differ by up to {spread:.2g} in a logit" if spread > 0 else ""


@cause("probability outputs", lambda p: ["cw"])
def _probabilities(p: Probe) -> str:
    rows = checks.probability_rows(p.runs[0])
    return f"{rows} of {len(p.runs[0])} output rows are probabilities" if rows * 2 > len(p.runs[0]) else ""


@cause("saturated logits", lambda p: ["cw"])
def _saturated(p: Probe) -> str:
    top2 = p.runs[0].topk(min(2, p.runs.shape[2]), 1).values
    gap = top2[:, 0] - top2[:, -1]
    many = int((gap > SATURATED_GAP).sum())
    return f"{many} of {len(gap)} examples lead by more than {SATURATED_GAP:g} logits (median gap " \
           f"{gap.median().item():.3g})" if many * 2 > len(gap) and p.zero_gradients else ""


@cause("non-differentiable input transform", lambda p: ["pgd[bpda=identity]"])
def _transform(p: Probe) -> str:
    owner = declaring(p.model)
    return f"{p.zero_gradients} of {len(p.runs[0])} input gradients are zero behind the declared preprocess of " \
           f"{type(owner).__name__}" if owner is not None and p.zero_gradients * 2 > len(p.runs[0]) else ""


@cause("no gradient reaches the input", lambda p: ["transfer"])
def _cut(p: Probe) -> str:
    if p.grad is None:
        return "the output has no gradient with respect to the input"
    zero = p.zero_gradients
    if zero * 2 <= len(p.runs[0]) or declaring(p.model) is not None or _saturated(p):
        return ""
    return f"{zero} of {len(p.runs[0])} input gradients are zero"


@dataclass
class Finding:
    cause: str
    detail: str
    attacks: list[str]


def diagnose(model: nn.Module, x: torch.Tensor) -> list[Finding]:
    """Every cause the model shows on the clean images `x`, with the attacks that measure it."""
    probe = Probe.of(model, x)
    found = []
    for name in CAUSES.names():
        c = CAUSES.get(name)
        detail = c.detect(probe)
        if detail:
            found.append(Finding(name, detail, c.remedy(probe)))
    return found


def recommended(findings: list[Finding]) -> list[str]:
    """The adaptive attacks the findings call for, each once, in order."""
    return list(dict.fromkeys(spec for f in findings for spec in f.attacks))
