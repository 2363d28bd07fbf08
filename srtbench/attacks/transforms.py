"""The transformations the paper's conclusion names as future work, as attacks: PGD on a Gaussian blur's σ
(`blur-pgd`), the exhaustive grid over σ (`blur-grid`) and PGD on per-channel contrast and brightness (`color-pgd`).
Their budgets default to the neighborhoods' own (`BlurBudget`, `ColorBudget`) for every dataset family."""

from __future__ import annotations

from srtbench.attacks.base import Attack, attack
from srtbench.attacks.native import NeighborhoodAttack
from srtbench.config import require
from srtbench.maximizers import PGD, GridSearch
from srtbench.neighborhoods import BlurBudget, ColorBudget, ColorShift, GaussianBlur

_BLUR = dict(sigma=BlurBudget().sigma)
_COLOR = dict(brightness=ColorBudget().brightness, contrast=ColorBudget().contrast)
# steps are fractions of each budget: 2.5/K of it (Madry et al.'s 2.5·ε/K rule) for K = 20, from a uniform start
# (a Gaussian kernel has no gradient in σ at σ = 0)
_PGD = dict(steps=20, step_size=0.125, start="uniform")
_FUTURE = "the paper's conclusion (Sec. 5): 'more types of transformations, such as blurring and color shifting'"


def _pgd(steps: int, step_size: float, start: str) -> PGD:
    require(steps >= 1, f"steps must be >= 1, got {steps}")
    require(step_size >= 0, f"step_size must be >= 0 (a fraction of the budget), got {step_size:g}")
    return PGD(steps, step_size, start)


def _blur(sigma: float, sigmas: int = 11) -> GaussianBlur:
    BlurBudget(sigma)  # one-line error outside [0, 10] pixels
    require(sigmas >= 1, f"sigmas must be >= 1, got {sigmas}")
    return GaussianBlur(sigma, grid_points=sigmas)


@attack("blur-pgd", defaults={**_BLUR, **_PGD}, budget=("sigma",), threat="blur",
        source=f"Gaussian blur of σ ≤ sigma pixels per example, PGD on σ; {_FUTURE}",
        notes="step_size is a fraction of sigma", header="Blur-PGD", order=162, white_box=True, quick="steps=5")
def _blur_pgd(sigma: float, steps: int, step_size: float, start: str) -> Attack:
    return NeighborhoodAttack(_blur(sigma), _pgd(steps, step_size, start))


@attack("blur-grid", defaults={**_BLUR, "sigmas": 11}, budget=("sigma",), threat="blur",
        source=f"Gaussian blur, the worst of `sigmas` values of σ evenly spaced in [0, sigma]; {_FUTURE}",
        header="Blur-Grid", order=164, quick="sigmas=5")
def _blur_grid(sigma: float, sigmas: int) -> Attack:
    return NeighborhoodAttack(_blur(sigma, sigmas), GridSearch())


@attack("color-pgd", defaults={**_COLOR, **_PGD}, budget=("brightness", "contrast"), threat="color",
        source=f"per-channel x' = clip(c·x + b), |log c| ≤ contrast, |b| ≤ brightness, PGD on (log c, b); {_FUTURE}",
        notes="step_size is a fraction of each budget", header="Color-PGD", order=166, white_box=True,
        quick="steps=5")
def _color_pgd(brightness: float, contrast: float, steps: int, step_size: float, start: str) -> Attack:
    ColorBudget(brightness, contrast)  # one-line errors outside the budget's ranges
    return NeighborhoodAttack(ColorShift(brightness, contrast), _pgd(steps, step_size, start))
