"""JSMA (Papernot et al. 2016): a batched re-implementation, checked against torchattacks in the tests."""

from __future__ import annotations

import math

import torch

from srtbench.attacks.base import Attack, AttackOutput, attack, in_box, norm, same
from srtbench.config import require
from srtbench.maximizers import eval_mode

CANDIDATES = 64  # features whose pairs are scored first (the best pair of all lies among them, or all are scored)


def _best_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(best score, flat index p·m + q) over pairs p ≠ q of relu(a_p + a_q)·relu(b_p + b_q), first in row-major
    order among equals (torch.argmax returns the first maximum)."""
    score = (a[:, None, :] + a[:, :, None]).clamp_(min=0)
    score.mul_((b[:, None, :] + b[:, :, None]).clamp_(min=0))
    score.diagonal(dim1=1, dim2=2).zero_()  # a feature does not pair with itself
    flat = score.view(len(a), -1).argmax(1)
    return score.view(len(a), -1).gather(1, flat[:, None]).squeeze(1), flat


class JSMA(Attack):
    """Jacobian saliency map attack (Papernot et al. 2016, Eqs. (8)-(10)), pairs of features.

    The same algorithm as torchattacks.JSMA (target (y + 1) mod K, θ added to the two features of the
    highest saliency, at most ceil(γ·n / 2) iterations, stop at the target), but batched over images and
    with 2 backward passes per step (target logit and sum of logits) instead of K per image.
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
        pushed out of the conditions.  No pair with feature p scores above relu(a_p + max a)·relu(b_p + max b), so
        the pairs among the CANDIDATES features of highest bound are scored exactly, and where the best of them
        beats every other feature's bound it is the best pair of all (the same pair, ties included, as scoring all
        n² pairs); elsewhere all n² pairs are scored.
        """
        sign = 1.0 if self.theta > 0 else -1.0
        coef = 2.0 * (~domain).float() * sign
        a = (grad_t - coef * grad_t.abs().amax(1, keepdim=True)).mul_(sign)
        b = (grad_o + coef * grad_o.abs().amax(1, keepdim=True)).mul_(-sign)
        n = a.shape[1]
        k = min(n, CANDIDATES)
        bound = (a + a.amax(1, keepdim=True)).clamp_(min=0) * (b + b.amax(1, keepdim=True)).clamp_(min=0)
        top = bound.topk(min(n, k + 1), dim=1)
        cand = top.indices[:, :k].sort(1).values  # in feature order: row-major ties break as over all pairs
        value, flat = _best_pair(a.gather(1, cand), b.gather(1, cand))
        p, q = cand.gather(1, (flat // k)[:, None]).squeeze(1), cand.gather(1, (flat % k)[:, None]).squeeze(1)
        if k < n:
            unsure = (value <= top.values[:, k]).nonzero().squeeze(1)
            for lo in range(0, len(unsure), max(1, 2**24 // (n * n))):
                rows = unsure[lo:lo + max(1, 2**24 // (n * n))]
                _, flat = _best_pair(a[rows], b[rows])
                p[rows], q[rows] = flat // n, flat % n
        return p, q

    def __call__(self, model, x, target, gen=None):
        num_classes = None
        with eval_mode(model):
            flat = x.flatten(1).clone()
            n = flat.shape[1]
            domain = flat < 0.99 if self.theta > 0 else flat > 0.01
            with torch.no_grad():
                logits = model(x)
            num_classes = logits.shape[1]
            goal = (target + 1) % num_classes
            active = (logits.argmax(1) != goal) & domain.any(1)
            chunk = 1024  # saliency tensors are (b, CANDIDATES, CANDIDATES), (b, n, n) where uncertified
            for _ in range(math.ceil(n * self.gamma / 2.0)):
                rows = active.nonzero().squeeze(1)
                if not len(rows):
                    break
                xa = flat[rows].clone().requires_grad_(True)
                out = model(xa.view(-1, *x.shape[1:]))
                g_t, = torch.autograd.grad(out.gather(1, goal[rows, None]).sum(), xa, retain_graph=True)
                g_all, = torch.autograd.grad(out.sum(), xa)
                for lo in range(0, len(rows), chunk):
                    r = rows[lo:lo + chunk]
                    p, q = self._saliency(g_t[lo:lo + chunk], (g_all - g_t)[lo:lo + chunk], domain[r])
                    flat[r, p] += self.theta
                    flat[r, q] += self.theta
                    flat[r] = flat[r].clamp(0, 1)
                    domain[r, p] = False
                    domain[r, q] = False
                with torch.no_grad():
                    pred = model(flat[rows].view(-1, *x.shape[1:])).argmax(1)
                active[rows] = (pred != goal[rows]) & domain[rows].any(1)
        x_adv = flat.view_as(x).detach()
        l0 = norm(x_adv - x, "l0")
        return AttackOutput(x_adv, in_box(x_adv) & (l0 <= 2 * math.ceil(n * self.gamma / 2.0)), l0)


@attack("jsma", defaults=same(dict(theta=1.0, gamma=1.0)), budget=("gamma",), threat="l0",
        library="native (checked against torchattacks 3.5.1 JSMA)",
        source="Papernot et al. 2016. The paper: \"implemented based on Advertorch\", no settings; chosen: advertorch"
               " 0.2.3 JacobianSaliencyMapAttack's defaults θ = 1.0, γ = 1.0 (any number of input values; at most"
               " n/2 iterations of a pair each)",
        notes="the paper gives no target: (C(x) + 1) mod K, as torchattacks; distance = changed input values."
              " torchattacks' default γ is 0.1 (jsma[gamma=0.1])",
        header="JSMA", order=40, slow=True, white_box=True, quick="gamma=0.05")
def _jsma(theta: float, gamma: float) -> Attack:
    return JSMA(theta, gamma)
