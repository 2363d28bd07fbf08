"""What every model source shares: the request it answers, the model it hands back with the files its weights came
from, its registry, and the offline rules (local files only, pickles read weights-only, a missing file is one line
naming it and where srtbench looked)."""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock
from urllib.parse import urlparse

import torch
from torch import nn

from srtbench.checkpoint import mismatch, read_torch_file, unpickling_failure
from srtbench.errors import SrtbenchError, describe
from srtbench.files import open_regular
from srtbench.models import Normalize
from srtbench.registry import Registry


@dataclass(frozen=True)
class Request:
    """`--model PREFIX:NAME` and what the command line says beside it."""

    spec: str  # `--model` as written, which heads every error
    name: str  # what follows the prefix
    dataset: str | None = None
    threat_model: str | None = None
    model_dir: str | None = None


@dataclass
class Loaded:
    """A model a source built, in eval mode and taking images in [0, 1], with its provenance."""

    model: nn.Module
    path: Path  # what the results rows name as the checkpoint
    files: list[Path]  # the weight files read: their SHA-256 identifies the model
    label: str
    dataset: str
    meta: dict[str, Any] = field(default_factory=dict)  # an srtbench checkpoint's metadata where the files hold one


# name -> loader(Request) -> Loaded; each registration declares `syntax` (how --model names it), `reads` (the
# options beside --model it honours), `needs_dataset` (the files do not name it) and `summary`
SOURCES: Registry[Callable[[Request], Loaded]] = Registry("model source")


def need(module: str, spec: str, extra: str) -> ModuleType:
    """Import a source's library (its import-time warnings are no concern of the user's); missing, one line saying
    which extra brings it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - a library's import may fail on anything it lacks
        raise SrtbenchError(f"--model {spec} needs {module.split('.')[0]} ({describe(err, 120)}); install it with "
                            f"pip install 'srtbench[{extra}]'") from None


def missing(spec: str, what: str, where: Path | str, fetch: str) -> SrtbenchError:
    """The one line for weights that are not on this machine: what was looked for, where, and how to get it."""
    return SrtbenchError(f"--model {spec}: {what} not found in {where} (srtbench never downloads; {fetch})")


@contextlib.contextmanager
def weights_only() -> Iterator[None]:
    """Every torch.load inside reads tensors and plain data only, whatever its caller (a library's own loader) asks:
    torch honours TORCH_FORCE_WEIGHTS_ONLY_LOAD over an explicit weights_only=False."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    with mock.patch.dict(os.environ, {**env, "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"}, clear=True):
        yield


def library_call(spec: str, build: Callable[[], Any]) -> Any:
    """`build()` (a library's loader) with its pickles read weights-only; any failure one line."""
    try:
        with weights_only(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build()
    except SrtbenchError:
        raise
    except Exception as err:  # noqa: BLE001 - a library's loader may raise anything
        reason = unpickling_failure(err) if isinstance(err, pickle.UnpicklingError) else \
            f"weights do not fit ({mismatch(err)})" if "Error(s) in loading" in str(err) else describe(err, 200)
        raise SrtbenchError(f"--model {spec}: {reason}") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A weights file as a state dict: safetensors, or a torch pickle read weights-only; `{"state_dict": ...}` and
    `{"model": ...}` wrappers are opened."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load

        with open_regular(path, "rb", "weights") as handle:
            try:
                state: Any = load(handle.read())
            except Exception as err:  # noqa: BLE001 - a damaged header can raise anything
                raise SrtbenchError(f"{path}: not a safetensors file ({describe(err, 120)})") from None
    else:
        state = read_torch_file(path, "weights")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise SrtbenchError(f"{path}: holds {type(state).__name__}, not a state dict")
    return state


def torch_hub_file(url: str) -> Path:
    """Where torch.hub keeps the download of `url`: $TORCH_HOME/hub/checkpoints/NAME (torch.hub.get_dir())."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def normalized(model: nn.Module, mean: Any, std: Any) -> nn.Module:
    """`model` behind its own input normalization, so that it takes images in [0, 1] as every srtbench model does."""
    return nn.Sequential(Normalize(tuple(map(float, mean)), tuple(map(float, std))), model).eval()
