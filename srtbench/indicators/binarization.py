"""The binarization test (Zimmermann et al., NeurIPS 2022): can the attack find an adversarial example where one
provably exists?

For each example x, the model's last `nn.Linear` is replaced by a binary readout on its penultimate features h:
among points sampled from the attack's threat set, the one whose features lie farthest from h(x), x*, is made the
only adversarial sample: the readout is w·h − t with w = h(x*) − h(x) and t halfway between w·h(x*) and the largest
w·h of x and every other sample (the bisector of h(x) and h(x*) where another sample lies beyond x*).  The clean
point keeps its label and x* lies inside the threat set, so an adversarial example exists; an attack that misses
it fails the test on x.  An attack that passes on fewer than 95% of examples is unreliable on that model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from srtbench.attacks import BuiltAttack
from srtbench.attacks.eot import vote
from srtbench.maximizers import eval_mode
from srtbench.neighborhoods import ExampleRNG, Neighborhood, PixelBall

CANDIDATES = 64  # points sampled from the threat set per example, among which x* is chosen
FEASIBLE_PASSES = 9  # passes whose majority must keep x and flip x* (all agree on a deterministic model)


def readout(model: nn.Module) -> nn.Linear | None:
    """The model's last `nn.Linear` in module order (None if it has none)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


@contextlib.contextmanager
def captured(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """The inputs of `layer` in every forward pass while the block runs (with their graph)."""
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        yield seen
    finally:
        handle.remove()


def applicable(model: nn.Module, x: torch.Tensor) -> str:
    """"" where the test applies: the model's output is its last nn.Linear's (not scaled, not a softmax of it);
    otherwise why not."""
    layer = readout(model)
    if layer is None:
        return "the model has no nn.Linear layer"
    with eval_mode(model), torch.no_grad(), captured(layer) as seen:
        out = model(x)
    if len(seen) != 1 or not torch.allclose(layer(seen[0]), out, rtol=1e-4, atol=1e-4):
        return "the model's output is not its last nn.Linear's (a transform follows it)"
    return ""


class Binarized(nn.Module):
    """`model` with its readout replaced by w·h − t for class `adversarial` against 0 for the clean class; every
    other class stays below both (the attack may use any loss over the model's usual number of classes)."""

    def __init__(self, model: nn.Module, w: torch.Tensor, t: float, clean: int, adversarial: int, classes: int):
        super().__init__()
        self.model, self.layer = model, readout(model)
        self.w, self.t, self.clean, self.adversarial, self.classes = w, t, clean, adversarial, classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with captured(self.layer) as seen:
            self.model(x)
        r = seen[-1].flatten(1) @ self.w - self.t
        low = torch.minimum(r, torch.zeros_like(r)) - 1
        columns = [r if k == self.adversarial else torch.zeros_like(r) if k == self.clean else low
                   for k in range(self.classes)]
        return torch.stack(columns, 1)


def features(model: nn.Module, x: torch.Tensor, passes: int) -> torch.Tensor:
    """Penultimate features (B, D), averaged over `passes` passes of a model that is random at inference."""
    with eval_mode(model), torch.no_grad(), captured(readout(model)) as seen:
        for _ in range(passes):
            model(x)
    return torch.stack([s.flatten(1) for s in seen]).mean(0)


def threat_set(atk: BuiltAttack) -> Neighborhood | None:
    """Where the attack searches: a neighborhood attack's own, a library attack's ℓ∞/ℓ2 ball, else None."""
    own = getattr(atk.algorithm, "neighborhood", None)
    if own is not None:
        return own
    if atk.info.threat == "pixel" and atk.info.norm in ("linf", "l2") and "epsilon" in atk.budget:
        return PixelBall(float(atk.budget["epsilon"]), atk.info.norm)
    return None


def candidates(nb: Neighborhood, x: torch.Tensor, gen: ExampleRNG) -> torch.Tensor:
    """CANDIDATES points of N(x) for one example x (1, ...): for an ℓ∞ ball its corners (the farthest points),
    else uniform draws."""
    many = x.expand(CANDIDATES, *x.shape[1:])
    rows = ExampleRNG(0, (), [gen.generators[0]] * CANDIDATES)
    if isinstance(nb, PixelBall) and nb.norm == "linf":
        signs = torch.stack([torch.randint(0, 2, x.shape[1:], generator=g) for g in rows.generators]) * 2 - 1
        return nb.apply(many, nb.project(nb.epsilon * signs.to(x), many)).detach()
    return nb.apply(many, nb.sample(many, rows)).detach()


@dataclass
class Outcome:
    """Per example of the test: a readout could be built (`feasible`), and the attack found the adversarial
    region (`passed`, False where infeasible)."""

    feasible: torch.Tensor
    passed: torch.Tensor


def _binarized(model, x, cand, clean: int, classes: int, passes: int) -> Binarized | None:
    h0, hs = features(model, x, passes)[0], features(model, cand, passes)
    far = int((hs - h0).norm(dim=1).argmax())
    w = hs[far] - h0
    s0, scores = float(w @ h0), hs @ w
    top = float(scores[far])
    others = torch.cat([scores[:far], scores[far + 1:]])
    beyond = float(others.max()) if len(others) else -float("inf")
    if top - s0 <= 1e-6 * (abs(s0) + 1):  # the features do not move inside the threat set
        return None
    t = (top + max(s0, beyond)) / 2 if beyond < top else (top + s0) / 2
    b = Binarized(model, w, t, clean, (clean + 1) % classes, classes)
    # the readout must keep x and flip x*, by a majority of fresh passes (a random model's single pass may not)
    both = torch.cat([x, cand[far:far + 1]])
    pred = vote(b, both, torch.full((2,), clean, device=x.device), FEASIBLE_PASSES, 2, x.device)
    return b if int(pred[0]) == clean and int(pred[1]) != clean else None


def binarization_test(model: nn.Module, atk: BuiltAttack, x: torch.Tensor, clean: torch.Tensor, index: torch.Tensor,
                      seed: int, classes: int) -> Outcome:
    """The test on each example of `x` (with its clean prediction and its index in the test set, which seeds its
    draws as the evaluation's do), one example at a time (each has its own readout)."""
    nb = threat_set(atk)
    feasible = torch.zeros(len(x), dtype=torch.bool)
    passed = torch.zeros(len(x), dtype=torch.bool)
    passes = max(1, atk.eot)
    for i in range(len(x)):
        xi, gen = x[i:i + 1], ExampleRNG(seed, [int(index[i])])
        b = _binarized(model, xi, candidates(nb, xi, gen), int(clean[i]), classes, passes)
        if b is None:
            continue
        feasible[i] = True
        target = clean[i:i + 1]
        out = atk.at_budget(atk(b, xi, target, ExampleRNG(seed, [int(index[i])])), xi)
        if atk.eot > 1:
            pred = vote(b, out.x_adv, target, atk.eot, 1, xi.device)
        else:
            with eval_mode(b), torch.no_grad():
                pred = b(out.x_adv).argmax(1)
        passed[i] = bool(out.inside[0]) and int(pred[0]) != int(target[0])
    return Outcome(feasible, passed)
