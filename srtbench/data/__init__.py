"""Datasets, the paper's labeled/unlabeled split, and the proportional batch sampler (Section 4).

Images live in memory as uint8 NCHW tensors and become float [0, 1] per batch.  The unlabeled part
of a split is an `UnlabeledSet`, a type with no labels at all, so training code cannot read them.

Files: `sets.py` (a dataset's spec and its images in memory), `readers.py` (files on disk), `datasets.py` (the
registered datasets), `split.py` (D_L and D_U), `batches.py` (the proportional sampler).  A new dataset is one
`DATASETS.register` call with its `DatasetSpec`.
"""

from srtbench.data import datasets  # noqa: F401  (registers MNIST, Fashion-MNIST, CIFAR-10)
from srtbench.data.batches import Batch, ProportionalBatches, augment, class_counts, labeled_share
from srtbench.data.readers import DEBIAN_DIRS
from srtbench.data.sets import (
    DATASETS,
    AttackBudgets,
    DatasetSpec,
    ImageSet,
    UnlabeledSet,
    check_labels,
    display_name,
    display_order,
    load,
    to_float,
)
from srtbench.data.split import DataConfig, load_split, split

__all__ = ["DATASETS", "DEBIAN_DIRS", "AttackBudgets", "Batch", "DataConfig", "DatasetSpec", "ImageSet",
           "ProportionalBatches", "UnlabeledSet", "augment", "check_labels", "class_counts", "display_name",
           "display_order", "labeled_share", "load", "load_split", "split", "to_float"]
