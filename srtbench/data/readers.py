"""Reading images from disk: IDX files (MNIST, Fashion-MNIST: --data-dir, $SRTBENCH_DATA, Debian's package,
torchvision's download) and CIFAR-10 through torchvision."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from srtbench.config import require
from srtbench.errors import SrtbenchError

DEBIAN_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}

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

