"""Datasets, the paper's labeled/unlabeled split, and the proportional batch sampler (Section 4).

Images live in memory as uint8 NCHW tensors and become float [0, 1] per batch.  The unlabeled part
of a split is an `UnlabeledSet`, a type with no labels at all, so training code cannot read them.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srtbench.config import field, require, validate
from srtbench.errors import SrtbenchError
from srtbench.registry import Registry

DEBIAN_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}


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

    @property
    def input_values(self) -> int:
        """How many input values an image has (the largest ℓ0 distance)."""
        return math.prod(self.shape)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


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


# ---------------------------------------------------------------- readers


def _read_idx(path: Path) -> np.ndarray:
    """IDX format (LeCun): magic (2 zero bytes, dtype code, ndim), big-endian dims, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise SrtbenchError(f"{path}: corrupt gzip file ({err or type(err).__name__})") from None
    except OSError as err:
        raise SrtbenchError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise SrtbenchError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise SrtbenchError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise SrtbenchError(f"{path}: truncated IDX file ({data.size} of {math.prod(dims)} values)")
    return data.reshape(dims)


def _find_idx(dirs: list[Path], stem: str) -> Path | None:
    for d in dirs:
        for name in (stem, stem + ".gz"):
            if (d / name).is_file():
                return d / name
    return None


def _search_dirs(root: Path, name: str, torchvision_cls: str) -> list[Path]:
    return [root / name, root / torchvision_cls / "raw", root]


def _mnist_like_reader(name: str, torchvision_cls: str) -> Callable:
    def read(data_dir: Path | None, train: bool, download: bool):
        prefix = "train" if train else "t10k"
        stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        if data_dir is not None:  # an explicit folder is the only place looked in: no silent fallback
            dirs = _search_dirs(Path(data_dir), name, torchvision_cls)
        else:
            env = os.environ.get("SRTBENCH_DATA")
            require(not env or Path(env).is_dir(), f"SRTBENCH_DATA={env}: no such folder (unset it, or name the data)")
            dirs = _search_dirs(Path(env), name, torchvision_cls) if env else []
            dirs += [Path(DEBIAN_DIRS[name])] if name in DEBIAN_DIRS else []
        images, labels = (_find_idx(dirs, stem) for stem in stems)
        if (images is None or labels is None) and download:
            import torchvision

            root = Path(data_dir or os.environ.get("SRTBENCH_DATA") or "data")
            getattr(torchvision.datasets, torchvision_cls)(root=str(root), train=train, download=True)
            raw = root / torchvision_cls / "raw"
            images, labels = (_find_idx([raw], stem) for stem in stems)
        if images is None or labels is None:
            missing = stems[0] if images is None else stems[1]
            if data_dir is not None:
                why = ("no such folder" if not data_dir.exists() else "not a folder" if not data_dir.is_dir()
                       else f"no {missing}[.gz] in it, in {name}/ or in {torchvision_cls}/raw/")
                raise SrtbenchError(f"dataset {name!r} not found in --data-dir {data_dir} ({why}); point it at the "
                                    "folder holding the IDX files, or add --download")
            fixes = ["--data-dir DIR (or SRTBENCH_DATA) pointing at the IDX files", "--download"]
            if name in DEBIAN_DIRS:
                fixes.insert(0, "`apt-get install dataset-fashion-mnist`")
            raise SrtbenchError(f"dataset {name!r} not found; fix with " + ", or ".join(fixes))
        x = torch.from_numpy(_read_idx(images).copy()).unsqueeze(1)
        y = torch.from_numpy(_read_idx(labels).astype(np.int64))
        if y.ndim != 1 or len(y) != len(x):
            raise SrtbenchError(f"{labels}: holds {len(y)} labels for the {len(x)} images of {images.name}"
                                if y.ndim == 1 else f"{labels}: not a label file (shape {tuple(y.shape)})")
        return x, y, str(images.parent)

    return read


def _read_cifar10(data_dir: Path | None, train: bool, download: bool):
    import torchvision

    root = Path(data_dir or os.environ.get("SRTBENCH_DATA") or "data")
    try:
        ds = torchvision.datasets.CIFAR10(root=str(root), train=train, download=download)
    except RuntimeError:
        raise SrtbenchError(
            f"dataset 'cifar10' not found under {root}; fix with --data-dir DIR (holding "
            "cifar-10-batches-py) or --download"
        ) from None
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return x, torch.as_tensor(ds.targets, dtype=torch.int64), str(root / ds.base_folder)


# the ℓ2 threshold of the minimum-norm attacks on 28 × 28 images: the paper gives none (its Table 4 prints C&W and
# DDNA accuracies without a budget)
L2_28x28 = 2.0

DATASETS.register("mnist")(
    DatasetSpec("mnist", (1, 28, 28), tuple(str(i) for i in range(10)), (0.0,), (1.0,), False,
                _mnist_like_reader("mnist", "MNIST"),
                AttackBudgets(0.3, 40, 0.01, L2_28x28, 'Table 4 / Appendix E: "PGD-40 and MI-FGSM-40 with step size'
                              ' 0.01 and FGSM under perturbation size 0.3"'), 60_000)
)
DATASETS.register("fashion-mnist")(
    DatasetSpec(
        "fashion-mnist", (1, 28, 28),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
         "Ankle boot"),
        (0.0,), (1.0,), False, _mnist_like_reader("fashion-mnist", "FashionMNIST"),
        # the ε 0.1 its SmallCNN presets train at (MNIST's 0.3 breaks every Fashion-MNIST SmallCNN)
        AttackBudgets(0.1, 40, 0.005, L2_28x28, 'Appendix C (Table 6): "PGD-40 with step size 0.005 and FGSM under'
                      ' perturbation size 0.1"'),
        60_000,
    )
)
DATASETS.register("cifar10")(
    DatasetSpec(
        "cifar10", (3, 32, 32),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616), True, _read_cifar10,
        AttackBudgets(0.031, 10, 0.007, 0.5, 'Appendix E: "ε = 0.031 ..., the step size α = 0.007, and the iteration'
                      ' step is set to 10"; ℓ2 threshold 0.5 as RobustBench',
                      settings={"cw-l2": {"stepsize": 0.01, "initial_const": 0.01}}),
        50_000,
    )
)


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


# ---------------------------------------------------------------- the paper's split


@dataclass
class DataConfig:
    dataset: str = field("fashion-mnist", "dataset name", choices=("mnist", "fashion-mnist", "cifar10"))
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


# ---------------------------------------------------------------- batches


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Appendix B: zero-pad by `pad`, random crop back to size, horizontal flip with p = 0.5 (batched)."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None].expand(b, c, h, w + 2 * pad)
    out = padded.gather(2, rows.to(x.device))
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :].expand(b, c, h, w)
    out = out.gather(3, cols.to(x.device))
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@dataclass
class Batch:
    x_labeled: torch.Tensor
    y_labeled: torch.Tensor
    x_unlabeled: torch.Tensor | None

    def to(self, device: torch.device) -> Batch:
        xu = None if self.x_unlabeled is None else self.x_unlabeled.to(device, non_blocking=True)
        return Batch(self.x_labeled.to(device, non_blocking=True), self.y_labeled.to(device, non_blocking=True), xu)


class ProportionalBatches:
    """Batches of m examples, m·|D_L|/(|D_L|+|D_U|) labeled and the rest unlabeled (Section 4).

    Deterministic in (seed, epoch): `epoch(e, start=k)` replays epoch e from batch k, which is what
    exact resume needs.  With `world > 1` each rank gets a disjoint 1/world share of every global batch
    (of both streams), so DDP's averaged gradient is the gradient of the global batch.
    """

    def __init__(
        self,
        labeled: ImageSet,
        unlabeled: UnlabeledSet | None,
        batch_size: int,
        seed: int = 0,
        augment_images: bool = False,
        rank: int = 0,
        world: int = 1,
        labeled_per_batch: int | None = None,
        unlabeled_per_batch: int | None = None,
    ):
        self.labeled, self.unlabeled = labeled, unlabeled if unlabeled is not None and len(unlabeled) else None
        self.seed, self.augment, self.rank, self.world = seed, augment_images, rank, world
        n_l, n_u = len(labeled), len(self.unlabeled) if self.unlabeled is not None else 0
        if batch_size % world:
            raise SrtbenchError(f"batch size {batch_size} must divide by the {world} ranks")
        if labeled_per_batch is None:
            # m·|D_L|/(|D_L|+|D_U|), rounded to a multiple of the rank count so every rank gets equal shares
            labeled_per_batch = max(world, world * round(batch_size * n_l / (n_l + n_u) / world))
        if unlabeled_per_batch is None:
            unlabeled_per_batch = batch_size - labeled_per_batch if n_u else 0
        self.b_l, self.b_u = labeled_per_batch, unlabeled_per_batch if n_u else 0
        if self.b_l % world or self.b_u % world:
            raise SrtbenchError(
                f"per-batch counts ({self.b_l} labeled, {self.b_u} unlabeled) must divide by the {world} ranks"
            )
        if n_u and self.b_u:
            self.batches = max(1, (n_l + n_u) // (self.b_l + self.b_u))
        else:
            self.batches = max(1, n_l // self.b_l)

    def __len__(self) -> int:
        return self.batches

    def _stream(self, n: int, per_batch: int, gen: torch.Generator) -> torch.Tensor:
        """Indices for every batch of an epoch: fresh permutations, concatenated when one runs out."""
        need = self.batches * per_batch
        perms = [torch.randperm(n, generator=gen) for _ in range(max(1, math.ceil(need / n)))]
        return torch.cat(perms)[:need].view(self.batches, per_batch)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        lab = self._stream(len(self.labeled), self.b_l, gen)
        unl = self._stream(len(self.unlabeled), self.b_u, gen) if self.b_u else None
        for i in range(start, self.batches):
            il = lab[i][self.rank :: self.world]
            x, y = self.labeled.batch(il)
            xu = self.unlabeled.batch(unl[i][self.rank :: self.world]) if unl is not None else None
            if self.augment:
                aug = torch.Generator().manual_seed(self.seed * 7_919 + epoch * 100_003 + i)
                x = augment(x, aug)
                xu = augment(xu, aug) if xu is not None else None
            yield Batch(x, y, xu)


def class_counts(labels: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(labels, minlength=num_classes).tolist()
