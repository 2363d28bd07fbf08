"""Inner maximizers: solve max_{x' ∈ N(x)} loss(f(x'), target) (Eq. (10)), for training and attacks alike.

A maximizer is called as `m(model, neighborhood, x, target, loss, done=None, gen=None)` and returns
the per-example parameters θ of the point it found (x' = neighborhood.apply(x, θ)).

- `loss(logits, target) -> (B,)` is the per-example objective: CE to y (AT, attacks), CE to the model's
  own prediction C(x) (RT/SRT, Eq. (10)), KL to the clean output (TRADES, KLR) ...
- `done(logits, target) -> (B,) bool`, when given, marks examples already broken: they are frozen at
  the first iterate that broke them and not attacked further (evaluation's early stop).
- The model runs in eval mode (its mode is restored afterwards) and gradients are taken with respect
  to θ alone, so nothing leaks into the model's parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srtbench.config import require
from srtbench.errors import SrtbenchError
from srtbench.neighborhoods import Neighborhood, Params, Solve, assign, detach, index, randn, subset
from srtbench.registry import Registry

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

MAXIMIZERS: Registry = Registry("maximizer")

# Largest number of images one forward pass of a candidate search takes; on 2 CPU cores batches above
# ~1000 images get slower per image (measured), and GPUs are far from full at 1024 for small models.
SEARCH_BATCH = 1024


# ---------------------------------------------------------------- objectives


def predict(model: nn.Module, x: torch.Tensor, batch_size: int | None = None,
            device: torch.device | None = None) -> torch.Tensor:
    """C(x) = argmax f(x), in eval mode without gradient (the official code's choice): in chunks of `batch_size`
    (all at once by default), computed on `device` (default: x's) and returned on x's device."""
    on, size = device or x.device, batch_size or max(len(x), 1)
    with eval_mode(model), torch.no_grad():
        parts = [model(x[i:i + size].to(on)).argmax(1).to(x.device) for i in range(0, len(x), size)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=x.device)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target, reduction="none")


def cw_margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Carlini & Wagner's margin, untargeted: max_{i ≠ t} z_i − z_t (> 0 iff the prediction left t)."""
    true = logits.gather(1, target[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(target, logits.shape[1]).bool(), -float("inf"))
    return others.amax(1) - true


def kl_to_clean(logits: torch.Tensor, clean_probs: torch.Tensor) -> torch.Tensor:
    """KL(p_clean ‖ softmax(logits)) per example (TRADES' inner objective)."""
    return F.kl_div(F.log_softmax(logits, 1), clean_probs, reduction="none").sum(1)


def misclassified(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return logits.argmax(1) != target


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode while the block runs; afterwards every module's own mode again.  (Restoring with
    `model.train(was_training)` would spread a wrapper's mode to what it wraps: a counting or EOT wrapper, created in
    train mode around a model in eval mode, would leave that model's dropout on.)"""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


# ---------------------------------------------------------------- first-order: PGD / FGSM / FGSM-RS


@MAXIMIZERS.register("pgd", source="Madry et al. 2018; Algorithm 1")
@dataclass
class PGD:
    """K ascent steps of size α, projected back into N(x) after each (Algorithm 1).

    `start`: 'none' (x itself), 'uniform' (uniform in the budget) or 'normal' (x + 0.001·N(0, I), the
    official SRT/TRADES code's start).  `keep_best` returns, per example, the iterate of highest loss
    (or the first that broke it) instead of the last one; it costs one extra forward pass.
    """

    steps: int = 10
    step_size: float = 0.01
    start: str = "normal"
    keep_best: bool = False

    def __post_init__(self):
        require(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        require(self.step_size >= 0, f"step_size must be >= 0, got {self.step_size}")
        require(self.start in ("none", "uniform", "normal"), f"unknown start {self.start!r}")

    def initial(self, neighborhood: Neighborhood, x: torch.Tensor, gen) -> Params:
        if self.start == "uniform":
            return neighborhood.sample(x, gen)
        theta = neighborhood.identity(x)
        if self.start == "normal":
            theta = _add_noise(theta, 0.001, gen)
        return neighborhood.project(theta, x)

    def direction(self, grad: Params, state: dict) -> Params:
        return grad

    def __call__(self, model, neighborhood, x, target, loss, done=None, gen=None) -> Params:
        with eval_mode(model):
            theta = self.initial(neighborhood, x, gen)
            best = detach(theta) if (self.keep_best or done is not None) else None
            best_loss = torch.full((len(x),), -float("inf"), device=x.device)
            active = torch.arange(len(x), device=x.device)
            state: dict = {}
            for k in range(self.steps + (1 if best is not None else 0)):
                th = _requires_grad(index(theta, active))
                logits = model(neighborhood.apply(x[active], th))
                values = loss(logits, target[active])
                keep = None
                if best is not None:
                    improved = values.detach() > best_loss[active]
                    if done is not None:
                        broken = done(logits.detach(), target[active])
                        improved, keep = improved | broken, ~broken
                    sel = active[improved]
                    best = assign(best, sel, index(detach(th), improved))
                    best_loss[sel] = values.detach()[improved]
                if k == self.steps or (keep is not None and not keep.any()):
                    break  # the extra pass only scored the last iterate, or every example is broken
                if not values.requires_grad:
                    raise SrtbenchError(
                        "the model's output has no gradient with respect to its input, so gradient attacks "
                        "cannot run on it (a sign of gradient masking); use randadv, gridadv or autoattack's Square"
                    )
                leaves = _leaves(th)
                # a zero budget can leave θ out of the graph (blur with σ_max = 0 is the identity): no step then
                grad = [torch.zeros_like(t) if g is None else g
                        for g, t in zip(torch.autograd.grad(values.sum(), leaves, allow_unused=True), leaves)]
                grad, th = (tuple(grad) if isinstance(th, tuple) else grad[0]), detach(th)
                if keep is not None:
                    active, th, grad = active[keep], index(th, keep), index(grad, keep)
                    state = {key: v[keep] for key, v in state.items()}
                stepped = neighborhood.step(th, self.direction(grad, state), self.step_size)
                theta = assign(theta, active, neighborhood.project(stepped, x[active]))
            return best if best is not None else detach(theta)


@MAXIMIZERS.register("mi-fgsm", source="Dong et al. 2018, momentum iterative FGSM")
@dataclass
class MIFGSM(PGD):
    """PGD whose step follows g_{t+1} = μ·g_t + ∇/‖∇‖₁ (Dong et al. 2018, Eq. (6)); starts at x."""

    decay: float = 1.0
    start: str = "none"

    def direction(self, grad, state):
        if isinstance(grad, tuple):
            raise TypeError("mi-fgsm takes a single (pixel or spatial) neighborhood")
        g = grad / grad.flatten(1).abs().sum(1).clamp_min(1e-12).view(-1, *[1] * (grad.dim() - 1))
        state["g"] = self.decay * state["g"] + g if "g" in state else g
        return state["g"]


@MAXIMIZERS.register("fgsm", source="Goodfellow et al. 2015")
def fgsm(epsilon: float) -> PGD:
    return PGD(steps=1, step_size=epsilon, start="none")


@MAXIMIZERS.register("fgsm-rs", source="Wong et al. 2020; Algorithm 2 (α = 1.25ε)")
def fgsm_rs(epsilon: float, alpha_factor: float = 1.25) -> PGD:
    return PGD(steps=1, step_size=alpha_factor * epsilon, start="uniform")


def _add_noise(theta: Params, sigma: float, gen) -> Params:
    if isinstance(theta, tuple):
        return tuple(_add_noise(t, sigma, gen) for t in theta)
    return theta + sigma * randn(theta.shape, gen).to(theta.device)


def _requires_grad(theta: Params) -> Params:
    if isinstance(theta, tuple):
        return tuple(_requires_grad(t) for t in theta)
    return theta.detach().requires_grad_(True)


def _leaves(theta: Params) -> list[torch.Tensor]:
    if isinstance(theta, tuple):
        return [leaf for t in theta for leaf in _leaves(t)]
    return [theta]


# ---------------------------------------------------------------- zeroth-order: candidate search


def _search(model, neighborhood, x, target, loss, done, candidates, n_candidates: int) -> Params:
    """Evaluate n_candidates parameter settings per example, keep the worst (highest-loss) one.

    `candidates(rows, lo, hi)` gives θ for examples `rows` and candidates lo..hi-1, laid out example-major
    (len(rows)·(hi-lo) entries).  Examples that `done` marks broken keep the first breaking candidate
    and drop out of later chunks, so a robust model costs the full search and a broken one much less.
    """
    with eval_mode(model), torch.no_grad():
        best = neighborhood.identity(x)
        best_loss = torch.full((len(x),), -float("inf"), device=x.device)
        active = torch.arange(len(x), device=x.device)
        lo = 0
        while lo < n_candidates and len(active):
            chunk = max(1, min(n_candidates - lo, SEARCH_BATCH // len(active)))
            rows = active
            theta = candidates(rows, lo, lo + chunk)
            xs = x[rows].repeat_interleave(chunk, 0)
            logits = model(neighborhood.apply(xs, theta))
            values = loss(logits, target[rows].repeat_interleave(chunk, 0)).view(len(rows), chunk)
            if done is not None:
                broken = done(logits, target[rows].repeat_interleave(chunk, 0)).view(len(rows), chunk)
                # a broken candidate outranks any loss; among several take the first
                values = torch.where(broken, torch.full_like(values, float("inf")), values)
            top, arg = values.max(1)
            improved = top > best_loss[rows]
            pick = torch.arange(len(rows), device=x.device) * chunk + arg
            best = assign(best, rows[improved], index(theta, pick[improved]))
            best_loss[rows[improved]] = top[improved]
            if done is not None:
                active = rows[~torch.isinf(top)]
            lo += chunk
        return best


@MAXIMIZERS.register("random", source="Engstrom et al. 2019 Worst-of-k / RandAdv")
@dataclass
class RandomSearch:
    """Worst of k uniform samples of N(x): Worst-of-k (k = 10) in training, RandAdv in evaluation."""

    k: int = 10

    def __post_init__(self):
        require(self.k >= 1, f"k must be >= 1, got {self.k}")

    def __call__(self, model, neighborhood, x, target, loss, done=None, gen=None) -> Params:
        # every draw is made up front, so the draws do not depend on which examples break early
        draws = [neighborhood.sample(x, gen) for _ in range(self.k)]

        def candidates(rows, lo, hi):
            per = [index(draws[j], rows) for j in range(lo, hi)]
            if isinstance(per[0], tuple):
                return tuple(torch.stack(parts, 1).flatten(0, 1) for parts in zip(*per))
            return torch.stack(per, 1).flatten(0, 1)

        return _search(model, neighborhood, x, target, loss, done, candidates, self.k)


@MAXIMIZERS.register("grid", source="Engstrom et al. 2019 GridAdv; Appendix B grid of 31 × 5 × 5")
@dataclass
class GridSearch:
    """Exhaustive search over a neighborhood's `grid()` of parameters (spatial: 775 transforms by default; blur:
    values of σ)."""

    def __call__(self, model, neighborhood, x, target, loss, done=None, gen=None) -> Params:
        grid = neighborhood.grid()
        if grid is None:
            raise TypeError(f"grid search needs a neighborhood that offers a grid, got {neighborhood.name}")
        grid = grid.to(x.device)

        def candidates(rows, lo, hi):
            return grid[lo:hi].repeat(len(rows), 1)

        return _search(model, neighborhood, x, target, loss, done, candidates, len(grid))


# ---------------------------------------------------------------- compound: one maximizer per part


@dataclass
class Sequential:
    """Maximize a `Compound` part by part, in its order: stage i solves max over part i around the
    output of the stages before it (Appendix F: PGD then GridAdv for PGD+ / AT+ / SRT+, GridAdv then
    PGD for GridAdv+).  With `done`, examples broken by an early stage skip the later ones."""

    stages: tuple

    def __call__(self, model, neighborhood, x, target, loss, done=None, gen=None) -> Params:
        parts = neighborhood.chain()
        if len(parts) != len(self.stages) or len(parts) < 2:
            raise TypeError("Sequential needs a Compound neighborhood with one part per stage")
        thetas, cur = [], x
        active = torch.ones(len(x), dtype=torch.bool, device=x.device)
        for part, stage in zip(parts, self.stages):
            theta = part.identity(cur)
            rows = active.nonzero().squeeze(1)
            if len(rows):
                theta = assign(theta, rows, stage(model, part, cur[rows], target[rows], loss, done, subset(gen, rows)))
            thetas.append(theta)
            cur = part.apply(cur, theta).detach()
            if done is not None and len(rows):
                with eval_mode(model), torch.no_grad():
                    active[rows] = ~done(model(cur[rows]), target[rows])
        return tuple(thetas)


@MAXIMIZERS.register("sequential", source="Appendix F: a compound's parts, each by its own maximizer, in order")
def sequential(stages: tuple[Solve, ...]) -> Sequential:
    return Sequential(tuple(build(stage) for stage in stages))


def build(solve: Solve):
    """The maximizer a neighborhood names for itself (`train_solver`, `attack_solver`): MAXIMIZERS[name](**args)."""
    return MAXIMIZERS.get(solve.name)(**solve.args)
