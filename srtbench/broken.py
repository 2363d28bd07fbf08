"""Broken defenses: an honest model wrapped so that a plain gradient attack overestimates its robustness, the cases
an evaluation must see through (Athalye et al. 2018; Tramèr et al. 2020).  `srtbench evaluate CKPT --model zoo:NAME`
attacks CKPT's model inside one of them.

Each names the cause and the adaptive attack that measures it: a random model needs EOT (`attack[eot=N]`); a
non-differentiable or detached input transform needs BPDA or a transfer attack; saturated logits and probability
outputs need a loss that does not saturate (the C&W margin)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srtbench.registry import Registry


@dataclass(frozen=True)
class Broken:
    """How a wrapper breaks gradient attacks, and what measures it anyway."""

    build: type
    cause: str
    remedy: str


BROKEN: Registry[Broken] = Registry("broken defense")


def broken(name: str, cause: str, remedy: str):
    def deco(cls: type) -> type:
        BROKEN.register(name)(Broken(cls, cause, remedy))
        return cls

    return deco


class Wrapper(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model


@broken("quantized", "input quantized to 5 levels: zero gradient almost everywhere",
        "BPDA with the identity as the transform's backward pass")
class Quantized(Wrapper):
    levels = 5

    def preprocess(self, x):  # declared, so that `attack[bpda=identity]` can replace its backward pass
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)

    def forward(self, x):
        return self.model(self.preprocess(x))


@broken("noisy", "Gaussian noise (σ 0.2) on the input at every pass: one pass's gradient follows one draw",
        "EOT: attack[eot=N], the gradient averaged and success voted over N passes")
class Noisy(Wrapper):
    sigma = 0.2

    def forward(self, x):
        return self.model((x + self.sigma * torch.randn_like(x)).clamp(0, 1))


@broken("saturated", "logits multiplied by 10⁴: the softmax saturates and cross-entropy's gradient vanishes",
        "a margin loss that does not saturate (cw, the C&W margin at the PGD budget)")
class Saturated(Wrapper):
    def forward(self, x):
        return 1e4 * self.model(x)


@broken("detached", "the input detached before the network: no gradient reaches it",
        "a transfer attack from a surrogate, or BPDA with the identity")
class Detached(Wrapper):
    def forward(self, x):
        return self.model(x.detach())


@broken("jpeg", "a JPEG-like transform (8×8 DCT coefficients quantized): no useful gradient",
        "BPDA with the identity as the transform's backward pass")
class JpegLike(Wrapper):
    step = 0.1  # quantization step of the orthonormal DCT coefficients

    def preprocess(self, x):
        return jpeg_like(x, self.step)

    def forward(self, x):
        return self.model(self.preprocess(x))


@broken("softmax", "probabilities instead of logits: cross-entropy on them is nearly flat",
        "the C&W margin on its outputs, or their logarithm as logits")
class Softmax(Wrapper):
    def forward(self, x):
        return F.softmax(self.model(x), 1)


@broken("resize-pad", "a random resize and padding at every pass", "EOT: attack[eot=N]")
class ResizePad(Wrapper):
    def forward(self, x):
        h, w = x.shape[-2:]
        size = int(torch.randint(h - 4, h + 1, ()))
        small = F.interpolate(x, size=(size, size), mode="nearest")
        top, left = (int(torch.randint(0, h - size + 1, ())), int(torch.randint(0, w - size + 1, ())))
        return self.model(F.pad(small, (left, w - size - left, top, h - size - top)))


def _dct_matrix(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


def jpeg_like(x: torch.Tensor, step: float, block: int = 8) -> torch.Tensor:
    """Each block × block tile's orthonormal DCT coefficients rounded to multiples of `step`, then inverted."""
    b, c, h, w = x.shape
    ph, pw = (-h) % block, (-w) % block
    padded = F.pad(x, (0, pw, 0, ph), mode="replicate")
    tiles = padded.unfold(2, block, block).unfold(3, block, block)  # (b, c, H/8, W/8, 8, 8)
    d = _dct_matrix(block).to(x)
    coeffs = d @ tiles @ d.T
    back = d.T @ (torch.round(coeffs / step) * step) @ d
    out = back.permute(0, 1, 2, 4, 3, 5).reshape(b, c, h + ph, w + pw)
    return out[..., :h, :w].clamp(0, 1)


class Preprocessed(Wrapper):
    """A model behind an input transform it declares (`--preprocess module:function`), which BPDA can see."""

    def __init__(self, model: nn.Module, preprocess):
        super().__init__(model)
        self.preprocess = preprocess

    def forward(self, x):
        return self.model(self.preprocess(x))


def wrap(name: str, model: nn.Module) -> nn.Module:
    """`model` inside broken defense `name` (an unknown name is a one-line error listing them)."""
    return BROKEN.get(name).build(model)
