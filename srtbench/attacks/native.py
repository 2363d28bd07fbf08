"""Neighborhood attacks: a neighborhood N(x) + a shared maximizer + a loss (FGSM, PGD, MI-FGSM, the ℓ∞ C&W,
RandAdv and GridAdv with their .t/.r variants, and the compounds PGD+ and GridAdv+ of Appendix F)."""

from __future__ import annotations

from collections.abc import Callable

from srtbench.attacks.base import Attack, AttackOutput, attack, in_box, no_distance
from srtbench.config import require
from srtbench.data import DatasetSpec
from srtbench.maximizers import (
    MIFGSM,
    PGD,
    GridSearch,
    RandomSearch,
    Sequential,
    cross_entropy,
    cw_margin,
    misclassified,
)
from srtbench.neighborhoods import Compound, Neighborhood, PixelBall, Spatial


class NeighborhoodAttack(Attack):
    """max_{x' ∈ N(x)} CE(f(x'), target) by a shared maximizer, stopping per example once broken."""

    def __init__(self, neighborhood: Neighborhood, maximizer: Callable, loss: Callable = cross_entropy):
        self.neighborhood, self.maximizer, self.loss = neighborhood, maximizer, loss

    def __call__(self, model, x, target, gen=None, done=misclassified):
        theta = self.maximizer(model, self.neighborhood, x, target, self.loss, done, gen)
        x_adv = self.neighborhood.apply(x, theta).detach()
        inside = self.neighborhood.contains(theta) & self.neighborhood.contains_image(x, x_adv) & in_box(x_adv)
        return AttackOutput(x_adv, inside, no_distance(x))

    def expectation(self, model, x, target, gen, samples):
        """EOT: the maximizer on the expected model, every step taken: crossing the expected decision boundary by a
        hair (where early stopping would halt) leaves the vote of fresh passes to chance."""
        from srtbench.attacks.eot import ExpectedModel

        return self(ExpectedModel(model, samples), x, target, gen, done=None)


def pixel_ball(epsilon: float) -> PixelBall:
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


SPATIAL = dict(rotation=30.0, translation=3.0)  # Section 4.1 / Appendix B, both datasets


def pgd_defaults(spec: DatasetSpec) -> dict:
    """PGD's settings on a dataset: its declared ℓ∞ budget, steps and step size, from a uniform random start."""
    b = spec.budgets
    return dict(epsilon=b.linf, steps=b.linf_steps, step_size=b.linf_step_size, start="uniform")


def _pgd_family(**change) -> Callable[[DatasetSpec], dict]:
    return lambda spec: {**pgd_defaults(spec), **change}


_PGD_NOTE = ("MNIST Table 6: pgd[epsilon=0.1,step_size=0.005]; CIFAR-10 Tables 1-2: pgd[steps=20,step_size=0.003]."
             " start=uniform as advertorch's rand_init (the official evaluation's); start=none is deterministic")
_QUICK_PGD = "epsilon=0.1,steps=10,step_size=0.02"
_QUICK_COMPOUND = "epsilon=0.05,steps=5,step_size=0.02,rotations=5,translations=3"


@attack("fgsm", defaults=lambda spec: dict(epsilon=spec.budgets.linf), budget=("epsilon",),
        threat="pixel", source="Goodfellow et al. 2015; Appendix C (ε 0.1) and E (MNIST ε 0.3, CIFAR-10 0.031)",
        notes="one step of size ε from x (no random start)", header="FGSM", order=10, white_box=True,
        quick="epsilon=0.1")
def _fgsm(epsilon: float) -> Attack:
    return NeighborhoodAttack(pixel_ball(epsilon), PGD(steps=1, step_size=epsilon, start="none"))


@attack("pgd", defaults=pgd_defaults, budget=("epsilon", "step_size"), threat="pixel",
        source="Madry et al. 2018; Appendix C (Fashion-MNIST's defaults), E (MNIST, CIFAR-10)", notes=_PGD_NOTE,
        header="PGD", order=20, white_box=True, quick=_QUICK_PGD,
        # a transfer attack stronger than white-box PGD is an indicator of masked gradients (Pintor et al. 2022)
        must_beat=("fgsm", "transfer"))
def _pgd(epsilon: float, steps: int, step_size: float, start: str) -> Attack:
    _steps(steps, step_size)
    return NeighborhoodAttack(pixel_ball(epsilon), PGD(steps, step_size, start))


@attack("mifgsm", defaults=_pgd_family(start="none", decay=1.0), budget=("epsilon", "step_size"), threat="pixel",
        source="Dong et al. 2018; Appendix E (MI-FGSM-40 step 0.01 on MNIST, 10 steps of 0.007 on CIFAR-10); decay"
               " μ = 1 and no random start are Dong et al.'s (the paper gives neither)",
        header="MI-FGSM", order=30, white_box=True, quick=_QUICK_PGD)
def _mifgsm(epsilon: float, steps: int, step_size: float, start: str, decay: float) -> Attack:
    _steps(steps, step_size)
    return NeighborhoodAttack(pixel_ball(epsilon), MIFGSM(steps, step_size, start, decay=decay))


@attack("cw", defaults=pgd_defaults, budget=("epsilon", "step_size"), threat="pixel",
        source="Carlini & Wagner 2017 margin loss, as the ℓ∞ C&W column of robustness tables since TRADES: PGD at the"
               " PGD budget maximizing max_{i≠C(x)} z_i − z_C(x). The paper names C&W without settings; its C&W"
               " column tracks its PGD column (MNIST AT 94.67 vs 94.69), so the PGD settings are used",
        notes="the ℓ2 minimum-norm C&W is cw-l2", header="C&W", order=50, white_box=True, quick=_QUICK_PGD)
def _cw(epsilon: float, steps: int, step_size: float, start: str) -> Attack:
    _steps(steps, step_size)
    return NeighborhoodAttack(pixel_ball(epsilon), PGD(steps, step_size, start), loss=cw_margin)


def _spatial_attack(maximizer_of: Callable[[Spatial], Callable]) -> Callable[..., Attack]:
    def build(rotation: float, translation: float, **search) -> Attack:
        sizes = {k: search.pop(k) for k in ("rotations", "translations") if k in search}
        nb = _spatial(rotation, translation, **sizes)
        return NeighborhoodAttack(nb, maximizer_of(**search))

    return build


_GRID = dict(rotations=31, translations=5)  # Appendix B: 31 rotations × 5 × 5 translations = 775
_RAND_SRC = ("Engstrom et al. 2019 RandAdv; Appendix B: \"a uniformly random perturbation from the attack space used"
             " in GridAdv\". Chosen: the worst of k = 10 uniform draws, the official code's random_tries = 10"
             " (spatial_exps/configs); randadv[k=1] is one draw")
_GRID_SRC = "Engstrom et al. 2019 GridAdv; Appendix B (31 rotations × 5 × 5 translations)"
# the full space, translations only (.t) and rotations only (.r) of Table 3, each RandAdv then GridAdv
for _place, (_suffix, _override, _quick) in enumerate((("", {}, "rotations=11,translations=3"),
                                                        (".t", {"rotation": 0.0}, ""),
                                                        (".r", {"translation": 0.0}, "rotations=11"))):
    _space, _tag = {**SPATIAL, **_override}, _suffix.upper()
    attack(f"randadv{_suffix}", defaults={**_space, "k": 10}, budget=("rotation", "translation"),
           threat="spatial", source=_RAND_SRC, notes="Table 3" if _suffix else "Tables 1, 3, 5",
           header=f"RandAdv{_tag}", order=90 + 20 * _place)(_spatial_attack(lambda k: RandomSearch(k)))
    attack(f"gridadv{_suffix}", defaults={**_space, **_GRID}, budget=("rotation", "translation"),
           threat="spatial", source=_GRID_SRC, notes="Table 3" if _suffix else "Tables 1, 3, 5",
           header=f"GridAdv{_tag}", order=100 + 20 * _place, must_beat=(f"randadv{_suffix}",),
           quick=_quick)(_spatial_attack(lambda: GridSearch()))


@attack("pgd+", defaults=_pgd_family(**SPATIAL, **_GRID), budget=("epsilon", "step_size", "rotation", "translation"),
        threat="compound",
        source="Appendix F: T1(x) = A(θ)·(x + argmax_r L(f(x + r), y)) + B, GridAdv on top of PGD",
        header="PGD+", order=160, white_box=True, covers=("pgd",), quick=_QUICK_COMPOUND)
def _pgd_plus(epsilon, steps, step_size, start, rotation, translation, rotations, translations) -> Attack:
    _steps(steps, step_size)
    nb = Compound((pixel_ball(epsilon), _spatial(rotation, translation, rotations, translations)))
    return NeighborhoodAttack(nb, Sequential((PGD(steps, step_size, start), GridSearch())))


@attack("gridadv+", defaults=_pgd_family(**SPATIAL, **_GRID),
        budget=("epsilon", "step_size", "rotation", "translation"), threat="compound",
        source="Appendix F: T2(x; r) = A*x + B* + r, PGD on top of the worst grid transform",
        header="GridAdv+", order=150, white_box=True, covers=("gridadv",), quick=_QUICK_COMPOUND)
def _gridadv_plus(epsilon, steps, step_size, start, rotation, translation, rotations, translations) -> Attack:
    _steps(steps, step_size)
    nb = Compound((_spatial(rotation, translation, rotations, translations), pixel_ball(epsilon)))
    return NeighborhoodAttack(nb, Sequential((GridSearch(), PGD(steps, step_size, start))))
