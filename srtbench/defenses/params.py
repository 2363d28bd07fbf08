"""DefenseParams: every defense hyperparameter, declared once (the CLI, presets, recipes and tests build it), and the
copies of it that a run makes along the way (λ ramped, a defense's own PGD start), each keeping RST's teacher."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from torch import nn

from srtbench.config import field, require, validate
from srtbench.errors import SrtbenchError


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

    def changed(self, **changes) -> DefenseParams:
        """A copy with `changes`, and the same teacher model (which is not a field, so `replace` drops it)."""
        out = replace(self, **changes)
        out._teacher_model = self._teacher_model
        return out


def ramp_lambda(params: DefenseParams, done: float) -> DefenseParams:
    """The parameters at fraction `done` ∈ [0, 1) of the run: λ·min(1, done / lambda_warmup).

    Not in the paper (lambda_warmup 0, its default, returns `params` itself).  Why a ramp helps short runs:
    an untrained net predicts one class everywhere, so C(x) is constant and the robust term L(f(x'), C(x))
    rewards that constant prediction; with λ = 1 and few SGD steps the run can stay there (chance accuracy).
    Ramping λ up lets the supervised term shape C(x) first (Laine & Aila 2017's ramp-up does the same).
    """
    if not params.lambda_warmup or params.lam is None or done >= params.lambda_warmup:
        return params
    return params.changed(lam=params.lam * done / params.lambda_warmup)


def with_start(params: DefenseParams, start: str) -> DefenseParams:
    """TRADES, UAT and RST start their PGD at x + 0.001·N(0, I) by definition."""
    if params.start == start:
        return params
    return params.changed(start=start)
