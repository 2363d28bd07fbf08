"""The inner maximization of every objective (Eq. (10)) and the parts every objective returns."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srtbench.data import Batch
from srtbench.defenses.params import DefenseParams
from srtbench.maximizers import build, eval_mode, misclassified
from srtbench.neighborhoods import Neighborhood, SolverSettings


def inner_maximizer(neighborhood: Neighborhood, params: DefenseParams, fast: bool = False):
    """The maximizer the neighborhood names for training, given this defense's settings (FGSM-RS with α =
    fgsm_alpha·ε when `fast`, Algorithm 2)."""
    return build(neighborhood.train_solver(SolverSettings(params.steps, params.step_size, params.start, params.k, fast,
                                               params.fgsm_alpha)))


def maximize(model, neighborhood, x, target, loss, params, gen, fast=False):
    """x' = argmax over N(x) of loss(f(x'), target), detached (Eq. (10))."""
    done = misclassified if params.spatial_pick == "flip" and neighborhood.search_in_training else None
    if done is not None and target.dim() != 1:
        done = None  # "changes the prediction" needs a class target; KL objectives keep the worst by loss
    theta = inner_maximizer(neighborhood, params, fast)(model, neighborhood, x, target, loss, done=done, gen=gen)
    return neighborhood.apply(x, theta).detach()


def clean_loss_monitor(model, x, y) -> torch.Tensor:
    """L(f(x), y) for the metrics only (eval mode, so BatchNorm statistics and dropout are untouched)."""
    with eval_mode(model), torch.no_grad():
        return F.cross_entropy(model(x), y)


def parts(loss, natural, robust, logits, y) -> dict:
    return {
        "loss": loss,
        "natural": natural.detach(),
        "robust": robust.detach(),
        "correct": (logits.detach().argmax(1) == y).sum(),
        "count": torch.tensor(len(y), device=y.device),
    }


def merged(batch: Batch, use_unlabeled: bool) -> torch.Tensor:
    if use_unlabeled and batch.x_unlabeled is not None and len(batch.x_unlabeled):
        return torch.cat([batch.x_labeled, batch.x_unlabeled])
    return batch.x_labeled

