"""Compound neighborhoods: a chain of neighborhoods applied in order (Appendix F), and the registered compound of
PGD+/AT+/SRT+ (`compound`: pixel-wise, then spatial).  Any chain of registered threats is named by its parts joined
with `+` (`pixel+blur`); θ is the tuple of the parts' parameters."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srtbench.errors import SrtbenchError
from srtbench.neighborhoods.base import NEIGHBORHOODS, Neighborhood, solve


@dataclass(repr=False)
class Compound(Neighborhood):
    """T(x; θ1, θ2, …) = T_n(… T_1(x; θ1) …; θn): parts applied in order (Appendix F).

    `Compound((pixel, spatial))` is the neighborhood of PGD+, AT+ and SRT+ (spatial after
    pixel-wise); `Compound((spatial, pixel))` is the one of GridAdv+ (pixel-wise after spatial).
    Solved part by part, each part by its own maximizer, in training and in the quick attack.
    """

    parts: tuple[Neighborhood, ...]

    def __post_init__(self):
        self.name = "compound"

    @property
    def search_in_training(self) -> bool:  # type: ignore[override]
        return any(p.search_in_training for p in self.parts)

    def identity(self, x):
        return tuple(p.identity(x) for p in self.parts)

    def sample(self, x, gen=None):
        thetas, cur = [], x
        for p in self.parts:
            thetas.append(p.sample(cur, gen))
            cur = p.apply(cur, thetas[-1])
        return tuple(thetas)

    def project(self, theta, x):
        out, cur = [], x
        for p, t in zip(self.parts, theta):
            out.append(p.project(t, cur))
            cur = p.apply(cur, out[-1])
        return tuple(out)

    def step(self, theta, grad, size):
        return tuple(p.step(t, g, size) for p, t, g in zip(self.parts, theta, grad))

    def apply(self, x, theta):
        for p, t in zip(self.parts, theta):
            x = p.apply(x, t)
        return x

    def contains(self, theta, tol=1e-5):
        inside = [p.contains(t, tol) for p, t in zip(self.parts, theta)]
        return torch.stack(inside).all(0)

    def scaled(self, fraction):
        return Compound(tuple(p.scaled(fraction) for p in self.parts))

    def budget(self):
        out = {}
        for p in self.parts:
            out.update(p.budget())
        return out

    def train_solver(self, settings):
        return solve("sequential", stages=tuple(p.train_solver(settings) for p in self.parts))

    def attack_solver(self, steps):
        return solve("sequential", stages=tuple(p.attack_solver(steps) for p in self.parts))

    def surface(self, model, x, y, steps, seed):
        names = "+".join(p.name for p in self.parts)
        raise SrtbenchError(f"a compound threat ({names}) has no decision surface; draw one of its parts")

    def chain(self):
        return self.parts


# PGD+, AT+ and SRT+ (Appendix F): pixel-wise, then spatial; `pixel+spatial` names the same threat
NEIGHBORHOODS.register("compound", parts=("pixel", "spatial"), paper_attacks={"pgd": "pgd+", "grid": "gridadv+"})(
    Compound)
