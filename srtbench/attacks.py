"""The attack battery: every attack of the paper's Tables 1-9 and Figures 1/7, in one registry.

An attack is a neighborhood + a maximizer + a loss (native: FGSM, PGD, MI-FGSM, RandAdv, GridAdv and
their compounds PGD+/GridAdv+), or a thin adapter to a library attack (foolbox: C&W, DDN, point-wise;
torchattacks: the AutoAttack components), or a batched re-implementation checked against a library
(JSMA).  Each is registered once with its default settings per dataset family (Section 4.1,
Appendix B, C, E, F); `build("pgd[steps=100,start=none]", dataset, fraction)` applies command-line
overrides and scales every budget by `fraction` (the perturbation fractions of Figures 1 and 7).

Attacks are called with the label to move away from (evaluation passes the clean prediction C(x),
so the outcome measures R_rob of Eq. (4) as well as R_adv of Eq. (3)) and return an `AttackOutput`.
Minimum-norm attacks (C&W, DDN, point-wise) run unbounded once and report per-example distances; the
budget `epsilon` only decides which of their examples count as broken (`at_budget`).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from srtbench.config import require
from srtbench.errors import SrtbenchError
from srtbench.maximizers import (
    MIFGSM,
    PGD,
    GridSearch,
    RandomSearch,
    Sequential,
    cross_entropy,
    eval_mode,
    misclassified,
)
from srtbench.neighborhoods import Compound, Neighborhood, PixelBall, Spatial
from srtbench.registry import Registry

ATTACKS: Registry[Callable[..., Attack]] = Registry("attack")

# MNIST and Fashion-MNIST share the paper's MNIST settings (same shape, same SmallCNN).
FAMILIES = {"mnist": "mnist", "fashion-mnist": "mnist", "cifar10": "cifar10"}


def family(dataset: str) -> str:
    if dataset not in FAMILIES:
        raise SrtbenchError(f"no attack defaults for dataset {dataset!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[dataset]


@dataclass
class AttackOutput:
    """Per-example result of one attack on one batch (all tensors on the batch's device)."""

    x_adv: torch.Tensor
    inside: torch.Tensor  # (B,) bool: x_adv lies in the attack's threat set and in [0, 1]
    distance: torch.Tensor  # (B,) perturbation size (inf where a minimum-norm attack failed, NaN if n/a)

    def cat(self, other: AttackOutput) -> AttackOutput:
        return AttackOutput(*(torch.cat([a, b]) for a, b in zip(self.fields(), other.fields())))

    def fields(self) -> tuple[torch.Tensor, ...]:
        return self.x_adv, self.inside, self.distance

    def to(self, device) -> AttackOutput:
        return AttackOutput(*(t.to(device) for t in self.fields()))


def _nan(x: torch.Tensor) -> torch.Tensor:
    return torch.full((len(x),), math.nan, device=x.device)


def _in_box(x_adv: torch.Tensor) -> torch.Tensor:
    flat = x_adv.flatten(1)
    return (flat >= 0).all(1) & (flat <= 1).all(1)


def _norm(d: torch.Tensor, p: str) -> torch.Tensor:
    flat = d.flatten(1)
    if p == "linf":
        return flat.abs().amax(1)
    if p == "l2":
        return flat.norm(dim=1)
    return (flat.abs() > 1e-6).sum(1).float()  # l0: changed input values


class Attack(ABC):
    """Shared chores: name, settings (as given, for the CSV), effective budget, threat group."""

    name: str = ""
    threat: str = ""  # worst case over attacks is taken per threat group: linf, l2, l0, spatial, compound
    minimum_norm: bool = False
    params: dict[str, Any]
    budget: dict[str, float]

    @abstractmethod
    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                 gen: torch.Generator | None = None) -> AttackOutput:
        """Adversarial examples that move `model`'s prediction away from `target`."""

    def at_budget(self, out: AttackOutput, x: torch.Tensor) -> AttackOutput:
        """The output as counted at this attack's budget (minimum-norm attacks: keep x where too far)."""
        return out

    @property
    def run_key(self) -> str:
        """Two attacks with the same run key produce the same output (evaluation runs it once)."""
        return f"{self.name}{sorted(self.params.items())}{sorted(self.budget.items())}"


# ---------------------------------------------------------------- native: neighborhood + maximizer


class NeighborhoodAttack(Attack):
    """max_{x' ∈ N(x)} CE(f(x'), target) by a shared maximizer, stopping per example once broken."""

    def __init__(self, neighborhood: Neighborhood, maximizer: Callable, threat: str):
        self.neighborhood, self.maximizer, self.threat = neighborhood, maximizer, threat

    def __call__(self, model, x, target, gen=None):
        theta = self.maximizer(model, self.neighborhood, x, target, cross_entropy, misclassified, gen)
        x_adv = self.neighborhood.apply(x, theta).detach()
        inside = self.neighborhood.contains(theta) & _in_box(x_adv)
        if isinstance(self.neighborhood, PixelBall):  # check the image itself, not only θ
            inside &= _norm(x_adv - x, self.neighborhood.norm) <= self.neighborhood.epsilon + 1e-5
        return AttackOutput(x_adv, inside, _nan(x))


def _pixel(epsilon: float) -> PixelBall:
    require(0 <= epsilon <= 1, f"epsilon must be in [0, 1] (pixel units), got {epsilon:g}")
    return PixelBall(epsilon, "linf")


def _spatial(rotation: float, translation: float, rotations: int = 31, translations: int = 5) -> Spatial:
    require(0 <= rotation <= 180, f"rotation must be in [0, 180] degrees, got {rotation:g}")
    require(0 <= translation <= 32, f"translation must be in [0, 32] pixels, got {translation:g}")
    require(rotations >= 1 and translations >= 1, "grid sizes must be >= 1")
    return Spatial(rotation, translation, (rotations, translations, translations))


def _steps(steps: int, step_size: float) -> None:
    require(steps >= 1, f"steps must be >= 1, got {steps}")
    require(step_size >= 0, f"step_size must be >= 0, got {step_size:g}")


# ---------------------------------------------------------------- registration with per-dataset defaults


@dataclass(frozen=True)
class AttackInfo:
    """What `srtbench attacks` lists: defaults per dataset family, which settings are budgets, notes."""

    defaults: dict[str, dict[str, Any]]
    budget: tuple[str, ...]  # settings multiplied by --fractions
    threat: str
    source: str
    notes: str = ""
    library: str = "native"
    minimum_norm: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def attack(name: str, *, mnist: dict, cifar10: dict, budget: tuple[str, ...], threat: str, source: str,
           notes: str = "", library: str = "native", minimum_norm: bool = False):
    """Register a builder `fn(**settings) -> Attack` with its defaults (declared here, and only here)."""
    info = AttackInfo({"mnist": mnist, "cifar10": cifar10}, budget, threat, source, notes, library, minimum_norm)
    return ATTACKS.register(name, info=info)


SPATIAL = dict(rotation=30.0, translation=3.0)  # Section 4.1 / Appendix B, both datasets
MNIST_PGD = dict(epsilon=0.3, steps=40, step_size=0.01, start="uniform")  # Appendix E (Table 4)
CIFAR_PGD = dict(epsilon=8 / 255, steps=10, step_size=0.007, start="uniform")  # Appendix E (Table 4)
_PGD_NOTE = ("Table 6 (MNIST): pgd[epsilon=0.1,step_size=0.005]; Tables 1-2 (CIFAR-10): pgd[steps=20,step_size=0.003]."
             " start=uniform as TRADES/foolbox; start=none for the deterministic variant.")


@attack("fgsm", mnist=dict(epsilon=0.3), cifar10=dict(epsilon=8 / 255), budget=("epsilon",), threat="linf",
        source="Goodfellow et al. 2015; Appendix E", notes="Table 6 (MNIST): fgsm[epsilon=0.1]")
def _fgsm(epsilon: float) -> Attack:
    return NeighborhoodAttack(_pixel(epsilon), PGD(steps=1, step_size=epsilon, start="none"), "linf")


@attack("pgd", mnist=MNIST_PGD, cifar10=CIFAR_PGD, budget=("epsilon", "step_size"), threat="linf",
        source="Madry et al. 2018; Appendix B, C, E", notes=_PGD_NOTE)
def _pgd(epsilon: float, steps: int, step_size: float, start: str) -> Attack:
    _steps(steps, step_size)
    return NeighborhoodAttack(_pixel(epsilon), PGD(steps, step_size, start), "linf")


@attack("mifgsm", mnist={**MNIST_PGD, "start": "none", "decay": 1.0},
        cifar10={**CIFAR_PGD, "start": "none", "decay": 1.0}, budget=("epsilon", "step_size"), threat="linf",
        source="Dong et al. 2018; Appendix E (MI-FGSM-40 step 0.01 on MNIST, 10 steps of 0.007 on CIFAR-10)")
def _mifgsm(epsilon: float, steps: int, step_size: float, start: str, decay: float) -> Attack:
    _steps(steps, step_size)
    return NeighborhoodAttack(_pixel(epsilon), MIFGSM(steps, step_size, start, decay=decay), "linf")


def _spatial_attack(maximizer_of: Callable[[Spatial], Callable]) -> Callable[..., Attack]:
    def build(rotation: float, translation: float, **search) -> Attack:
        sizes = {k: search.pop(k) for k in ("rotations", "translations") if k in search}
        nb = _spatial(rotation, translation, **sizes)
        return NeighborhoodAttack(nb, maximizer_of(**search), "spatial")

    return build


_GRID = dict(rotations=31, translations=5)  # Appendix B: 31 rotations × 5 × 5 translations = 775
_RAND_SRC = "Engstrom et al. 2019 RandAdv; Appendix B (worst of k uniform draws; k = 10 as the official code)"
_GRID_SRC = "Engstrom et al. 2019 GridAdv; Appendix B (31 × 5 × 5 grid)"
for _suffix, _override in (("", {}), (".t", {"rotation": 0.0}), (".r", {"translation": 0.0})):
    _space = {**SPATIAL, **_override}
    attack(f"randadv{_suffix}", mnist={**_space, "k": 10}, cifar10={**_space, "k": 10},
           budget=("rotation", "translation"), threat="spatial", source=_RAND_SRC,
           notes="Table 3" if _suffix else "Tables 1, 3, 5")(_spatial_attack(lambda k: RandomSearch(k)))
    attack(f"gridadv{_suffix}", mnist={**_space, **_GRID}, cifar10={**_space, **_GRID},
           budget=("rotation", "translation"), threat="spatial", source=_GRID_SRC,
           notes="Table 3" if _suffix else "Tables 1, 3, 5")(_spatial_attack(lambda: GridSearch()))


@attack("pgd+", mnist={**MNIST_PGD, **SPATIAL, **_GRID}, cifar10={**CIFAR_PGD, **SPATIAL, **_GRID},
        budget=("epsilon", "step_size", "rotation", "translation"), threat="compound",
        source="Appendix F: T1(x) = A(θ)·(x + argmax_r L(f(x + r), y)) + B, GridAdv on top of PGD")
def _pgd_plus(epsilon, steps, step_size, start, rotation, translation, rotations, translations) -> Attack:
    _steps(steps, step_size)
    nb = Compound((_pixel(epsilon), _spatial(rotation, translation, rotations, translations)))
    return NeighborhoodAttack(nb, Sequential((PGD(steps, step_size, start), GridSearch())), "compound")


@attack("gridadv+", mnist={**MNIST_PGD, **SPATIAL, **_GRID}, cifar10={**CIFAR_PGD, **SPATIAL, **_GRID},
        budget=("epsilon", "step_size", "rotation", "translation"), threat="compound",
        source="Appendix F: T2(x; r) = A*x + B* + r, PGD on top of the worst grid transform")
def _gridadv_plus(epsilon, steps, step_size, start, rotation, translation, rotations, translations) -> Attack:
    _steps(steps, step_size)
    nb = Compound((_spatial(rotation, translation, rotations, translations), _pixel(epsilon)))
    return NeighborhoodAttack(nb, Sequential((GridSearch(), PGD(steps, step_size, start))), "compound")


# ---------------------------------------------------------------- JSMA: batched, checked against torchattacks


class JSMA(Attack):
    """Jacobian saliency map attack (Papernot et al. 2016, Eqs. (8)-(10)), pairs of features.

    The same algorithm as torchattacks.JSMA (target (y + 1) mod K, θ added to the two features of the
    highest saliency, at most ceil(γ·n / 2) iterations, stop at the target), but batched over images and
    with 2 backward passes per step (target logit and sum of logits) instead of K per image.
    """

    threat = "l0"

    def __init__(self, theta: float, gamma: float):
        require(theta != 0, "JSMA theta must be non-zero")
        require(0 <= gamma <= 1, f"JSMA gamma must be in [0, 1], got {gamma:g}")
        self.theta, self.gamma = theta, gamma

    def _saliency(self, grad_t, grad_o, domain) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair (p, q) maximizing α·|β| over pairs with α > 0 > β (Eqs. (8)-(10); signs flip for θ < 0).

        Computed as relu(±α)·relu(∓β), which equals α·|β| where the conditions hold and 0 elsewhere, in
        two (b, n, n) buffers; features outside the search domain are pushed out of the conditions.
        """
        n = grad_t.shape[1]
        sign = 1.0 if self.theta > 0 else -1.0
        coef = 2.0 * (~domain).float() * sign
        t = grad_t - coef * grad_t.abs().amax(1, keepdim=True)
        o = grad_o + coef * grad_o.abs().amax(1, keepdim=True)
        score = (t[:, None, :] + t[:, :, None]).mul_(sign).clamp_(min=0)  # α for each pair (p, q)
        score.mul_((o[:, None, :] + o[:, :, None]).mul_(-sign).clamp_(min=0))  # |β|
        score.diagonal(dim1=1, dim2=2).zero_()  # a feature does not pair with itself
        best = score.view(len(t), -1).argmax(1)
        return torch.div(best, n, rounding_mode="floor"), best % n

    def __call__(self, model, x, target, gen=None):
        num_classes = None
        with eval_mode(model):
            flat = x.flatten(1).clone()
            n = flat.shape[1]
            domain = flat < 0.99 if self.theta > 0 else flat > 0.01
            with torch.no_grad():
                logits = model(x)
            num_classes = logits.shape[1]
            goal = (target + 1) % num_classes
            active = (logits.argmax(1) != goal) & domain.any(1)
            chunk = max(1, 2**24 // (n * n))  # saliency tensors are (b, n, n)
            for _ in range(math.ceil(n * self.gamma / 2.0)):
                rows = active.nonzero().squeeze(1)
                if not len(rows):
                    break
                xa = flat[rows].clone().requires_grad_(True)
                out = model(xa.view(-1, *x.shape[1:]))
                g_t, = torch.autograd.grad(out.gather(1, goal[rows, None]).sum(), xa, retain_graph=True)
                g_all, = torch.autograd.grad(out.sum(), xa)
                for lo in range(0, len(rows), chunk):
                    r = rows[lo:lo + chunk]
                    p, q = self._saliency(g_t[lo:lo + chunk], (g_all - g_t)[lo:lo + chunk], domain[r])
                    flat[r, p] += self.theta
                    flat[r, q] += self.theta
                    flat[r] = flat[r].clamp(0, 1)
                    domain[r, p] = False
                    domain[r, q] = False
                with torch.no_grad():
                    pred = model(flat[rows].view(-1, *x.shape[1:])).argmax(1)
                active[rows] = (pred != goal[rows]) & domain[rows].any(1)
        x_adv = flat.view_as(x).detach()
        l0 = _norm(x_adv - x, "l0")
        return AttackOutput(x_adv, _in_box(x_adv) & (l0 <= 2 * math.ceil(n * self.gamma / 2.0)), l0)


@attack("jsma", mnist=dict(theta=1.0, gamma=0.1), cifar10=dict(theta=1.0, gamma=0.1), budget=("gamma",),
        threat="l0", library="native (checked against torchattacks 3.5.1 JSMA)",
        source="Papernot et al. 2016; settings of torchattacks/advertorch (θ = 1, γ = 0.1: at most 10% of inputs)",
        notes="targeted at (C(x) + 1) mod K like torchattacks; distance = changed input values")
def _jsma(theta: float, gamma: float) -> Attack:
    return JSMA(theta, gamma)


# ---------------------------------------------------------------- minimum-norm attacks through foolbox


class FoolboxMinimumNorm(Attack):
    """A foolbox minimization attack run unbounded (epsilons=None); `epsilon` only thresholds distances."""

    minimum_norm = True

    def __init__(self, make: Callable[[], Any], norm: str, epsilon: float, init: Callable[[], Any] | None = None):
        require(epsilon >= 0, f"epsilon must be >= 0, got {epsilon:g}")
        self.make, self.threat, self.epsilon, self.init = make, norm, epsilon, init

    def __call__(self, model, x, target, gen=None):
        import foolbox as fb

        if gen is not None:  # point-wise's salt-and-pepper start draws from the global generator
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        with eval_mode(model):
            fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
            if self.init is None:
                _, x_adv, success = self.make()(fmodel, x, fb.criteria.Misclassification(target), epsilons=None)
            else:
                x_adv, success = self._from_starts(fmodel, model, x, target)
        x_adv = x_adv.detach()
        distance = torch.where(success, _norm(x_adv - x, self.threat), torch.full_like(success, math.inf,
                                                                                      dtype=torch.float))
        x_adv = torch.where(success.view(-1, *[1] * (x.dim() - 1)), x_adv, x)
        return AttackOutput(x_adv, _in_box(x_adv), distance)

    def _from_starts(self, fmodel, model, x, target):
        """Decision-based attacks (point-wise) walk from an adversarial start: find starts first and attack
        only the examples that have one (foolbox asserts every start is adversarial; on a robust model the
        salt-and-pepper search fails for some); an example with no start stays unbroken."""
        import foolbox as fb

        starts = self.init().run(fmodel, x, fb.criteria.Misclassification(target))
        with torch.no_grad():
            found = model(starts).argmax(1) != target
        x_adv, success = x.clone(), torch.zeros_like(found)
        if found.any():
            idx = found.nonzero().squeeze(1)
            _, adv, ok = self.make()(fmodel, x[idx], fb.criteria.Misclassification(target[idx]), epsilons=None,
                                     starting_points=starts[idx])
            x_adv[idx], success[idx] = adv, ok
        return x_adv, success

    def at_budget(self, out, x):
        far = (out.distance > self.epsilon + 1e-6).view(-1, *[1] * (x.dim() - 1))
        return AttackOutput(torch.where(far, x, out.x_adv), out.inside, out.distance)

    @property
    def run_key(self) -> str:
        return f"{self.name}{sorted(self.params.items())}"  # the run does not depend on the budget


@attack("cw", mnist=dict(epsilon=2.0, steps=100, binary_search_steps=9, stepsize=0.05, confidence=0.0,
                         initial_const=1.0),
        cifar10=dict(epsilon=0.5, steps=100, binary_search_steps=9, stepsize=0.01, confidence=0.0,
                     initial_const=0.01),
        budget=("epsilon",), threat="l2", library="foolbox 3.3.4 L2CarliniWagnerAttack", minimum_norm=True,
        source="Carlini & Wagner 2017 (ℓ2); the paper gives no settings",
        notes="epsilon = ℓ2 budget at which an example counts as broken (RobustBench's 0.5 on CIFAR-10). Converged"
              " on 50 Fashion-MNIST test images (standard SmallCNN, ε = 2): steps 100 → 200 → 0.0 pt change,"
              " binary search 5 → 9 → 2 pt (so 9); CIFAR-10 settings not measured")
def _cw(epsilon, steps, binary_search_steps, stepsize, confidence, initial_const) -> Attack:
    import foolbox as fb

    require(steps >= 1 and binary_search_steps >= 1, "cw steps and binary_search_steps must be >= 1")
    return FoolboxMinimumNorm(lambda: fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps, steps, stepsize, confidence, initial_const, abort_early=True), "l2", epsilon)


@attack("ddn", mnist=dict(epsilon=2.0, steps=100, init_epsilon=1.0, gamma=0.05),
        cifar10=dict(epsilon=0.5, steps=100, init_epsilon=1.0, gamma=0.05),
        budget=("epsilon",), threat="l2", library="foolbox 3.3.4 DDNAttack", minimum_norm=True,
        source="Rony et al. 2019 (decoupled direction and norm); the paper gives no settings",
        notes="epsilon = ℓ2 budget at which an example counts as broken. Converged on 50 Fashion-MNIST test images"
              " (standard SmallCNN, ε = 2): steps 50 / 100 / 300 give the same accuracy (0.0 pt)")
def _ddn(epsilon, steps, init_epsilon, gamma) -> Attack:
    import foolbox as fb

    require(steps >= 1, "ddn steps must be >= 1")
    return FoolboxMinimumNorm(lambda: fb.attacks.DDNAttack(init_epsilon=init_epsilon, steps=steps, gamma=gamma),
                              "l2", epsilon)


@attack("pointwise", mnist=dict(epsilon=784.0, init_steps=1000, l2_binary_search=False),
        cifar10=dict(epsilon=3072.0, init_steps=1000, l2_binary_search=False),
        budget=("epsilon",), threat="l0", library="foolbox 3.3.4 PointwiseAttack", minimum_norm=True,
        source="Schott et al. 2019 point-wise attack (decision-based, from a salt-and-pepper start)",
        notes="epsilon = ℓ0 budget in changed input values; the whole image (default) = unbounded, as the paper's"
              " near-zero Table 4 numbers imply. Slow: foolbox queries one input value at a time (CPU: ~1 image/s"
              " on the SmallCNN); convergence of init_steps not measured")
def _pointwise(epsilon, init_steps, l2_binary_search) -> Attack:
    import foolbox as fb

    require(init_steps >= 1, "pointwise init_steps must be >= 1")
    # the ℓ2 refinement does not change the ℓ0 distance that is counted, and costs ~10 queries per input value
    return FoolboxMinimumNorm(lambda: fb.attacks.PointwiseAttack(l2_binary_search=l2_binary_search), "l0", epsilon,
                              init=lambda: fb.attacks.SaltAndPepperNoiseAttack(steps=init_steps))


# ---------------------------------------------------------------- AutoAttack (standard version) via torchattacks


class AutoAttack(Attack):
    """APGD-CE → APGD-T → FAB-T → Square (Croce & Hein 2020, standard version), each run only on the
    examples the previous ones left unbroken, as AutoAttack's cascade does; ℓ∞ budget `epsilon`."""

    threat = "linf"

    def __init__(self, epsilon: float, steps: int, n_queries: int, n_target_classes: int):
        _pixel(epsilon)
        require(steps >= 1 and n_queries >= 1, "autoattack steps and n_queries must be >= 1")
        self.epsilon, self.steps, self.n_queries, self.n_target = epsilon, steps, n_queries, n_target_classes

    def components(self, model, num_classes: int, seed: int) -> list:
        import torchattacks as ta

        eps, k = self.epsilon, num_classes
        return [
            ta.APGD(model, norm="Linf", eps=eps, steps=self.steps, n_restarts=1, seed=seed, loss="ce"),
            ta.APGDT(model, norm="Linf", eps=eps, steps=self.steps, n_restarts=1, seed=seed, n_classes=k),
            ta.FAB(model, norm="Linf", eps=eps, steps=self.steps, n_restarts=1, seed=seed, multi_targeted=True,
                   n_classes=k),
            ta.Square(model, norm="Linf", eps=eps, n_queries=self.n_queries, n_restarts=1, seed=seed),
        ]

    def __call__(self, model, x, target, gen=None):
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen)) if gen is not None else 0
        x_adv = x.clone()
        with eval_mode(model):
            with torch.no_grad():
                logits = model(x)
            robust = logits.argmax(1) == target
            for component in self.components(model, logits.shape[1], seed) if self.epsilon > 0 else []:
                rows = robust.nonzero().squeeze(1)
                if not len(rows):
                    break
                candidate = component(x[rows], target[rows]).detach()
                # keep a candidate only if it breaks the example and respects the budget (FAB may overshoot)
                candidate = x[rows] + (candidate - x[rows]).clamp(-self.epsilon, self.epsilon)
                with torch.no_grad():
                    broken = model(candidate).argmax(1) != target[rows]
                x_adv[rows[broken]] = candidate[broken]
                robust[rows[broken]] = False
            model.eval()  # torchattacks restores its own notion of the mode
        inside = (_norm(x_adv - x, "linf") <= self.epsilon + 1e-5) & _in_box(x_adv)
        return AttackOutput(x_adv, inside, _nan(x))


@attack("autoattack", mnist=dict(epsilon=0.3, steps=100, n_queries=5000, n_target_classes=9),
        cifar10=dict(epsilon=8 / 255, steps=100, n_queries=5000, n_target_classes=9),
        budget=("epsilon",), threat="linf", library="torchattacks 3.5.1 APGD, APGDT, FAB, Square",
        source="Croce & Hein 2020, standard version (APGD-CE, APGD-T, FAB-T, Square 5000 queries)",
        notes="today's reference ℓ∞ evaluation; not in the paper")
def _autoattack(epsilon, steps, n_queries, n_target_classes) -> Attack:
    return AutoAttack(epsilon, steps, n_queries, n_target_classes)


# ---------------------------------------------------------------- `name[k=v,...]` specs


SPEC = re.compile(r"^\s*([\w.+-]+)\s*(?:\[(.*)\])?\s*$")


def split_specs(text: str) -> list[str]:
    """'pgd[steps=100,start=none],gridadv' -> ['pgd[steps=100,start=none]', 'gridadv'] ('all' expands)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    specs = [s.strip() for s in out if s.strip()]
    require(bool(specs), "--attacks is empty")
    return [name for s in specs for name in (ATTACKS.names() if s == "all" else [s])]


def _convert(text: str, default: Any, key: str, name: str) -> Any:
    try:
        if isinstance(default, bool):
            require(text.lower() in ("true", "false", "1", "0"), f"{name}[{key}=...] takes true or false")
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            value = float(text)
            require(math.isfinite(value), f"{name}[{key}={text}] must be a finite number")
            return value
    except ValueError:
        raise SrtbenchError(f"{name}[{key}={text}]: expected a {type(default).__name__}") from None
    return text


# the neighborhood each threat group probes (the worst case is taken per group, robustness is trained per neighborhood)
THREAT_NEIGHBORHOOD = {"linf": "pixel", "l2": "pixel", "l0": "pixel", "spatial": "spatial", "compound": "compound"}


def neighborhood(name: str) -> str:
    """The neighborhood attack `name` probes: pixel, spatial or compound."""
    return THREAT_NEIGHBORHOOD[ATTACKS.meta(name)["info"].threat]


def parse(spec: str, dataset: str) -> tuple[str, dict[str, Any]]:
    """(name, every setting) of `name[k=v,...]`: the dataset's defaults with the overrides applied."""
    m = SPEC.match(spec)
    require(m is not None, f"cannot parse attack {spec!r}; write name or name[key=value,...]")
    name, body = m.group(1), m.group(2)
    info: AttackInfo = ATTACKS.meta(name)["info"]
    params = dict(info.defaults[family(dataset)])
    for item in filter(None, (s.strip() for s in (body or "").split(","))):
        require("=" in item, f"{name}[{item}]: write key=value")
        k, v = (s.strip() for s in item.split("=", 1))
        require(k in params, f"{name} has no setting {k!r}; settings: {', '.join(params)}")
        params[k] = _convert(v, params[k], k, name)
    return name, params


def build(spec: str, dataset: str, fraction: float = 1.0) -> Attack:
    """The attack `spec` on `dataset` with every budget multiplied by `fraction`."""
    require(math.isfinite(fraction) and 0 <= fraction <= 1, f"fraction must be in [0, 1], got {fraction:g}")
    name, params = parse(spec, dataset)
    info: AttackInfo = ATTACKS.meta(name)["info"]
    for k in info.budget:
        require(params[k] >= 0, f"{name}[{k}={params[k]:g}] must be >= 0")
    scaled = {k: (v * fraction if k in info.budget else v) for k, v in params.items()}
    try:
        atk = ATTACKS.get(name)(**scaled)
    except (TypeError, ValueError) as err:
        raise SrtbenchError(f"{name}: {err}") from None
    atk.name, atk.params = name, {**params, "library": info.library}
    atk.budget = {k: float(scaled[k]) for k in info.budget if k != "step_size"}
    atk.threat = info.threat
    return atk
