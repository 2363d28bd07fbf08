"""Sanity flags: every flag fires (WARN) on a real broken case and passes on a sound one.

The cases go through the evaluation itself: `evaluate` on a foreign model (`--model module:function`, the
builders below, with the weights of the session's trained SmallCNN saved beside), and the flags are read from
the rows it returns.  A broken case is a broken model (stochastic, batch-dependent, gradient-masked) or a
broken attack (monkeypatched: it leaves its ball, ignores or reverses its budget fraction, is too weak).
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srtbench import checks
from srtbench.evaluate import EvalConfig, evaluate, one_checkpoint
from srtbench.evaluate import flags as row_flags
from srtbench.models import create_model
from srtbench.neighborhoods import PixelBall

N = 64  # examples per evaluation (= srtbench.evaluate.SUBSET, so every flag rests on the same examples)
PGD = "pgd[epsilon=0.1,steps=5,step_size=0.04]"
FGSM = "fgsm[epsilon=0.1]"
# PGD+ with the same PGD stage as PGD (same settings, same random start), then a grid of 3 rotations (±10°)
PGD_PLUS = "pgd+[epsilon=0.1,steps=5,step_size=0.04,rotation=10,translation=0,rotations=3,translations=1]"
SQUARE_QUERIES = 100  # Square's budget in the gradient-masking check (evaluate's 1000 costs 10× the time)


# ---------------------------------------------------------------- foreign models (`--model tests.test_checks:NAME`)


def small_cnn() -> nn.Module:
    return create_model("small-cnn", (1, 28, 28), 10)


class MonteCarloDropout(nn.Module):
    """SmallCNN whose own dropout layer stays on in eval mode (Monte Carlo dropout): a stochastic model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.train()
        return self

    def forward(self, x):
        return self.model(x)


class BatchCentered(nn.Module):
    """Centres its logits on the batch mean, in eval mode too (batch statistics instead of running ones):
    each prediction depends on the other images of the batch."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        z = self.model(x)
        return z - z.mean(0, keepdim=True)


class Quantized(nn.Module):
    """Rounds its input to 8 grey levels: the input gradient exists but is zero everywhere (shattered
    gradients, the textbook gradient masking), while the model itself is no more robust than SmallCNN."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 7) / 7 + 0 * x)


def mc_dropout_cnn() -> nn.Module:
    return MonteCarloDropout(small_cnn())


def batch_centered_cnn() -> nn.Module:
    return BatchCentered(small_cnn())


def quantized_cnn() -> nn.Module:
    return Quantized(small_cnn())


class Evaluated:
    """The rows of one `evaluate` run, by (attack, fraction)."""

    def __init__(self, summary):
        self.summary = summary
        self.rows = {(r.attack, r.fraction): r.row for r in summary.runs}

    def flag(self, name: str, attack: str, fraction: float = 1.0) -> dict:
        return self.rows[(attack, fraction)]["flags"][name]

    def status(self, name: str, attack: str, fraction: float = 1.0) -> str:
        return self.flag(name, attack, fraction)["status"]

    def acc(self, attack: str, fraction: float = 1.0) -> float:
        return self.rows[(attack, fraction)]["robust_acc"]


def run_evaluation(folder, builder: str, model: nn.Module, attacks: str, fractions=(1.0,), sanity=False):
    """`srtbench evaluate W.pt --model tests.test_checks:BUILDER --dataset fashion-mnist ...` on N examples."""
    weights = folder / f"{builder}.pt"
    torch.save(model.state_dict(), weights)
    cfg = EvalConfig(model=f"{__name__}:{builder}", dataset="fashion-mnist", attacks=attacks,
                     fractions=tuple(fractions), n=N, batch_size=N, device="cpu", sanity=sanity,
                     out=str(folder / f"{builder}.csv"), force=True)
    (summary,) = evaluate([str(weights)], cfg)
    return Evaluated(summary)


@pytest.fixture(scope="module")
def sound(trained_cnn, tmp_path_factory):
    """The trained SmallCNN under every attack the flags compare, at two fractions, with every sanity run."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(row_flags, "SQUARE_QUERIES", SQUARE_QUERIES)
        return run_evaluation(tmp_path_factory.mktemp("sound"), "small_cnn", trained_cnn,
                              ",".join([FGSM, PGD, PGD_PLUS]), fractions=(0.5, 1.0), sanity=True)


@pytest.fixture(scope="module")
def masked(trained_cnn, tmp_path_factory):
    """The quantized (gradient-masked) SmallCNN under PGD, with the ε = 1 and Square sanity runs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(row_flags, "SQUARE_QUERIES", SQUARE_QUERIES)
        return run_evaluation(tmp_path_factory.mktemp("masked"), "quantized_cnn", Quantized(trained_cnn), PGD,
                              sanity=True)


def test_the_sound_model_passes_every_flag(sound):
    for (attack, fraction), row in sound.rows.items():
        warns = {k: v["detail"] for k, v in row["flags"].items() if v["status"] != "PASS"}
        assert not warns, (attack, fraction, warns)
    names = {k for row in sound.rows.values() for k in row["flags"]}
    assert {"zero_budget", "deterministic", "in_neighborhood", "reclassified", "monotone_budget", "order_pgd_vs_fgsm",
            "pgd+_covers_pgd", "unbounded_pgd", "gradient_masking"} <= names


# ---------------------------------------------------------------- per-row flags


def test_zero_budget_fires_when_the_attack_ignores_the_budget_fraction(sound, trained_cnn, tmp_path, monkeypatch):
    """An attack that runs at its full budget whatever the fraction: at fraction 0 it still breaks examples.
    Its own `inside` check cannot see it (it is inside the budget it believes it has)."""
    assert sound.status("zero_budget", "pgd") == "PASS"
    real = one_checkpoint.build

    def full_budget(spec, dataset, fraction=1.0, *args, **kwargs):
        return real(spec, dataset, 1.0, *args, **kwargs)

    monkeypatch.setattr(one_checkpoint, "build", full_budget)
    ev = run_evaluation(tmp_path, "small_cnn", trained_cnn, "gridadv.t[translations=5]", sanity=True)
    flag = ev.flag("zero_budget", "gridadv.t")
    assert flag["status"] == "WARN" and "fraction 0" in flag["detail"], flag
    assert ev.status("in_neighborhood", "gridadv.t") == "PASS"


def test_deterministic_fires_on_a_model_with_dropout_on_in_eval_mode(sound, trained_cnn, tmp_path):
    assert sound.status("deterministic", "pgd") == "PASS"
    ev = run_evaluation(tmp_path, "mc_dropout_cnn", MonteCarloDropout(trained_cnn), FGSM)
    flag = ev.flag("deterministic", "fgsm")
    assert flag["status"] == "WARN" and "stochastic" in flag["detail"], flag


def test_in_neighborhood_fires_when_the_attack_forgets_to_project(sound, trained_cnn, tmp_path, monkeypatch):
    """PGD whose ℓ∞ projection only keeps the image box: 10 steps of 0.02 walk out of the 0.05 ball."""
    assert sound.status("in_neighborhood", "pgd") == "PASS"
    monkeypatch.setattr(PixelBall, "project", lambda self, theta, x: (x + theta).clamp(0, 1) - x)
    ev = run_evaluation(tmp_path, "small_cnn", trained_cnn, "pgd[epsilon=0.05,steps=10,step_size=0.02,start=none]")
    flag = ev.flag("in_neighborhood", "pgd")
    assert flag["status"] == "WARN", flag
    outside = int(flag["detail"].split(" of ")[0])
    assert outside > 0 and flag["detail"].startswith(f"{outside} of {N} adversarial examples outside")


def test_reclassified_fires_on_a_batch_dependent_model(sound, trained_cnn, tmp_path):
    assert sound.status("reclassified", "pgd") == "PASS"
    ev = run_evaluation(tmp_path, "batch_centered_cnn", BatchCentered(trained_cnn), FGSM)
    flag = ev.flag("reclassified", "fgsm")
    assert flag["status"] == "WARN" and "change when x' is classified again" in flag["detail"], flag
    assert ev.status("deterministic", "fgsm") == "WARN"  # the common check sees it too (batch vs single)


# ---------------------------------------------------------------- flags that compare rows


def test_monotone_budget_fires_when_accuracy_rises_with_the_budget(sound, trained_cnn, tmp_path, monkeypatch):
    """An attack whose budget shrinks as the fraction grows (fraction f runs at 1 - f)."""
    assert sound.status("monotone_budget", "pgd", 0.5) == sound.status("monotone_budget", "pgd", 1.0) == "PASS"
    real = one_checkpoint.build

    def reversed_budget(spec, dataset, fraction=1.0, *args, **kwargs):
        return real(spec, dataset, round(1.0 - fraction, 6), *args, **kwargs)

    monkeypatch.setattr(one_checkpoint, "build", reversed_budget)
    ev = run_evaluation(tmp_path, "small_cnn", trained_cnn, PGD, fractions=(0.25, 0.5, 1.0))
    assert ev.acc("pgd", 1.0) > ev.acc("pgd", 0.25)
    flag = ev.flag("monotone_budget", "pgd", 0.5)
    assert flag["status"] == "WARN" and "accuracy by fraction 0.25:" in flag["detail"], flag
    assert ev.flag("monotone_budget", "pgd", 1.0) == flag  # every row of the attack carries it


def test_attack_order_fires_when_pgd_is_weaker_than_fgsm(sound, trained_cnn, tmp_path):
    """One PGD step of 0.001 from x is no attack; FGSM's one step of ε is."""
    assert sound.status("order_pgd_vs_fgsm", "pgd") == sound.status("order_pgd_vs_fgsm", "fgsm") == "PASS"
    weak_pgd = "pgd[epsilon=0.1,steps=1,step_size=0.001,start=none]"
    ev = run_evaluation(tmp_path, "small_cnn", trained_cnn, f"{weak_pgd},{FGSM}")
    assert ev.acc("pgd") > ev.acc("fgsm")
    flag = ev.flag("order_pgd_vs_fgsm", "pgd")
    assert flag["status"] == "WARN" and "pgd is weaker than fgsm" in flag["detail"], flag
    assert ev.flag("order_pgd_vs_fgsm", "fgsm") == flag


def test_compound_dominates_fires_when_the_compound_misses_what_its_part_breaks(sound, trained_cnn, tmp_path):
    """PGD+ whose PGD stage is weaker than the standalone PGD (one step of 0.001), on an identity grid."""
    assert sound.status("pgd+_covers_pgd", "pgd+") == sound.status("pgd+_covers_pgd", "pgd") == "PASS"
    weak_plus = ("pgd+[epsilon=0.1,steps=1,step_size=0.001,start=none,"
                 "rotation=0,translation=0,rotations=1,translations=1]")
    ev = run_evaluation(tmp_path, "small_cnn", trained_cnn, f"{PGD},{weak_plus}")
    flag = ev.flag("pgd+_covers_pgd", "pgd+")
    assert flag["status"] == "WARN" and "broken by pgd survive pgd+" in flag["detail"], flag
    missed = int(flag["detail"].split(" ")[0])
    assert missed > 0 and ev.flag("pgd+_covers_pgd", "pgd") == flag


# ---------------------------------------------------------------- gradient masking


def _percent(pattern: str, detail: str) -> float:
    return float(re.search(pattern + r"([\d.]+)%", detail).group(1))


def test_unbounded_pgd_fires_on_a_gradient_masked_model(sound, masked, trained_cnn, test_batch):
    assert sound.status("unbounded_pgd", "pgd") == "PASS"
    flag = masked.flag("unbounded_pgd", "pgd")
    assert flag["status"] == "WARN" and "gradient masking" in flag["detail"], flag
    # the case is real: the input gradient exists but is zero, so PGD with the whole image box (ε = 1) fails
    # where the black-box Square attack of `evaluate`, at ε = 0.1, breaks the model
    x, y = test_batch[0][:N].clone().requires_grad_(True), test_batch[1][:N]
    (grad,) = torch.autograd.grad(F.cross_entropy(Quantized(trained_cnn)(x), y), x)
    assert grad is not None and torch.count_nonzero(grad) == 0
    unbounded = _percent("PGD at ε = 1: ", flag["detail"])
    masking = masked.flag("gradient_masking", "pgd")["detail"]
    assert unbounded > 100 / 10, flag
    assert _percent("Square on its survivors ", masking) < _percent("pgd ", masking) / 2, masking  # breaks most
    assert _percent("PGD at ε = 1: ", sound.flag("unbounded_pgd", "pgd")["detail"]) <= 100 / 10


def test_gradient_masking_fires_when_square_beats_the_white_box_attacks(sound, masked):
    assert sound.status("gradient_masking", "pgd") == "PASS"
    flag = masked.flag("gradient_masking", "pgd")
    assert flag["status"] == "WARN" and "gradients are masked" in flag["detail"], flag


# ---------------------------------------------------------------- the checks' own arithmetic


def test_tolerance_is_one_example_or_half_a_point():
    # 64 examples: one example is 1.56 points; 1000 examples: 0.5 point, not 0.1
    assert checks.attack_order("pgd", 41.5, "fgsm", 40.0, 64)["status"] == "PASS"
    assert checks.attack_order("pgd", 41.6, "fgsm", 40.0, 64)["status"] == "WARN"
    assert checks.gradient_masking("pgd", 40.5, 40.0, 1000)["status"] == "PASS"
    assert checks.gradient_masking("pgd", 40.6, 40.0, 1000)["status"] == "WARN"
    assert checks.monotone_budget({0.5: 40.0, 1.0: 40.5}, 1000)["status"] == "PASS"
    assert checks.monotone_budget({0.5: 40.0, 1.0: 40.6}, 1000)["status"] == "WARN"
