"""Training objectives: SRT (Eq. (9)/(11)) and every defense the paper compares it with.

A defense is only its objective: `objective(model, batch, neighborhood, params, gen)` returns a dict
with `loss` (what the trainer minimizes), `natural` and `robust` (its two parts, detached) and
`correct` / `count` (training accuracy of the supervised term's logits).  The inner maximization is
done by the foundation's maximizers (model in eval mode, no parameter gradients); which one depends on
the neighborhood, which names its own (`train_solver`): PGD over a pixel ball, worst-of-k random transforms over
a spatial one, PGD on σ for blur and on contrast/brightness for color, and its parts' in sequence over a compound
(pixel-wise first, Appendix F).  A defense is defined for every registered threat unless it declares otherwise.

Notation: L = cross-entropy, C(x) = argmax f(x) computed in eval mode without gradient (the official
code's choice), x_l / y the labeled part of the batch, x_u its unlabeled part, λ, β trade-offs.

Where the paper and its official code (THUYimingLi/Semi-supervised_Robust_Training) differ, the paper
is the default and the code's choice an option: `--weighting code` (spatial SRT's weighted mean over
the concatenated batch), `--spatial-pick flip` (spatial SRT's choice of transform).  The PGD start
x + 0.001·N(0, I) (`--start normal`) is the code's, since the paper names none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from srtbench.config import field, require, validate
from srtbench.data import Batch, DataConfig
from srtbench.errors import SrtbenchError
from srtbench.maximizers import build, cross_entropy, eval_mode, kl_to_clean, misclassified, predict
from srtbench.neighborhoods import NEIGHBORHOODS, Neighborhood, SolverSettings
from srtbench.registry import Registry

# ---------------------------------------------------------------- hyperparameters (declared once)


@dataclass
class DefenseParams:
    """Every defense hyperparameter; each defense uses (and `train DEFENSE --help` shows) a subset.

    `None` means "the paper's default for this defense, threat and dataset", filled in by `resolve`
    and recorded resolved in the checkpoint.
    """

    lam: float | None = field(
        None, "λ, weight of the robust term (RT/SRT Eq. (9); KLR). Default: SRT/RT 1 pixel-wise (Sec. 4.3), "
        "0.2 spatial and compound (Sec. 4.2); KLR 1 (Yang et al.)", flag="lambda")
    beta: float | None = field(
        None, "β = 1/λ of the KL smoothness term. Default: TRADES 1 on MNIST-like data, 6 on CIFAR-10; UAT 6, "
        "1 on CIFAR-10 (Appendix E); RST 6 (Carmon et al.)")
    steps: int = field(10, "K, PGD steps of the inner maximization (pixel-wise: Appendix B-C, E; blur, color too)")
    step_size: float | None = field(
        None, "α, pixel-wise PGD step size (default 2.5·ε/K, Madry et al.'s rule; presets set the paper's); blur "
        "and color step 2.5/K of their budget")
    start: str = field("normal", "PGD start: x + 0.001·N(0, I) (official code), uniform in N(x), or x itself",
                       choices=("normal", "uniform", "none"))
    k: int = field(10, "random transforms tried by the spatial inner maximization (Worst-of-k, Engstrom et al.)")
    spatial_pick: str = field(
        "worst", "spatial part: the transform of highest loss among k (paper), or the first that changes the "
        "target, else the worst (official SRT code)", choices=("worst", "flip"))
    weighting: str = field(
        "paper", "RT/SRT: mean L(x_l) + λ·mean robust loss (paper, Eq. (9)), or one mean over the concatenated "
        "batch with weight 1 on x_l and λ on x' (official spatial code, effective λ ≈ λ·|x'|/|x_l|)",
        choices=("paper", "code"))
    lambda_warmup: float = field(
        0.0, "RT/SRT: ramp λ linearly from 0 over this fraction of the run (NOT in the paper, whose value is 0: "
        "a common semi-supervised ramp-up that keeps short runs from collapsing onto an untrained net's C(x))")
    fgsm_alpha: float = field(1.25, "fast SRT: FGSM-RS step α = fgsm_alpha·ε (Appendix J, Wong et al.)")
    unlabeled_fraction: float = field(
        0.5, "RST: fraction of each batch drawn from the pseudo-labeled set (Carmon et al.)")
    teacher: str | None = field(
        None, "RST: checkpoint of a standard model trained on the labeled part, which pseudo-labels D_U; make one "
        "with `srtbench train standard --out runs/teacher.pt` (same --dataset/--n-labeled/--split-seed)")

    def __post_init__(self):
        validate(self)
        require(self.lam is None or self.lam >= 0, f"--lambda must be >= 0, got {self.lam}")
        require(self.beta is None or self.beta >= 0, f"--beta must be >= 0, got {self.beta}")
        require(self.steps >= 1, f"--steps must be >= 1, got {self.steps}")
        require(self.step_size is None or self.step_size > 0, f"--step-size must be > 0, got {self.step_size}")
        require(self.k >= 1, f"--k must be >= 1, got {self.k}")
        require(0 <= self.lambda_warmup < 1, f"--lambda-warmup must be in [0, 1), got {self.lambda_warmup}")
        require(self.fgsm_alpha > 0, f"--fgsm-alpha must be > 0, got {self.fgsm_alpha}")
        require(0 < self.unlabeled_fraction < 1,
                f"--unlabeled-fraction must be in (0, 1), got {self.unlabeled_fraction}")
        self._teacher_model: nn.Module | None = None

    def attach_teacher(self, model: nn.Module) -> None:
        """RST's pseudo-labeler (kept off the dataclass fields, so it never lands in plain-data records)."""
        self._teacher_model = model.eval()

    @property
    def teacher_model(self) -> nn.Module:
        if self._teacher_model is None:
            raise SrtbenchError("rst needs a teacher: pass --teacher CKPT (train one with `srtbench train standard`)")
        return self._teacher_model

    def as_dict(self, names: tuple[str, ...]) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in names}


# ---------------------------------------------------------------- the registry


Objective = Callable[[nn.Module, Batch, Neighborhood, DefenseParams, "torch.Generator | None"], dict]


@dataclass(frozen=True)
class Defense:
    """A registered objective with what the CLI, trainer and tables need to know about it."""

    name: str
    objective: Objective
    params: tuple[str, ...]  # DefenseParams fields it reads
    label: Callable[[DefenseParams, str], str]  # the paper's row name
    source: str
    only: tuple[str, ...] | None = None  # the threats it is defined for, where not every registered one
    refuses: tuple[str, ...] = ()  # threats it is not defined for ...
    hint: str = ""  # ... and what to use for them instead
    defaults: Callable[[str, str], dict] = lambda threat, dataset: {}  # paper defaults per (threat, dataset)
    uses_unlabeled: bool = False
    schedule: str = "piecewise"  # the learning-rate schedule it is run with by default
    prepare: Callable[[Setup], None] = lambda setup: None  # what it needs before the first step (RST: a teacher)

    def accepts(self, threat: str) -> bool:
        return threat in self.only if self.only is not None else threat not in self.refuses

    @property
    def threats(self) -> tuple[str, ...]:
        """The registered threats it is defined for (and, unless `only` is declared, any chain of them)."""
        return tuple(t for t in NEIGHBORHOODS.names() if self.accepts(t))

    def resolve(self, params: DefenseParams, threat: str, dataset: str, epsilon: float) -> DefenseParams:
        """Check the threat is supported and fill every `None` with the paper's default."""
        if not self.accepts(threat):
            hint = f" ({self.hint})" if self.hint else ""
            raise SrtbenchError(
                f"defense {self.name!r} is not defined for the {threat} threat; it supports: "
                f"{', '.join(self.threats)}{hint}"
            )
        values = {f.name: getattr(params, f.name) for f in fields(params)}
        for key, value in self.defaults(threat, dataset).items():
            if values[key] is None:
                values[key] = value
        if values["step_size"] is None:
            values["step_size"] = 2.5 * epsilon / values["steps"]
        out = DefenseParams(**values)
        out._teacher_model = params._teacher_model
        return out


DEFENSES: Registry[Defense] = Registry("defense")


@dataclass
class Setup:
    """What a defense's `prepare` hook sees before the first step, and may set: its resolved parameters (it may
    attach models to them) and the number of unlabeled images per batch (None: D_L and D_U in proportion to their
    sizes, Section 4)."""

    params: DefenseParams
    data: DataConfig
    device: torch.device
    batch_size: int
    has_unlabeled: bool
    unlabeled_per_batch: int | None = None


def register(name: str, **kw) -> Callable[[Objective], Objective]:
    def deco(fn: Objective) -> Objective:
        DEFENSES.register(name)(Defense(name=name, objective=fn, **kw))
        return fn

    return deco


# ---------------------------------------------------------------- inner maximizers per neighborhood


def inner_maximizer(neighborhood: Neighborhood, params: DefenseParams, fast: bool = False):
    """The maximizer the neighborhood names for training, given this defense's settings (FGSM-RS with α =
    fgsm_alpha·ε when `fast`, Algorithm 2)."""
    return build(neighborhood.train_solver(SolverSettings(params.steps, params.step_size, params.start, params.k, fast,
                                               params.fgsm_alpha)))


def _maximize(model, neighborhood, x, target, loss, params, gen, fast=False):
    """x' = argmax over N(x) of loss(f(x'), target), detached (Eq. (10))."""
    done = misclassified if params.spatial_pick == "flip" and neighborhood.search_in_training else None
    if done is not None and target.dim() != 1:
        done = None  # "changes the prediction" needs a class target; KL objectives keep the worst by loss
    theta = inner_maximizer(neighborhood, params, fast)(model, neighborhood, x, target, loss, done=done, gen=gen)
    return neighborhood.apply(x, theta).detach()


def _clean_loss_monitor(model, x, y) -> torch.Tensor:
    """L(f(x), y) for the metrics only (eval mode, so BatchNorm statistics and dropout are untouched)."""
    with eval_mode(model), torch.no_grad():
        return F.cross_entropy(model(x), y)


def _out(loss, natural, robust, logits, y) -> dict:
    return {
        "loss": loss,
        "natural": natural.detach(),
        "robust": robust.detach(),
        "correct": (logits.detach().argmax(1) == y).sum(),
        "count": torch.tensor(len(y), device=y.device),
    }


def _merged(batch: Batch, use_unlabeled: bool) -> torch.Tensor:
    if use_unlabeled and batch.x_unlabeled is not None and len(batch.x_unlabeled):
        return torch.cat([batch.x_labeled, batch.x_unlabeled])
    return batch.x_labeled


# ---------------------------------------------------------------- the objectives


@register("standard", params=(),
          label=lambda p, t: "Standard", source="empirical risk minimization")
def standard(model, batch, neighborhood, params, gen=None):
    """min_w mean L(f(x_l), y) on the labeled part only."""
    logits = model(batch.x_labeled)
    loss = F.cross_entropy(logits, batch.y_labeled)
    return _out(loss, loss, torch.zeros(()), logits, batch.y_labeled)


@register("at", refuses=("spatial",), hint="for spatial AT use worst-of-k", params=("steps", "step_size", "start", "k"),
          label=lambda p, t: "AT+" if t == "compound" else "AT",
          source="Madry et al. 2018 (PGD AT); with --threat compound the paper's AT+ (Sec. 4.4, Appendix F)")
def adversarial_training(model, batch, neighborhood, params, gen=None):
    """min_w mean L(f(x'), y), x' = argmax_{x' ∈ N(x)} L(f(x'), y) (PGD; worst-of-k after PGD for AT+)."""
    x, y = batch.x_labeled, batch.y_labeled
    x_adv = _maximize(model, neighborhood, x, y, cross_entropy, params, gen)
    logits = model(x_adv)
    loss = F.cross_entropy(logits, y)
    return _out(loss, _clean_loss_monitor(model, x, y), loss, logits, y)


DEFENSES.register("worst-of-k")(Defense(
    name="worst-of-k", objective=adversarial_training, only=("spatial",), params=("k",),
    label=lambda p, t: "Worst-of-k",
    source="Engstrom et al. 2019: L on the worst of k = 10 random rotations + translations",
))


def _smoothness(model, x_sup, y_sup, x_smooth, neighborhood, params, gen, weight, detach_target):
    """mean L(f(x_sup), y_sup) + weight·mean_{x ∈ x_smooth} KL(f(x) ‖ f(x')), x' = argmax KL(f(x) ‖ f(·))
    over N(x) (TRADES' objective, Zhang et al. 2019 Eq. (5), with its 0.001·N(0, I) start).
    Without `detach_target`, x_smooth must be x_sup (the KL is then differentiated through f(x))."""
    with eval_mode(model), torch.no_grad():
        clean_probs = F.softmax(model(x_smooth), 1)
    x_adv = _maximize(model, neighborhood, x_smooth, clean_probs, kl_to_clean, params, gen)
    logits_sup = model(x_sup)
    natural = F.cross_entropy(logits_sup, y_sup)
    # TRADES differentiates through f(x); UAT-OT's online targets are held fixed
    target = clean_probs if detach_target else F.softmax(logits_sup, 1)
    robust = F.kl_div(F.log_softmax(model(x_adv), 1), target, reduction="batchmean")
    return _out(natural + weight * robust, natural, robust, logits_sup, y_sup)


@register("trades", only=("pixel",), params=("beta", "steps", "step_size"),
          label=lambda p, t: "TRADES",
          defaults=lambda t, d: {"beta": 6.0 if d == "cifar10" else 1.0},
          source="Zhang et al. 2019; β = 1/λ: 1 on MNIST, 6 on CIFAR-10 (Appendix E)")
def trades(model, batch, neighborhood, params, gen=None):
    """mean L(f(x_l), y) + β·mean KL(f(x_l) ‖ f(x'_l)), x' maximizing that KL from x + 0.001·N(0, I)."""
    params = _with_start(params, "normal")
    x = batch.x_labeled
    return _smoothness(model, x, batch.y_labeled, x, neighborhood, params, gen, params.beta, detach_target=False)


@register("klr", only=("spatial",), params=("lam", "k"),
          label=lambda p, t: "KLR", defaults=lambda t, d: {"lam": 1.0},
          source="Yang et al. 2019, invariance-inducing KL regularization with worst-of-k transforms, λ = 1")
def klr(model, batch, neighborhood, params, gen=None):
    """mean L(f(x_l), y) + λ·mean KL(f(x_l) ‖ f(x')), x' the worst (by that KL) of k random transforms."""
    x = batch.x_labeled
    return _smoothness(model, x, batch.y_labeled, x, neighborhood, params, gen, params.lam, detach_target=False)


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
    params = _with_start(params, "normal")
    x_all = _merged(batch, True)
    return _smoothness(model, batch.x_labeled, batch.y_labeled, x_all, neighborhood, params, gen, params.beta,
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
    params = _with_start(params, "normal")
    x, y = batch.x_labeled, batch.y_labeled
    if batch.x_unlabeled is not None and len(batch.x_unlabeled):
        pseudo = predict(params.teacher_model, batch.x_unlabeled)
        x, y = torch.cat([x, batch.x_unlabeled]), torch.cat([y, pseudo])
    return _smoothness(model, x, y, x, neighborhood, params, gen, params.beta, detach_target=False)


def _robust_training(model, batch, neighborhood, params, gen, use_unlabeled, fast=False):
    """Eq. (11): mean_{x_l} L(f(x_l), y) + λ·mean_{x ∈ x_l ∪ x_u} L(f(x'), C(x)), x' from Eq. (10)."""
    x_l, y = batch.x_labeled, batch.y_labeled
    x_mix = _merged(batch, use_unlabeled)
    target = predict(model, x_mix)
    x_adv = _maximize(model, neighborhood, x_mix, target, cross_entropy, params, gen, fast)
    logits = model(x_l)
    per_natural = F.cross_entropy(logits, y, reduction="none")
    per_robust = F.cross_entropy(model(x_adv), target, reduction="none")
    natural, robust = per_natural.mean(), per_robust.mean()
    if params.weighting == "code":
        # official spatial code: one mean over [x_l (weight 1); x' (weight λ)]
        loss = (per_natural.sum() + params.lam * per_robust.sum()) / (len(per_natural) + len(per_robust))
    else:
        loss = natural + params.lam * robust
    return _out(loss, natural, robust, logits, y)


def _srt_lambda(threat, dataset):
    return {"lam": 1.0 if threat == "pixel" else 0.2}


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


def _per_type_losses(model, batch, neighborhood, params, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """(types, B) losses L(f(x'_t), y), one adversarial example per perturbation type t, each crafted
    from the clean x against its own neighborhood alone (Tramèr & Boneh 2019)."""
    if len(neighborhood.chain()) < 2:
        raise SrtbenchError("at-avg and at-max need --threat compound")
    x, y = batch.x_labeled, batch.y_labeled
    advs = [_maximize(model, part, x, y, cross_entropy, params, gen) for part in neighborhood.chain()]
    logits = model(torch.cat(advs))
    return F.cross_entropy(logits, y.repeat(len(advs)), reduction="none").view(len(advs), len(y)), logits


@register("at-avg", only=("compound",), params=("steps", "step_size", "start", "k"),
          label=lambda p, t: "AT(avg)", source="Tramèr & Boneh 2019, 'avg' strategy (Appendix I)")
def at_avg(model, batch, neighborhood, params, gen=None):
    """mean over perturbation types t and examples of L(f(x'_t), y)."""
    losses, logits = _per_type_losses(model, batch, neighborhood, params, gen)
    loss = losses.mean()
    y = batch.y_labeled
    return _out(loss, _clean_loss_monitor(model, batch.x_labeled, y), loss, logits, y.repeat(len(losses)))


@register("at-max", only=("compound",), params=("steps", "step_size", "start", "k"),
          label=lambda p, t: "AT(max)", source="Tramèr & Boneh 2019, 'max' strategy (Appendix I)")
def at_max(model, batch, neighborhood, params, gen=None):
    """mean over examples of max over perturbation types t of L(f(x'_t), y)."""
    losses, logits = _per_type_losses(model, batch, neighborhood, params, gen)
    loss = losses.max(0).values.mean()
    y = batch.y_labeled
    return _out(loss, _clean_loss_monitor(model, batch.x_labeled, y), loss, logits, y.repeat(len(losses)))


def ramp_lambda(params: DefenseParams, done: float) -> DefenseParams:
    """The parameters at fraction `done` ∈ [0, 1) of the run: λ·min(1, done / lambda_warmup).

    Not in the paper (lambda_warmup 0, its default, returns `params` itself).  Why a ramp helps short runs:
    an untrained net predicts one class everywhere, so C(x) is constant and the robust term L(f(x'), C(x))
    rewards that constant prediction; with λ = 1 and few SGD steps the run can stay there (chance accuracy).
    Ramping λ up lets the supervised term shape C(x) first (Laine & Aila 2017's ramp-up does the same).
    """
    if not params.lambda_warmup or params.lam is None or done >= params.lambda_warmup:
        return params
    out = replace(params, lam=params.lam * done / params.lambda_warmup)
    out._teacher_model = params._teacher_model
    return out


def _with_start(params: DefenseParams, start: str) -> DefenseParams:
    """TRADES, UAT and RST start their PGD at x + 0.001·N(0, I) by definition."""
    if params.start == start:
        return params
    out = replace(params, start=start)
    out._teacher_model = params._teacher_model
    return out
