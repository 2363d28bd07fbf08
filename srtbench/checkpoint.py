"""One checkpoint format: weights + plain-data metadata (+ optional resume state), written atomically
and read with `torch.load(weights_only=True)`, so loading never runs code from the file."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srtbench import __version__
from srtbench.errors import SrtbenchError
from srtbench.files import open_regular
from srtbench.runtime import atomic_path, git_commit

FORMAT = "srtbench-checkpoint"
FORMAT_VERSION = 1
# metadata keys every checkpoint carries (the rest is free-form plain data: hyperparameters, metrics ...)
REQUIRED_META = ("model", "dataset", "in_shape", "num_classes", "mean", "std")
# a run's resume state sits beside its final checkpoint as NAME.resume: a `runs/*.pt` glob must not take it
# for a checkpoint (older versions wrote NAME.last.pt, which --resume still reads)
RESUME_SUFFIX = ".resume"
LEGACY_RESUME_SUFFIX = ".last.pt"


MAX_LABEL = 200  # characters of a row label (it is a table's row name; a results CSV cell holds at most 128 KiB)


def _whole(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and 1 <= len(v) <= 64 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)


# what each metadata key must hold where present (a downloaded checkpoint is data: checked before it is used)
META_SCHEMA: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (lambda v: isinstance(v, str) and bool(v), "a model name"),
    "dataset": (lambda v: isinstance(v, str) and bool(v), "a dataset name"),
    "in_shape": (lambda v: isinstance(v, list) and len(v) == 3 and all(map(_whole(1, 4096), v)),
                 "[channels, height, width] of whole numbers in [1, 4096]"),
    "num_classes": (_whole(2, 100_000), "a whole number of classes in [2, 100000]"),
    "mean": (_numbers, "a list of finite numbers"),
    "std": (lambda v: _numbers(v) and all(x > 0 for x in v), "a list of positive finite numbers"),
    "label": (lambda v: v is None or (isinstance(v, str) and len(v) <= MAX_LABEL), f"text of at most {MAX_LABEL} "
              "characters"),
    "defense": (lambda v: v is None or isinstance(v, str), "a defense name"),
    "seed": (lambda v: v is None or _whole(0, 2**64)(v), "a non-negative whole number"),
    "preset": (lambda v: v is None or isinstance(v, str), "a preset name"),
    **{k: (lambda v: v is None or isinstance(v, dict), "a table of settings")
       for k in ("defense_params", "threat", "data", "train", "metrics")},
    "train_time_s": (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                             and math.isfinite(v) and v >= 0), "seconds"),
}


def check_meta(meta: Any, path: str | os.PathLike) -> dict[str, Any]:
    """`meta` if every key META_SCHEMA knows holds what it must (and mean/std match the channels); else one line
    naming the key."""
    if not isinstance(meta, dict):
        raise SrtbenchError(f"{path}: checkpoint metadata is {type(meta).__name__}, not a table")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise SrtbenchError(f"{path}: incomplete srtbench checkpoint (missing {missing})")
    for key, (ok, expected) in META_SCHEMA.items():
        if key in meta and not ok(meta[key]):
            shown = repr(meta[key])
            raise SrtbenchError(f"{path}: metadata {key} must be {expected}, got "
                                f"{shown if len(shown) <= 40 else shown[:37] + '...'}")
    channels = meta["in_shape"][0]
    for key in ("mean", "std"):
        if len(meta[key]) not in (1, channels):
            raise SrtbenchError(f"{path}: metadata {key} has {len(meta[key])} values for {channels} channels")
    return meta


def check_dtypes(model: nn.Module, state: Any, path: str | os.PathLike) -> None:
    """Floating weights come from floating tensors: load_state_dict would cast int8 or bool weights silently, and the
    model would then be some other model."""
    if not isinstance(state, dict):
        return  # load_state_dict names what is wrong with it
    own = model.state_dict()
    for key, value in state.items():
        if key in own and isinstance(value, torch.Tensor) and own[key].is_floating_point() \
                and not value.is_floating_point():
            raise SrtbenchError(f"{path}: weight {key} is {str(value.dtype).removeprefix('torch.')}, the model's is "
                                f"{str(own[key].dtype).removeprefix('torch.')} (srtbench casts no integer weights)")


def resume_path(out: str | os.PathLike) -> Path:
    """Where the run whose final checkpoint is `out` (NAME.pt) keeps its resume state: NAME.resume."""
    return Path(out).with_suffix(RESUME_SUFFIX)


def legacy_resume_path(out: str | os.PathLike) -> Path:
    """The resume state's name in older versions: NAME.last.pt."""
    return Path(out).with_suffix(LEGACY_RESUME_SUFFIX)


@dataclass
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]
    resume: dict[str, Any] | None = field(default=None)
    path: str = ""

    def build_model(self) -> nn.Module:
        """The model this checkpoint was trained as, with its weights loaded (strictly)."""
        from srtbench.models import create_model

        m = self.meta
        model = create_model(m["model"], tuple(m["in_shape"]), m["num_classes"], tuple(m["mean"]), tuple(m["std"]))
        return load_weights(model, self.state_dict, self.path, f"model {m['model']!r}")


def load_weights(model: nn.Module, state: Any, path: str | os.PathLike, what: str) -> nn.Module:
    """`state` into `model`, strictly and without casting integer weights; one line naming `path`, `what` the model
    is (`model 'small-cnn'`) and the first mismatch."""
    check_dtypes(model, state, path)
    try:
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - wrong keys, shapes or a non-dict all mean the same
        raise SrtbenchError(f"{path}: weights do not fit {what} ({mismatch(err)})") from None
    return model


def mismatch(err: BaseException) -> str:
    """The first line of a load_state_dict error that says what does not fit (a missing key, a shape)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip() and "Error(s) in loading" not in ln]
    return (lines or [type(err).__name__])[0][:160]


def save(path: str | os.PathLike, model: nn.Module, meta: dict[str, Any], resume: dict[str, Any] | None = None) -> Path:
    """Write atomically: a crash mid-write leaves the previous file, never a truncated one."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}")
    meta = {"srtbench_version": __version__, "git_commit": git_commit(), **meta}
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "state_dict": state, "meta": meta}
    if resume is not None:
        payload["resume"] = resume
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_torch_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """`torch.load(weights_only=True)` of a regular file: tensors and plain data only, every failure one line."""
    try:
        with open_regular(path, "rb", what) as handle:
            return torch.load(handle, map_location="cpu", weights_only=True)
    except SrtbenchError:
        raise
    except Exception as err:  # noqa: BLE001 - a garbage file can make the unpickler raise anything
        raise SrtbenchError(f"{path}: {unpickling_failure(err)}") from None


def unpickling_failure(err: BaseException) -> str:
    """Why torch.load failed, in one line: a file that would run code is refused (naming the global it asks for),
    anything else is corrupt."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    code = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported global" in ln), None)
    if code is not None:
        return f"refused, loading it would run code from the file ({code[:160]})"
    first = lines[0] if lines else type(err).__name__
    return f"corrupt or not a PyTorch file ({type(err).__name__}: {first[:120]})"


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint; every way it can be wrong is one SrtbenchError line naming the file and cause."""
    path = Path(path)
    if not path.exists():
        raise SrtbenchError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise SrtbenchError(f"{path}: is a folder, not a checkpoint file")
    payload = read_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SrtbenchError(f"{path}: not an srtbench checkpoint (no '{FORMAT}' header)")
    version = payload.get("format_version", 0)
    if not _whole(0, 2**31)(version):
        raise SrtbenchError(f"{path}: format_version must be a whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise SrtbenchError(f"{path}: written by a newer srtbench (format {version})")
    if not isinstance(payload.get("state_dict"), dict):
        raise SrtbenchError(f"{path}: incomplete srtbench checkpoint (missing ['state_dict'])")
    meta = check_meta(payload.get("meta", {}), path)
    return Checkpoint(payload["state_dict"], meta, payload.get("resume"), str(path))


def _unwrap(model: nn.Module) -> nn.Module:
    """The module under DistributedDataParallel / torch.compile wrappers."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def model_meta(name: str, spec) -> dict[str, Any]:
    """The metadata that rebuilds a model: architecture plus the dataset's shape and normalization."""
    return {
        "model": name,
        "dataset": spec.name,
        "in_shape": list(spec.shape),
        "num_classes": spec.num_classes,
        "mean": list(spec.mean),
        "std": list(spec.std),
    }
