"""Expectation over transformation (EOT, Athalye et al. 2018) for a model that is random at inference: gradients
averaged over several passes of the model, and success decided by a majority of fresh passes.

`attack[eot=N]` runs any attack on `ExpectedModel(model, N)`, whose output is the log of the mean softmax of N
passes: a gradient of a loss on it averages over the model's randomness (a single pass's gradient follows one draw
of the noise and misleads the next step).  The evaluation then scores each adversarial example by `vote`: broken
when more than half of N fresh passes misclassify it.  On a deterministic model both equal one pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srtbench.maximizers import eval_mode


class ExpectedModel(nn.Module):
    """`model` run `samples` times per call; its output is log E[softmax(f(x))] over those passes."""

    def __init__(self, model: nn.Module, samples: int):
        super().__init__()
        self.model, self.samples = model, samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([F.softmax(self.model(x), 1) for _ in range(self.samples)]).mean(0)
        return probs.clamp_min(1e-12).log()


def passes(model: nn.Module, x: torch.Tensor, samples: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """(samples, B) predictions of `samples` fresh passes, in eval mode without gradient, on x's device."""
    out = []
    with eval_mode(model), torch.no_grad():
        for _ in range(samples):
            out.append(torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).to(x.device)
                                  for i in range(0, len(x), batch_size)]))
    return torch.stack(out)


def vote(model: nn.Module, x: torch.Tensor, target: torch.Tensor, samples: int, batch_size: int,
         device: torch.device) -> torch.Tensor:
    """The prediction that the evaluation counts under EOT: where more than half of `samples` fresh passes
    misclassify `target`, the most frequent of their other classes; elsewhere `target` itself."""
    votes = passes(model, x, samples, batch_size, device)
    wrong = votes != target
    broken = wrong.sum(0) * 2 > samples
    others = torch.where(wrong, votes, torch.full_like(votes, -1))
    counts = F.one_hot(others.clamp_min(0), int(votes.max()) + 1) * wrong[..., None]
    return torch.where(broken, counts.sum(0).argmax(1), target)


def mode(model: nn.Module, x: torch.Tensor, samples: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """C(x) of a random model: the most frequent class of `samples` passes."""
    votes = passes(model, x, samples, batch_size, device)
    return F.one_hot(votes, int(votes.max()) + 1).sum(0).argmax(1)
