"""The paper's split of a training set into labeled D_L and unlabeled D_U (Section 4), declared by DataConfig."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srtbench.config import field, require, validate
from srtbench.data.sets import DATASETS, DatasetSpec, ImageSet, UnlabeledSet, load
from srtbench.errors import SrtbenchError


@dataclass
class DataConfig:
    dataset: str = field("fashion-mnist", "dataset name", choices=DATASETS.names)
    data_dir: str | None = field(None, "folder holding the dataset files (default: $SRTBENCH_DATA, Debian's)")
    download: bool = field(False, "let torchvision download the dataset if it is missing")
    n_labeled: int = field(10_000, "size of the labeled part D_L of the training set (Section 4)")
    n_unlabeled: int | None = field(None, "size of the unlabeled part D_U (default: the rest)")
    split_seed: int = field(0, "seed of the labeled/unlabeled split")

    def __post_init__(self):
        validate(self)
        require(self.n_labeled > 0, f"--n-labeled must be positive, got {self.n_labeled}")
        require(self.n_unlabeled is None or self.n_unlabeled >= 0,
                f"--n-unlabeled must be >= 0, got {self.n_unlabeled}")

    @property
    def spec(self) -> DatasetSpec:
        return DATASETS.get(self.dataset)

    @property
    def sizes(self) -> tuple[int, int]:
        """(|D_L|, |D_U|) this config asks for (D_U: the rest of the training set unless given)."""
        rest = self.spec.train_size - self.n_labeled
        return self.n_labeled, rest if self.n_unlabeled is None else self.n_unlabeled


def split(train: ImageSet, n_labeled: int, n_unlabeled: int | None, seed: int) -> tuple[ImageSet, UnlabeledSet]:
    """Seeded split of the training set into D_L (n_labeled) and D_U (n_unlabeled or the rest)."""
    rest = len(train) - n_labeled
    if rest < 0:
        raise SrtbenchError(f"--n-labeled {n_labeled} exceeds the {len(train)} training examples")
    n_unlabeled = rest if n_unlabeled is None else n_unlabeled
    if n_unlabeled > rest:
        raise SrtbenchError(f"--n-unlabeled {n_unlabeled} exceeds the {rest} examples left after D_L")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(train), generator=gen)
    labeled = train.subset(perm[:n_labeled])
    # D_U is built from images alone: its labels are dropped here, before anything can see them.
    unlabeled = UnlabeledSet(train.images[perm[n_labeled : n_labeled + n_unlabeled]], train.source)
    return labeled, unlabeled


def load_split(cfg: DataConfig) -> tuple[ImageSet, UnlabeledSet]:
    return split(load(cfg.dataset, True, cfg.data_dir, cfg.download), cfg.n_labeled, cfg.n_unlabeled, cfg.split_seed)

