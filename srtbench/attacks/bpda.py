"""BPDA, the backward-pass differentiable approximation (Athalye et al. 2018): a model's non-differentiable input
transform keeps its forward pass while gradients flow through a differentiable stand-in.

A model declares the transform as a `preprocess` attribute that its forward pass applies (`srtbench/broken.py`'s
`quantized` and `jpeg`, or `--preprocess module:function` for a foreign model).  `attack[bpda=identity]` takes the
identity as the transform's backward pass; `attack[bpda=module:function]` takes the gradient of that function.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from srtbench.config import require
from srtbench.errors import SrtbenchError
from srtbench.usercode import import_callable


class StraightThrough:
    """preprocess(x) forward, approx(x)'s gradient backward: approx(x) + (preprocess(x) − approx(x)) detached."""

    def __init__(self, preprocess: Callable, approx: Callable):
        self.preprocess, self.approx = preprocess, approx

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        smooth = self.approx(x)
        return smooth + (self.preprocess(x) - smooth).detach()


def approximation(spec: str) -> Callable:
    """`identity`, or the function `module:function` names (imported as `--model` builders are)."""
    if spec == "identity":
        return lambda x: x
    return import_callable(spec, f"bpda={spec}")


def declaring(model: nn.Module) -> nn.Module | None:
    """The module (the model or one it wraps) that declares a `preprocess`."""
    return next((m for m in model.modules() if callable(getattr(m, "preprocess", None))), None)


@contextlib.contextmanager
def straight_through(model: nn.Module, spec: str) -> Iterator[None]:
    """While the block runs, the model's `preprocess` differentiates as `spec` says ("": unchanged)."""
    if not spec:
        yield
        return
    owner = declaring(model)
    if owner is None:
        raise SrtbenchError(f"bpda={spec} needs a model that declares its input transform as a `preprocess` attribute "
                            "(or `--preprocess module:function` for a foreign model)")
    original, own = owner.preprocess, "preprocess" in owner.__dict__  # an attribute, or a method of its class
    require(not isinstance(original, StraightThrough), "bpda is already in force on this model")
    owner.preprocess = StraightThrough(original, approximation(spec))
    try:
        yield
    finally:
        if own:
            owner.preprocess = original
        else:
            del owner.preprocess
