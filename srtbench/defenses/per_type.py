"""AT(avg) and AT(max): adversarial training against each part of a compound threat separately (Tramèr & Boneh 2019,
the paper's Appendix I)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srtbench.defenses.inner import clean_loss_monitor, maximize, parts
from srtbench.defenses.registry import register
from srtbench.errors import SrtbenchError
from srtbench.maximizers import cross_entropy


def _per_type_losses(model, batch, neighborhood, params, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """(types, B) losses L(f(x'_t), y), one adversarial example per perturbation type t, each crafted
    from the clean x against its own neighborhood alone (Tramèr & Boneh 2019)."""
    if len(neighborhood.chain()) < 2:
        raise SrtbenchError("at-avg and at-max need --threat compound")
    x, y = batch.x_labeled, batch.y_labeled
    advs = [maximize(model, part, x, y, cross_entropy, params, gen) for part in neighborhood.chain()]
    logits = model(torch.cat(advs))
    return F.cross_entropy(logits, y.repeat(len(advs)), reduction="none").view(len(advs), len(y)), logits


@register("at-avg", only=("compound",), params=("steps", "step_size", "start", "k"),
          label=lambda p, t: "AT(avg)", source="Tramèr & Boneh 2019, 'avg' strategy (Appendix I)")
def at_avg(model, batch, neighborhood, params, gen=None):
    """mean over perturbation types t and examples of L(f(x'_t), y)."""
    losses, logits = _per_type_losses(model, batch, neighborhood, params, gen)
    loss = losses.mean()
    y = batch.y_labeled
    return parts(loss, clean_loss_monitor(model, batch.x_labeled, y), loss, logits, y.repeat(len(losses)))


@register("at-max", only=("compound",), params=("steps", "step_size", "start", "k"),
          label=lambda p, t: "AT(max)", source="Tramèr & Boneh 2019, 'max' strategy (Appendix I)")
def at_max(model, batch, neighborhood, params, gen=None):
    """mean over examples of max over perturbation types t of L(f(x'_t), y)."""
    losses, logits = _per_type_losses(model, batch, neighborhood, params, gen)
    loss = losses.max(0).values.mean()
    y = batch.y_labeled
    return parts(loss, clean_loss_monitor(model, batch.x_labeled, y), loss, logits, y.repeat(len(losses)))
