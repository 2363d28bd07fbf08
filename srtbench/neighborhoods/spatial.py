"""The spatial neighborhood: rotation + translation (Engstrom et al. 2019; the paper's Section 4.2).  θ is (B, 3):
rotation in degrees, x- and y-translation in pixels."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from srtbench.config import field, require
from srtbench.neighborhoods.base import NEIGHBORHOODS, BoxNeighborhood, solve


@dataclass
class SpatialBudget:
    rotation: float = field(30.0, "spatial budget: maximum rotation in degrees")
    translation: float = field(3.0, "spatial budget: maximum translation in pixels")

    def __post_init__(self):
        require(0 <= self.rotation <= 180, f"--rotation must be in [0, 180] degrees, got {self.rotation}")
        require(self.translation >= 0, f"--translation must be >= 0, got {self.translation}")


@NEIGHBORHOODS.register("spatial")
@dataclass(repr=False)
class Spatial(BoxNeighborhood):
    """T(x; θ) = A(θ_rot)·x + B, |θ_rot| ≤ rotation degrees, |B_x|, |B_y| ≤ translation pixels.

    Applied with one `affine_grid` + `grid_sample` call per batch (bilinear, zero fill, as in
    Engstrom et al. 2019 and the paper's official code): rotation about the image centre, then
    translation.  `grid_points` = (rotations, x-translations, y-translations) of the exhaustive grid
    (Appendix B: 31 × 5 × 5 = 775).  A zero budget collapses its axis to the single value 0, which
    gives the rotation-only (.R) and translation-only (.T) variants of Table 3.  A step moves each axis by a
    fraction of its budget, so one step size serves degrees and pixels alike.  Solved by the worst of
    k random transforms in training (Worst-of-k) and by the grid (GridAdv) in the quick attack.
    """

    rotation: float = 30.0
    translation: float = 3.0
    grid_points: tuple[int, int, int] = (31, 5, 5)
    Budget = SpatialBudget
    srt_lambda = 0.2  # Sec. 4.2: λ = 0.2 against rotations and translations
    paper_attacks = {"grid": "gridadv", "rand": "randadv"}  # Engstrom et al.'s, Appendix B
    search_in_training = True

    def __post_init__(self):
        require(self.rotation >= 0 and self.translation >= 0, "spatial budgets must be >= 0")
        self.name = "spatial"

    @classmethod
    def from_budget(cls, budget: SpatialBudget) -> Spatial:
        return cls(budget.rotation, budget.translation)

    @property
    def bounds(self) -> torch.Tensor:
        return torch.tensor([self.rotation, self.translation, self.translation])

    def shape(self, x):
        return (len(x), 3)

    def matrices(self, theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, 2, 3) sampling matrices in normalized coordinates (align_corners=False).

        Output location p samples the input at R(-φ)(p - t): the image turns by +φ (counter-clockwise
        as displayed, so +90° equals torch.rot90) and shifts by t pixels (x right, y down).
        """
        phi = torch.deg2rad(theta[:, 0])
        cos, sin = torch.cos(phi), torch.sin(phi)
        # pixel → normalized: u = 2·px/W; the aspect ratio enters the rotation's off-diagonal terms
        a, r = width / height, height / width
        tx = 2.0 * theta[:, 1] / width
        ty = 2.0 * theta[:, 2] / height
        m00, m01 = cos, -sin * r
        m10, m11 = sin * a, cos
        bx = -(m00 * tx + m01 * ty)
        by = -(m10 * tx + m11 * ty)
        return torch.stack([torch.stack([m00, m01, bx], 1), torch.stack([m10, m11, by], 1)], 1)

    def apply(self, x, theta):
        mats = self.matrices(theta.to(x.dtype), x.shape[-2], x.shape[-1])
        grid = F.affine_grid(mats, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def scaled(self, fraction):
        return replace(self, rotation=self.rotation * fraction, translation=self.translation * fraction)

    def budget(self):
        return {"rotation": float(self.rotation), "translation": float(self.translation)}

    def grid(self) -> torch.Tensor:
        """Every transform of the exhaustive grid, (G, 3); axes with zero budget hold only 0."""
        axes = []
        for bound, n in zip(self.bounds.tolist(), self.grid_points):
            axes.append(torch.linspace(-bound, bound, n) if bound > 0 and n > 1 else torch.zeros(1))
        mesh = torch.meshgrid(*axes, indexing="ij")
        return torch.stack([m.reshape(-1) for m in mesh], 1)

    def train_solver(self, settings):
        return solve("random", k=settings.k)

    def attack_solver(self, steps):
        return solve("grid")

    def surface(self, model, x, y, steps, seed):
        """x rotated by u degrees and shifted by v pixels horizontally."""
        u = torch.linspace(-self.rotation, self.rotation, steps)
        v = torch.linspace(-self.translation, self.translation, steps)
        uu, vv = torch.meshgrid(u, v, indexing="ij")
        theta = torch.stack([uu.reshape(-1), vv.reshape(-1), torch.zeros(uu.numel())], 1)
        images = self.apply(x.expand(len(theta), *x.shape[1:]), theta)
        return (u, v), images, ("rotation (degrees)", "translation (pixels)")
