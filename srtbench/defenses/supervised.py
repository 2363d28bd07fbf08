"""The supervised defenses: standard training, AT (PGD-AT; AT+ on the compound threat), Worst-of-k, TRADES and KLR,
each an objective on the labeled part of the batch alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srtbench.defenses.inner import clean_loss_monitor, maximize, parts
from srtbench.defenses.params import with_start
from srtbench.defenses.registry import DEFENSES, Defense, register
from srtbench.maximizers import cross_entropy, eval_mode, kl_to_clean


@register("standard", params=(), robust=False,
          label=lambda p, t: "Standard", source="empirical risk minimization")
def standard(model, batch, neighborhood, params, gen=None):
    """min_w mean L(f(x_l), y) on the labeled part only."""
    logits = model(batch.x_labeled)
    loss = F.cross_entropy(logits, batch.y_labeled)
    return parts(loss, loss, torch.zeros(()), logits, batch.y_labeled)


@register("at", refuses=("spatial",), hint="for spatial AT use worst-of-k", params=("steps", "step_size", "start", "k"),
          label=lambda p, t: "AT+" if t == "compound" else "AT",
          source="Madry et al. 2018 (PGD AT); with --threat compound the paper's AT+ (Sec. 4.4, Appendix F)")
def adversarial_training(model, batch, neighborhood, params, gen=None):
    """min_w mean L(f(x'), y), x' = argmax_{x' ∈ N(x)} L(f(x'), y) (PGD; worst-of-k after PGD for AT+)."""
    x, y = batch.x_labeled, batch.y_labeled
    x_adv = maximize(model, neighborhood, x, y, cross_entropy, params, gen)
    logits = model(x_adv)
    loss = F.cross_entropy(logits, y)
    return parts(loss, clean_loss_monitor(model, x, y), loss, logits, y)


DEFENSES.register("worst-of-k")(Defense(
    name="worst-of-k", objective=adversarial_training, only=("spatial",), params=("k",),
    label=lambda p, t: "Worst-of-k", formula="L on the worst of k random transforms (Engstrom et al.)",
    source="Engstrom et al. 2019: L on the worst of k = 10 random rotations + translations",
))


def smoothness(model, x_sup, y_sup, x_smooth, neighborhood, params, gen, weight, detach_target):
    """mean L(f(x_sup), y_sup) + weight·mean_{x ∈ x_smooth} KL(f(x) ‖ f(x')), x' = argmax KL(f(x) ‖ f(·))
    over N(x) (TRADES' objective, Zhang et al. 2019 Eq. (5), with its 0.001·N(0, I) start).
    Without `detach_target`, x_smooth must be x_sup (the KL is then differentiated through f(x))."""
    with eval_mode(model), torch.no_grad():
        clean_probs = F.softmax(model(x_smooth), 1)
    x_adv = maximize(model, neighborhood, x_smooth, clean_probs, kl_to_clean, params, gen)
    logits_sup = model(x_sup)
    natural = F.cross_entropy(logits_sup, y_sup)
    # TRADES differentiates through f(x); UAT-OT's online targets are held fixed
    target = clean_probs if detach_target else F.softmax(logits_sup, 1)
    robust = F.kl_div(F.log_softmax(model(x_adv), 1), target, reduction="batchmean")
    return parts(natural + weight * robust, natural, robust, logits_sup, y_sup)


@register("trades", only=("pixel",), params=("beta", "steps", "step_size"),
          label=lambda p, t: "TRADES",
          defaults=lambda t, d: {"beta": 6.0 if d == "cifar10" else 1.0},
          source="Zhang et al. 2019; β = 1/λ: 1 on MNIST, 6 on CIFAR-10 (Appendix E)")
def trades(model, batch, neighborhood, params, gen=None):
    """mean L(f(x_l), y) + β·mean KL(f(x_l) ‖ f(x'_l)), x' maximizing that KL from x + 0.001·N(0, I)."""
    params = with_start(params, "normal")
    x = batch.x_labeled
    return smoothness(model, x, batch.y_labeled, x, neighborhood, params, gen, params.beta, detach_target=False)


@register("klr", only=("spatial",), params=("lam", "k"),
          label=lambda p, t: "KLR", defaults=lambda t, d: {"lam": 1.0},
          source="Yang et al. 2019, invariance-inducing KL regularization with worst-of-k transforms, λ = 1")
def klr(model, batch, neighborhood, params, gen=None):
    """mean L(f(x_l), y) + λ·mean KL(f(x_l) ‖ f(x')), x' the worst (by that KL) of k random transforms."""
    x = batch.x_labeled
    return smoothness(model, x, batch.y_labeled, x, neighborhood, params, gen, params.lam, detach_target=False)
