"""Sanity flags of an evaluation: one small named function per check (after AutoAttack's checks.py).

Each returns `{"status": "PASS" | "WARN", "detail": "<numbers>; <what to try next>"}`; evaluation stores
the flags with every row they concern and prints the WARNs.  A flag never drops or changes a result.
Accuracies are percentages; `n` is the number of examples a comparison rests on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from srtbench.maximizers import eval_mode

Flag = dict[str, str]


def _flag(ok: bool, detail: str, hint: str) -> Flag:
    return {"status": "PASS" if ok else "WARN", "detail": detail if ok else f"{detail}; {hint}"}


def _tolerance(n: int) -> float:
    """One example, or 0.5 point on large sets: random starts may move single examples."""
    return max(100.0 / max(n, 1), 0.5)


def zero_budget(clean_acc: float, zero_acc: float, n: int) -> Flag:
    """ε = 0 (fraction 0) must give the clean accuracy exactly."""
    return _flag(zero_acc == clean_acc, f"fraction 0: {zero_acc:.2f}% vs clean {clean_acc:.2f}% on {n} examples",
                 "the attack leaves N(x) or the input pipeline differs between clean and attacked passes")


EOT_MOST = 32  # EOT passes the hint proposes at most: zoo:noisy's PGD falls as far with 20 as with 90 (README)
PASSES = 8  # passes of the deterministic check, from which a random model's EOT sample count is estimated


def eot_samples(logits: torch.Tensor) -> int:
    """Passes per decision that tell the sign of an example's expected margin (top class minus the best other,
    averaged over passes) at three standard errors: N = 9·(σ/|μ|)², in [2, 100], at the 90th percentile of σ/|μ|
    over the examples (an attack decides the examples near the boundary, where the margin is small against its
    spread), at most EOT_MOST (each pass multiplies the attack's cost).  `logits` (passes, B, classes)."""
    top = logits.mean(0).argmax(1)
    true = logits.gather(2, top[None, :, None].expand(len(logits), -1, 1)).squeeze(2)
    other = logits.scatter(2, top[None, :, None].expand(len(logits), -1, 1), float("-inf")).amax(2)
    margin = true - other
    ratio = (margin.std(0) / margin.mean(0).abs().clamp_min(1e-6)).quantile(0.9).item()
    return int(min(EOT_MOST, max(2, -(-9 * ratio**2 // 1))))


def deterministic(model: nn.Module, x: torch.Tensor) -> Flag:
    """Eval-mode outputs repeat exactly and do not depend on the batch (BatchNorm statistics, dropout)."""
    with eval_mode(model), torch.no_grad():
        first, second = model(x), model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(min(len(x), 8))])
        repeat = (first - second).abs().max().item()
        # random at inference: more passes tell how many an attack must average over
        runs = torch.stack([first, second, *(model(x) for _ in range(PASSES - 2))]) if repeat > 0 else None
    batch = (first[: len(single)] - single).abs().max().item()
    if runs is not None:
        n = eot_samples(runs)
        hint = (f"the model is stochastic in eval mode (dropout left on, input noise, random transforms): attack it "
                f"with EOT, N = {n} passes from the spread of its "
                f"logits, e.g. --attacks 'pgd[eot={n}],autoattack[eot={n}]'")
    else:
        hint = ("the model is batch-dependent in eval mode (BatchNorm in train mode?); attacks then over- or "
                "under-estimate robustness")
    return _flag(repeat == 0 and batch < 1e-3, f"max |Δlogit| repeated {repeat:.2g}, batch vs single {batch:.2g}",
                 hint)


def probability_rows(out: torch.Tensor) -> int:
    """Output rows that are probabilities: non-negative, summing to 1."""
    return int(((out >= 0).all(1) & ((out.sum(1) - 1).abs() < 1e-4)).sum())


def zero_gradient_rows(grad: torch.Tensor | None, n: int) -> int:
    """Examples whose input gradient is zero or underflowed (all `n` where the output has none at all)."""
    return n if grad is None else int((grad.flatten(1).abs().amax(1) < 1e-30).sum())


def probabilities(model: nn.Module, x: torch.Tensor) -> Flag:
    """The model outputs logits, not probabilities (after Pintor et al. 2022's indicators): rows of non-negative
    numbers summing to 1 make cross-entropy on them nearly flat, so gradient attacks stall."""
    with eval_mode(model), torch.no_grad():
        out = model(x)
    rows = probability_rows(out)
    return _flag(rows < len(x), f"{rows} of {len(x)} output rows are probabilities (non-negative, summing to 1)",
                 "the model outputs probabilities: attack it with a loss that does not saturate, cw (the C&W margin "
                 "at the PGD budget), or wrap it so that it returns their logarithm")


def input_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Flag:
    """Cross-entropy has a non-zero gradient with respect to every clean input (after Pintor et al. 2022): a zero or
    underflowed one means gradient attacks cannot start (quantized or detached inputs, saturated logits)."""
    x = x.clone().requires_grad_(True)
    with eval_mode(model):
        out = model(x)
        grad = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y, reduction="sum"), x,
                                   allow_unused=True)[0] if out.requires_grad else None
    flat = zero_gradient_rows(grad, len(x))
    return _flag(flat == 0, f"{flat} of {len(x)} clean inputs have a zero input gradient",
                 "gradients vanish before the attack starts: try bpda=identity (a non-differentiable transform), "
                 "transfer (a cut gradient) or cw (saturated logits)")


def of_the_model(model: nn.Module, x: torch.Tensor, pred: torch.Tensor) -> dict[str, Flag]:
    """The flags every row of a model shares, on clean images `x` and the model's predictions `pred` of them."""
    return {"deterministic": deterministic(model, x), "probabilities": probabilities(model, x),
            "input_gradients": input_gradients(model, x, pred)}


def in_neighborhood(inside: torch.Tensor) -> Flag:
    """Every x' lies inside N(x) (its budget) and in [0, 1]."""
    bad = int((~inside).sum())
    return _flag(bad == 0, f"{bad} of {len(inside)} adversarial examples outside N(x) or [0,1]",
                 "report this attack as broken; its accuracy is not a robust accuracy")


def reclassified(adv_pred: torch.Tensor, again: torch.Tensor) -> Flag:
    """Classifying the saved x' again (other batch size) reproduces the predictions the accuracy counts."""
    bad = int((adv_pred != again).sum())
    return _flag(bad == 0, f"{bad} of {len(adv_pred)} predictions change when x' is classified again",
                 "the model is batch-dependent or non-deterministic; fix it before trusting any number")


def monotone_budget(accs: dict[float, float], n: int) -> Flag:
    """Robust accuracy does not rise with the budget fraction (up to one example of noise)."""
    fr = sorted(accs)
    rises = [(a, b) for a, b in zip(fr, fr[1:]) if accs[b] > accs[a] + _tolerance(n)]
    curve = ", ".join(f"{f:g}: {accs[f]:.1f}" for f in fr)
    return _flag(not rises, f"accuracy by fraction {curve}",
                 "a larger budget found less: more steps, a smaller step size or restarts")


def attack_order(strong: str, strong_acc: float, weak: str, weak_acc: float, n: int) -> Flag:
    """A stronger attack (PGD, GridAdv, AutoAttack) does not leave more accuracy than a weaker one."""
    return _flag(strong_acc <= weak_acc + _tolerance(n), f"{strong} {strong_acc:.2f}% vs {weak} {weak_acc:.2f}%",
                 f"{strong} is weaker than {weak}: gradient masking, or too few steps/too small a step")


def compound_dominates(compound: str, part: str, broken_compound: torch.Tensor, broken_part: torch.Tensor) -> Flag:
    """A compound attack breaks, per example, at least what its first stage breaks alone (Appendix F)."""
    missed = int((broken_part & ~broken_compound).sum())
    return _flag(missed == 0, f"{missed} examples broken by {part} survive {compound}",
                 "the compound's stages differ from the standalone attack (settings or seed)")


def unbounded_pgd(acc: float, num_classes: int, n: int) -> Flag:
    """PGD with ε = 1 (the whole image box) must reach chance level or below."""
    chance = 100.0 / num_classes
    return _flag(acc <= chance, f"PGD at ε = 1: {acc:.1f}% on {n} examples (chance {chance:.1f}%)",
                 "gradients do not lead anywhere: gradient masking or a non-differentiable model")


def gradient_masking(white_box: str, white_acc: float, black_acc: float, n: int) -> Flag:
    """The black-box Square attack at the same budget breaks (almost) nothing that the best white-box attack left
    robust: `black_acc` is the accuracy once Square has attacked the white-box attack's survivors."""
    return _flag(white_acc <= black_acc + _tolerance(n),
                 f"{white_box} {white_acc:.1f}% vs Square on its survivors {black_acc:.1f}% on {n} examples",
                 "gradients are masked: trust Square/AutoAttack, not PGD")


# ---------------------------------------------------------------- indicators of attack failure (srtbench/indicators)
# Each counts examples of a subset (SUBSET in evaluation) on which the attack demonstrably stopped short.  The
# tolerances were measured on the shipped honest models (README, "An evaluation a defense cannot fool").

BINARIZATION_PASS = 95.0  # Zimmermann et al. 2022: below this pass rate an attack is unreliable on the model
MISSED = 5.0  # percent of the subset that a rerun may newly break before the attack counts as stopping short


def binarization(passed: int, feasible: int, n: int) -> Flag:
    """The attack finds the adversarial region that the binarization test plants on each example."""
    rate = 100.0 * passed / feasible if feasible else 100.0
    return _flag(rate >= BINARIZATION_PASS, f"binarization test passed on {passed} of {feasible} examples "
                 f"({rate:.0f}%; {n - feasible} without a feasible readout)",
                 "the attack misses adversarial examples that provably exist: this number overestimates robustness; "
                 "srtbench audit names the adaptive attack to run")


def _missed(name: str, hint: str) -> Callable[[int, int, int], Flag]:
    def check(found: int, failed: int, n: int) -> Flag:
        return _flag(100.0 * found <= MISSED * n or found <= 1,
                     f"{found} of the {failed} examples the attack failed on break under {name} ({n} examples)", hint)

    check.__doc__ = f"Few examples the attack failed on break under {name}."
    return check


indicator_non_convergence = _missed("twice the steps", "the attack has not converged: more steps (steps=...)")
indicator_restarts = _missed("other random starts", "bad initialisation: restarts, or a stronger attack "
                             "(autoattack)")
indicator_transfer_stronger = _missed("a transfer attack from the shipped standard model",
                                      "the white-box attack is weaker than a black-box one: gradients are masked "
                                      "(bpda, eot or transfer)")


def silent_success(count: int, n: int) -> Flag:
    """No point the attack visited inside the threat set was adversarial while the point it returned is not."""
    return _flag(count == 0, f"{count} of {n} examples: an adversarial point was visited but not returned",
                 "the attack returns its last iterate, not the best: keep the best (or first breaking) iterate")


def flat_loss(count: int, failed: int) -> Flag:
    """Where the attack failed, its loss still rose along its path."""
    return _flag(count * 2 <= failed or count <= 1,
                 f"{count} of the {failed} examples the attack failed on: the loss never rose along its path",
                 "the steps do not climb the loss: zero, masked or saturated gradients (srtbench audit)")


ROUNDED_MOST = 50.0  # percent of adversarial examples rounding may undo: early-stopped PGD loses 17-44% (README)


def eight_bit(lost: int, broken: int) -> Flag:
    """Most adversarial examples stay adversarial on the 8-bit grid (as a saved image would hold them).  Early
    stopping keeps the first iterate that breaks an example, close to the boundary, so rounding undoes some on every
    model; the number is then lower than an 8-bit evaluation's, never higher."""
    return _flag(100.0 * lost <= ROUNDED_MOST * max(broken, 1) or lost <= 1,
                 f"{lost} of {broken} adversarial examples stop being adversarial rounded to 8 bits",
                 "most rely on precision no stored image has: the model reacts to sub-8-bit changes (does it "
                 "quantize or dither its input?)")
