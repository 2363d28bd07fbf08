"""One checkpoint format: weights + plain-data metadata (+ optional resume state), written atomically
and read with `torch.load(weights_only=True)`, so loading never runs code from the file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srtbench import __version__
from srtbench.errors import SrtbenchError
from srtbench.runtime import atomic_path, git_commit

FORMAT = "srtbench-checkpoint"
FORMAT_VERSION = 1
# metadata keys every checkpoint carries (the rest is free-form plain data: hyperparameters, metrics ...)
REQUIRED_META = ("model", "dataset", "in_shape", "num_classes", "mean", "std")
# a run's resume state sits beside its final checkpoint as NAME.resume: a `runs/*.pt` glob must not take it
# for a checkpoint (older versions wrote NAME.last.pt, which --resume still reads)
RESUME_SUFFIX = ".resume"
LEGACY_RESUME_SUFFIX = ".last.pt"


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
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise SrtbenchError(f"{self.path}: weights do not fit model {m['model']!r} ({first})") from None
        return model


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


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint; every way it can be wrong is one SrtbenchError line naming the file and cause."""
    path = Path(path)
    if not path.exists():
        raise SrtbenchError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise SrtbenchError(f"{path}: is a folder, not a checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a garbage file can make the unpickler raise anything
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        code = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported global" in ln), None)
        if code is not None:
            raise SrtbenchError(f"{path}: refused, loading it would run code from the file ({code[:160]})") from None
        first = lines[0] if lines else type(err).__name__
        raise SrtbenchError(f"{path}: corrupt or not a PyTorch file ({type(err).__name__}: {first[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SrtbenchError(f"{path}: not an srtbench checkpoint (no '{FORMAT}' header)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise SrtbenchError(f"{path}: written by a newer srtbench (format {payload['format_version']})")
    meta = payload.get("meta", {})
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing or not isinstance(payload.get("state_dict"), dict):
        raise SrtbenchError(f"{path}: incomplete srtbench checkpoint (missing {missing or ['state_dict']})")
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
