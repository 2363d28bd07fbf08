"""JSMA (Papernot et al. 2016): a batched re-implementation, checked against torchattacks in the tests."""

from __future__ import annotations

import math

import torch

from srtbench.attacks.base import Attack, AttackOutput, attack, in_box, norm
from srtbench.config import require
from srtbench.maximizers import eval_mode

LAYERS = 3  # Pareto layers of (a, b) scored: the best pair lies in the first two; the third is a margin for rounding


def _best_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(best score, flat index p·m + q) over pairs p ≠ q of relu(a_p + a_q)·relu(b_p + b_q), first in row-major
    order among equals (torch.argmax returns the first maximum)."""
    score = (a[:, None, :] + a[:, :, None]).clamp_(min=0)
    score.mul_((b[:, None, :] + b[:, :, None]).clamp_(min=0))
    score.diagonal(dim1=1, dim2=2).zero_()  # a feature does not pair with itself
    flat = score.view(len(a), -1).argmax(1)
    return score.view(len(a), -1).gather(1, flat[:, None]).squeeze(1), flat


def _pareto_layers(a: torch.Tensor, b: torch.Tensor, layers: int) -> torch.Tensor:
    """Per row, a mask of the points (a_i, b_i) in the first `layers` Pareto layers (maxima of both), or a superset:
    points tied with their dominator are kept, but of identical points only the first two (by index), which hold
    every pair the copies can make first in row-major order (gradients are often exactly 0 on hundreds of
    features).  Sorted by a then b, both descending (then by index), a point is in the front of the points left
    exactly when its b reaches every b before it."""
    by_b = torch.sort(b, dim=1, descending=True, stable=True).indices
    order = by_b.gather(1, torch.sort(a.gather(1, by_b), dim=1, descending=True, stable=True).indices)
    left, a_sorted = b.gather(1, order), a.gather(1, order)
    same = torch.zeros_like(left, dtype=torch.bool)
    same[:, 1:] = (a_sorted[:, 1:] == a_sorted[:, :-1]) & (left[:, 1:] == left[:, :-1])
    copy = same.clone()
    copy[:, 1:] &= same[:, :-1]  # a third (or later) copy of a point
    left = left.masked_fill(copy, -math.inf)
    front = torch.zeros_like(left, dtype=torch.bool)
    floor = torch.full_like(left[:, :1], -math.inf)
    for _ in range(layers):
        before = torch.cat([floor, left.cummax(1).values[:, :-1]], 1)
        layer = (left >= before) & ~front & ~copy
        front |= layer
        left = left.masked_fill(layer, -math.inf)
    return torch.zeros_like(front).scatter_(1, order, front)


class JSMA(Attack):
    """Jacobian saliency map attack (Papernot et al. 2016, Eqs. (8)-(10)), pairs of features.

    The same algorithm as torchattacks.JSMA (target (y + 1) mod K, θ added to the two features of the
    highest saliency, at most ceil(γ·n / 2) iterations, stop at the target), but batched over images, with
    2 backward passes per step (target logit and sum of logits) instead of K per image, and the pair searched
    among a few dozen features (the Pareto layers) instead of all n² pairs.  A step then costs what its forward
    and two backward passes cost (1.16 ms against 1.1-1.2 ms per image on one thread, SmallCNN, 2026-11-30).
    """

    threat = "l0"

    def __init__(self, theta: float, gamma: float):
        require(theta != 0, "JSMA theta must be non-zero")
        require(0 <= gamma <= 1, f"JSMA gamma must be in [0, 1], got {gamma:g}")
        self.theta, self.gamma = theta, gamma

    def _saliency(self, grad_t, grad_o, domain) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair (p, q) maximizing α·|β| over pairs with α > 0 > β (Eqs. (8)-(10); signs flip for θ < 0).

        With a = ±∂Z_t/∂x and b = ∓Σ_{j≠t} ∂Z_j/∂x per feature, the score of a pair is relu(a_p + a_q)·relu(b_p + b_q),
        which equals α·|β| where the conditions hold and 0 elsewhere; features outside the search domain are
        pushed out of the conditions.  A positive score grows strictly in a_q and in b_q, so a feature q that another
        feature q' ≠ p dominates (a_q' ≥ a_q and b_q' ≥ b_q, one strictly) is never the best partner of p: every best
        pair, ties included, lies in the first two Pareto layers of the points (a_q, b_q) (a partner dominated by p
        alone sits in the second).  Scoring every pair of the first LAYERS layers, in feature order, gives the same
        pair as scoring all n² pairs, first in row-major order among equals (as torchattacks does), at a few dozen
        features per image instead of n.
        """
        sign = 1.0 if self.theta > 0 else -1.0
        coef = 2.0 * (~domain).float() * sign
        a = (grad_t - coef * grad_t.abs().amax(1, keepdim=True)).mul_(sign)
        b = (grad_o + coef * grad_o.abs().amax(1, keepdim=True)).mul_(-sign)
        n = a.shape[1]
        keep = _pareto_layers(a, b, LAYERS)
        m = max(2, int(keep.sum(1).max()))
        index = torch.arange(n, device=a.device).expand(len(a), n)
        order = torch.where(keep, index, index + n).argsort(1)[:, :m]  # kept features first, in feature order
        inside = keep.gather(1, order)
        best, flat = _best_pair(a.gather(1, order).masked_fill(~inside, -math.inf),
                                b.gather(1, order).masked_fill(~inside, -math.inf))
        p, q = order.gather(1, (flat // m)[:, None]).squeeze(1), order.gather(1, (flat % m)[:, None]).squeeze(1)
        # no pair scores above 0: the n² search's argmax is its first pair, (0, 0), as in torchattacks
        return torch.where(best > 0, p, 0), torch.where(best > 0, q, 0)

    def __call__(self, model, x, target, gen=None):
        with eval_mode(model):
            flat = x.flatten(1).clone()
            n = flat.shape[1]
            domain = flat < 0.99 if self.theta > 0 else flat > 0.01
            with torch.no_grad():
                num_classes = model(x[:1]).shape[1]
            goal = (target + 1) % num_classes
            active = torch.ones(len(x), dtype=torch.bool, device=x.device)
            chunk = 1024  # saliency tensors are (b, m, m) for the m features of the Pareto layers
            iterations = math.ceil(n * self.gamma / 2.0)
            for step in range(iterations + 1):
                rows = active.nonzero().squeeze(1)
                if not len(rows):
                    break
                # one forward pass per step: the prediction that stops an example, and the gradients that move it
                xa = flat[rows].clone().requires_grad_(True)
                out = model(xa.view(-1, *x.shape[1:]))
                going = (out.argmax(1) != goal[rows]) & domain[rows].any(1) & (step < iterations)
                active[rows] = going
                if not going.any():
                    break
                rows, live = rows[going], out[going]
                g_t, = torch.autograd.grad(live.gather(1, goal[rows, None]).sum(), xa, retain_graph=True)
                g_all, = torch.autograd.grad(live.sum(), xa)
                g_t, g_o = g_t[going], g_all[going] - g_t[going]
                for lo in range(0, len(rows), chunk):
                    r = rows[lo:lo + chunk]
                    p, q = self._saliency(g_t[lo:lo + chunk], g_o[lo:lo + chunk], domain[r])
                    flat[r, p] += self.theta
                    flat[r, q] += self.theta
                    flat[r] = flat[r].clamp(0, 1)
                    domain[r, p] = False
                    domain[r, q] = False
        x_adv = flat.view_as(x).detach()
        l0 = norm(x_adv - x, "l0")
        return AttackOutput(x_adv, in_box(x_adv) & (l0 <= 2 * math.ceil(n * self.gamma / 2.0)), l0)


@attack("jsma", defaults=dict(theta=1.0, gamma=1.0), budget=("gamma",), threat="pixel", norm="l0",
        library="native",
        source="Papernot et al. 2016. The paper: \"implemented based on Advertorch\", no settings; chosen: advertorch"
               " 0.2.3 JacobianSaliencyMapAttack's defaults θ = 1.0, γ = 1.0 (any number of input values; at most"
               " n/2 iterations of a pair each)",
        notes="the paper gives no target: (C(x) + 1) mod K, as torchattacks; distance = changed input values."
              " torchattacks' default γ is 0.1 (jsma[gamma=0.1]). Its adversarial images are torchattacks 3.5.1"
              " JSMA's (tests/test_attacks.py; speed: `python benchmarks/attacks.py --only jsma`)",
        header="JSMA", order=40, slow=True, white_box=True, quick="gamma=0.05")
def _jsma(theta: float, gamma: float) -> Attack:
    return JSMA(theta, gamma)
