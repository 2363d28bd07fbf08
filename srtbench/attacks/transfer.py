"""A transfer attack: PGD on a surrogate model, the adversarial examples then scored on the attacked one.  It needs
no gradient of the attacked model, so a defense that hides or breaks its own gradients (a detached input, a
non-differentiable transform) cannot stop it; by default the surrogate is the dataset's shipped standard model."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from srtbench.attacks.base import Attack, attack
from srtbench.attacks.native import NeighborhoodAttack, pgd_defaults, pixel_ball
from srtbench.config import require
from srtbench.errors import SrtbenchError
from srtbench.maximizers import PGD

REPOSITORY = Path(__file__).resolve().parents[2]  # where a dataset's shipped models live (models/)


def surrogate_path(surrogate: str) -> Path:
    """A checkpoint path as given, else under the repository (a dataset's `standard_model`)."""
    require(bool(surrogate), "transfer needs surrogate=CKPT: this dataset ships no standard model to default to")
    for path in (Path(surrogate), REPOSITORY / surrogate):
        if path.is_file():
            return path
    raise SrtbenchError(f"transfer: surrogate {surrogate} not found (a checkpoint path, or one under {REPOSITORY})")


class Transfer(Attack):
    """PGD against `surrogate`, every step taken (the surrogate's boundary is not the attacked model's)."""

    def __init__(self, surrogate: str, pgd: NeighborhoodAttack):
        self.path, self.pgd, self.model = surrogate_path(surrogate), pgd, None

    def __call__(self, model, x, target, gen=None):
        if self.model is None:
            from srtbench import checkpoint
            from srtbench.data import DATASETS

            ckpt = checkpoint.load(self.path)
            shape = DATASETS.get(ckpt.meta["dataset"]).shape
            if tuple(x.shape[1:]) != tuple(shape):
                raise SrtbenchError(f"transfer: surrogate {self.path} takes {ckpt.meta['dataset']} images {shape}, "
                                    f"not the attacked model's {tuple(x.shape[1:])}")
            self.model = ckpt.build_model()
        surrogate: nn.Module = self.model.to(x.device)
        return self.pgd(surrogate, x, target, gen, done=None)


@attack("transfer", defaults=lambda spec: {**pgd_defaults(spec), "surrogate": spec.standard_model},
        budget=("epsilon", "step_size"), threat="pixel", header="Transfer", order=180, in_all=False,
        queries_model=False,
        source="Papernot et al. 2017 transfer; Athalye et al. 2018 and Tramèr et al. 2020 use it against defenses "
               "that mask their own gradients. PGD at the PGD budget on the surrogate, every step taken",
        notes="surrogate: a checkpoint (default: the dataset's shipped standard model)", quick="steps=10")
def _transfer(epsilon: float, steps: int, step_size: float, start: str, surrogate: str) -> Attack:
    require(steps >= 1, f"steps must be >= 1, got {steps}")
    return Transfer(surrogate, NeighborhoodAttack(pixel_ball(epsilon), PGD(steps, step_size, start)))
