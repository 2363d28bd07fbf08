"""What a dataset is (its spec, with its attack budgets and display name, in the DATASETS registry) and its images in
memory: labeled (`ImageSet`) or not (`UnlabeledSet`, a type with no labels at all, so training code cannot read them);
`load` reads a registered dataset."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import torch

from srtbench.errors import SrtbenchError
from srtbench.registry import Registry


@dataclass(frozen=True)
class AttackBudgets:
    """The budgets the attack battery uses on a dataset where the attacked checkpoint names none (a standard model,
    a foreign model): every attack's registered defaults are computed from these, so a new dataset declares its
    budgets here and touches no attack.  `settings` holds settings of named attacks that differ on this dataset
    (e.g. C&W-ℓ2's optimizer scale on CIFAR-10)."""

    linf: float  # ε of the ℓ∞ attacks (FGSM, PGD, MI-FGSM, C&W, AutoAttack, the compounds' pixel part)
    linf_steps: int  # PGD / MI-FGSM / C&W iterations
    linf_step_size: float  # their step size at ε = linf (it follows ε in proportion when a checkpoint sets ε)
    l2: float  # ℓ2 threshold at which a minimum-norm example (C&W-ℓ2, DDN) counts as broken
    source: str  # where the values come from
    settings: dict[str, dict[str, Any]] = dc_field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    shape: tuple[int, int, int]
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool  # Appendix B: pad-4 random crop + horizontal flip, CIFAR-10 only
    read: Callable[[Path | None, bool, bool], tuple[torch.Tensor, torch.Tensor, str]]
    budgets: AttackBudgets  # the attack battery's defaults on this dataset
    train_size: int  # images in the training split (D_L ∪ D_U at most)
    display: str = ""  # its name in tables and figures (default: its registered name)
    table_order: int = 100  # tables and figures show datasets by this, then by name (the paper's order: 0, 1, ...)
    paper_stand_in: str | None = None  # the paper's dataset whose reference numbers it is compared with, if not itself
    standard_model: str = ""  # a shipped standard-trained checkpoint (under the repository), the transfer surrogate

    @property
    def input_values(self) -> int:
        """How many input values an image has (the largest ℓ0 distance)."""
        return math.prod(self.shape)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def title(self) -> str:
        return self.display or self.name


DATASETS: Registry[DatasetSpec] = Registry("dataset")


@dataclass
class ImageSet:
    """Labeled images: uint8 NCHW and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str = ""

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise ValueError("images and labels differ in length")

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return to_float(self.images[idx]), self.labels[idx]

    def subset(self, idx: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[idx], self.labels[idx], self.source)

    def unlabeled(self) -> UnlabeledSet:
        return UnlabeledSet(self.images, self.source)


@dataclass
class UnlabeledSet:
    """Images without labels: the unlabeled stream D_U carries no label by construction."""

    images: torch.Tensor
    source: str = ""

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        return to_float(self.images[idx])


def to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0)



def load(name: str, train: bool, data_dir: str | os.PathLike | None = None, download: bool = False) -> ImageSet:
    spec = DATASETS.get(name)
    x, y, source = spec.read(Path(data_dir) if data_dir else None, train, download)
    if x.ndim != 4 or tuple(x.shape[1:]) != spec.shape:
        raise SrtbenchError(f"{source}: images of shape {tuple(x.shape[1:])}, expected {spec.shape} for {name}")
    check_labels(y, spec.num_classes, f"{source}: {'training' if train else 'test'} {name} labels")
    return ImageSet(x, y, source)


def check_labels(labels: torch.Tensor, num_classes: int, what: str) -> None:
    """Every label a class index: a label outside the classes would be scored as a silent miss, or crash a loss."""
    bad = ((labels < 0) | (labels >= num_classes)).nonzero()
    if len(bad):
        i = int(bad[0])
        raise SrtbenchError(f"{what}: label {int(labels[i])} (example {i}) outside the {num_classes} classes "
                            f"0-{num_classes - 1} ({len(bad)} of {len(labels)} labels); the file is corrupt or of "
                            "another dataset")



def display_name(name: str) -> str:
    """A dataset's name in tables and figures: its registered display name, else the name itself."""
    return DATASETS.get(name).title if name in DATASETS else name


def display_order(name: str) -> tuple[int, str]:
    """Where a dataset's rows or panels go: registered datasets by `table_order`, others last, by name."""
    return (DATASETS.get(name).table_order if name in DATASETS else 1_000, name)
