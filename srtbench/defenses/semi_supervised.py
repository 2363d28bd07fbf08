"""The defenses that use unlabeled data: UAT, RST, and the paper's RT, SRT and fast SRT (Eq. (6)-(11), Appendix J)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srtbench.defenses.inner import maximize, merged, parts
from srtbench.defenses.params import with_start
from srtbench.defenses.registry import Setup, register
from srtbench.defenses.supervised import smoothness
from srtbench.errors import SrtbenchError
from srtbench.maximizers import cross_entropy, predict
from srtbench.neighborhoods import NEIGHBORHOODS, threat_parts


@register("uat", only=("pixel",), params=("beta", "steps", "step_size"), uses_unlabeled=True,
          label=lambda p, t: "UAT",
          defaults=lambda t, d: {"beta": 1.0 if d == "cifar10" else 6.0},
          source="Alayrac et al. 2019, UAT-OT (no official code; written from its definition); β 6, 1 on "
          "CIFAR-10 (Appendix E)")
def uat(model, batch, neighborhood, params, gen=None):
    """UAT-OT: mean L(f(x_l), y) + β·mean_{x ∈ x_l ∪ x_u} KL(f_ŵ(x) ‖ f(x')), x' = argmax of that KL.

    The targets f_ŵ(x) are the model's own online predictions, held fixed (no gradient) as in Alayrac
    et al.'s UAT-OT; unlike TRADES the smoothness term covers the unlabeled images too.
    """
    params = with_start(params, "normal")
    x_all = merged(batch, True)
    return smoothness(model, batch.x_labeled, batch.y_labeled, x_all, neighborhood, params, gen, params.beta,
                       detach_target=True)


def _rst_prepare(setup: Setup) -> None:
    """RST's teacher pseudo-labels D_U (loaded once, before training), and a fixed share of each batch is D_U."""
    from srtbench import checkpoint

    path, data = setup.params.teacher, setup.data
    if not path:
        raise SrtbenchError(
            "rst needs a teacher to pseudo-label D_U: pass --teacher CKPT, made first with "
            f"`srtbench train standard --dataset {data.dataset} --n-labeled {data.n_labeled} --out runs/teacher.pt`")
    ckpt = checkpoint.load(path)
    if ckpt.meta["dataset"] != data.dataset:
        raise SrtbenchError(f"{path}: teacher was trained on {ckpt.meta['dataset']}, not {data.dataset}")
    if ckpt.meta["num_classes"] != data.spec.num_classes:
        raise SrtbenchError(f"{path}: teacher predicts {ckpt.meta['num_classes']} classes, {data.dataset} has "
                            f"{data.spec.num_classes}")
    setup.params.attach_teacher(ckpt.build_model().to(setup.device))
    if setup.has_unlabeled:
        setup.unlabeled_per_batch = round(setup.batch_size * setup.params.unlabeled_fraction)


@register("rst", only=("pixel",), params=("beta", "steps", "step_size", "unlabeled_fraction", "teacher"),
          uses_unlabeled=True, label=lambda p, t: "RST", defaults=lambda t, d: {"beta": 6.0}, prepare=_rst_prepare,
          source="Carmon et al. 2019, robust self-training: TRADES on labeled + pseudo-labeled data, half of "
          "each batch pseudo-labeled, β = 6")
def rst(model, batch, neighborhood, params, gen=None):
    """mean_{(x, ỹ) ∈ labeled ∪ pseudo-labeled} [L(f(x), ỹ) + β·KL(f(x) ‖ f(x'))], ỹ = teacher's argmax on x_u."""
    params = with_start(params, "normal")
    x, y = batch.x_labeled, batch.y_labeled
    if batch.x_unlabeled is not None and len(batch.x_unlabeled):
        pseudo = predict(params.teacher_model, batch.x_unlabeled)
        x, y = torch.cat([x, batch.x_unlabeled]), torch.cat([y, pseudo])
    return smoothness(model, x, y, x, neighborhood, params, gen, params.beta, detach_target=False)


def _robust_training(model, batch, neighborhood, params, gen, use_unlabeled, fast=False):
    """Eq. (11): mean_{x_l} L(f(x_l), y) + λ·mean_{x ∈ x_l ∪ x_u} L(f(x'), C(x)), x' from Eq. (10)."""
    x_l, y = batch.x_labeled, batch.y_labeled
    x_mix = merged(batch, use_unlabeled)
    target = predict(model, x_mix)
    x_adv = maximize(model, neighborhood, x_mix, target, cross_entropy, params, gen, fast)
    logits = model(x_l)
    per_natural = F.cross_entropy(logits, y, reduction="none")
    per_robust = F.cross_entropy(model(x_adv), target, reduction="none")
    natural, robust = per_natural.mean(), per_robust.mean()
    if params.weighting == "code":
        # official spatial code: one mean over [x_l (weight 1); x' (weight λ)]
        loss = (per_natural.sum() + params.lam * per_robust.sum()) / (len(per_natural) + len(per_robust))
    else:
        loss = natural + params.lam * robust
    return parts(loss, natural, robust, logits, y)


def _srt_lambda(threat: str, dataset: str) -> dict:
    """RT's and SRT's λ as the threat declares it (`Neighborhood.srt_lambda`); a chain takes its parts' smallest, so
    the compound threat gets spatial's 0.2, as SRT+ does in the paper (Sec. 4.4).  None where a part declares none:
    `--lambda` must then be given."""
    declared = [NEIGHBORHOODS.get(p).srt_lambda for p in threat_parts(threat)]
    return {"lam": None if None in declared else min(declared)}


_RT_PARAMS = ("lam", "lambda_warmup", "steps", "step_size", "start", "k", "spatial_pick", "weighting")


@register("rt", params=_RT_PARAMS, defaults=_srt_lambda,
          label=lambda p, t: f"RT (λ = {p.lam:g})", source="Eq. (6), approximated as Eq. (9) with D_U = ∅")
def robust_training(model, batch, neighborhood, params, gen=None):
    """RT, Eq. (6): mean L(f(x_l), y) + λ·mean_{x_l} max_{x' ∈ N(x_l)} L(f(x'), C(x_l))."""
    return _robust_training(model, batch, neighborhood, params, gen, use_unlabeled=False)


@register("srt", params=_RT_PARAMS, defaults=_srt_lambda,
          uses_unlabeled=True,
          label=lambda p, t: "SRT+" if t == "compound" else f"SRT (λ = {p.lam:g})",
          source="Eq. (8)-(11); λ = 1 pixel-wise (Sec. 4.3), 0.2 spatial (Sec. 4.2); SRT+ with --threat compound")
def semi_supervised_robust_training(model, batch, neighborhood, params, gen=None):
    """SRT, Eq. (9)/(11): the robust term over D_L ∪ D_U; with no unlabeled data it is exactly RT."""
    return _robust_training(model, batch, neighborhood, params, gen, use_unlabeled=True)


@register("fast-srt", params=_RT_PARAMS + ("fgsm_alpha",),
          defaults=_srt_lambda, uses_unlabeled=True, schedule="cyclic", label=lambda p, t: "fast SRT",
          source="Appendix J: FGSM-RS solver (α = 1.25ε, Algorithm 2) pixel-wise, cyclic learning rate")
def fast_srt(model, batch, neighborhood, params, gen=None):
    """SRT with one FGSM step from a uniform start for the pixel part (Algorithm 2); spatial parts
    keep worst-of-k.  The trainer runs it with the triangular cyclic schedule (Figure 8)."""
    return _robust_training(model, batch, neighborhood, params, gen, use_unlabeled=True, fast=True)
