"""What the native re-implementations share with their libraries beyond outcomes (tests/test_attacks.py compares
those): JSMA's pair search over Pareto layers is the n² search, per example; point-wise ends where foolbox's does, at an
adversarial that no single reset keeps adversarial."""

from __future__ import annotations

import torch

from srtbench.attacks import build
from srtbench.attacks.jsma import JSMA, _best_pair
from srtbench.neighborhoods import ExampleRNG

DATASET = "fashion-mnist"


def _brute_force(theta, grad_t, grad_o, domain):
    """torchattacks' saliency map (Eqs. (8)-(10)) scored over all n² pairs, as written there."""
    sign = 1.0 if theta > 0 else -1.0
    coef = 2.0 * (~domain).float() * sign
    a = (grad_t - coef * grad_t.abs().amax(1, keepdim=True)) * sign
    b = (grad_o + coef * grad_o.abs().amax(1, keepdim=True)) * -sign
    _, flat = _best_pair(a, b)
    n = a.shape[1]
    return flat // n, flat % n


def test_jsma_pair_search_is_the_full_pair_search():
    """Over random gradients (ties at zero, identical points, empty domains, one sign dominating) the search over
    the Pareto layers picks the pair the n² search picks, first in row-major order among equals."""
    gen = torch.Generator().manual_seed(0)
    n = 300
    grad_t = torch.randn(64, n, generator=gen)
    grad_o = -grad_t + 0.5 * torch.randn(64, n, generator=gen)  # correlated, as a target and its rivals are
    grad_o[:8] = grad_t[:8].abs()  # no pair with α > 0 > β: the n² argmax is pair (0, 0)
    grad_t[8:16] = grad_t[8:16].round()  # many exact ties
    grad_o[20:40] = grad_t[20:40] + 0.3 * torch.randn(20, n, generator=gen)  # bounds far above the best pair
    grad_t[40:48], grad_o[40:48] = grad_t[40:48].round(), (0.5 * grad_t[40:48]).round()  # many identical points
    grad_o[48:56] = grad_t[48:56].abs() * 0.01 - 0.02  # a few positive pairs among many dominated features
    grad_t[56:64], grad_o[56:64] = -1.0, 1.0  # every feature alike, but two: the best pair is two identical points
    grad_t[56:64, [5, 9]], grad_o[56:64, [5, 9]] = 1.0, -1.0
    domain = torch.rand(64, n, generator=gen) < 0.7
    domain[16:20] = False
    domain[56:64] = True
    for theta in (1.0, -1.0):
        ours = JSMA(theta, 1.0)._saliency(grad_t.clone(), grad_o.clone(), domain)
        assert all(torch.equal(o, r) for o, r in zip(ours, _brute_force(theta, grad_t, grad_o, domain)))


def test_jsma_outcomes_do_not_depend_on_the_batch(trained_cnn, test_batch):
    x, y = test_batch[0][:6], test_batch[1][:6]
    atk = build("jsma[gamma=0.1]", DATASET)
    whole = atk(trained_cnn, x, y).x_adv
    assert torch.equal(whole[3:], atk(trained_cnn, x[3:], y[3:]).x_adv)


def test_native_pointwise_adversarials_are_minimal(trained_cnn, test_batch):
    """foolbox's stopping rule holds for every image: resetting any one changed value makes it classified again."""
    x = test_batch[0][16:20]
    with torch.no_grad():
        pred = trained_cnn(x).argmax(1)
    out = build("pointwise[library=native]", DATASET)(trained_cnn, x, pred, ExampleRNG(0, range(4)))
    for i in torch.isfinite(out.distance).nonzero().squeeze(1).tolist():
        changed = ((out.x_adv[i] - x[i]).abs() > 1e-6).flatten().nonzero().squeeze(1)
        trials = out.x_adv[i].flatten().repeat(len(changed), 1)
        trials[torch.arange(len(changed)), changed] = x[i].flatten()[changed]
        with torch.no_grad():
            assert (trained_cnn(trials.view(-1, *x.shape[1:])).argmax(1) == pred[i]).all()
