"""Point-wise attack (Schott et al. 2019, "Towards the first adversarially robust neural network model on MNIST"),
native and batched: a salt-and-pepper start, then reset perturbed input values to the original while the image
stays adversarial, until no single reset keeps it adversarial (the attack's local minimum of the ℓ0 distance).

foolbox's `PointwiseAttack` tries one input value per forward pass, and its `SaltAndPepperNoiseAttack` start
spends all its `steps` noise draws on every image.  Here each image draws many noises per forward pass and stops
a few rounds after its first adversarial one (`salt_and_pepper`), and the reduction tests many resets per forward
pass: a random-order pass whose runs of accepted resets are found by galloping and bisection (foolbox's sequential
pass, a few queries per kept value instead of one per value), then rounds that test every single reset at once
and accept the longest adversarial run of the successful ones, most adversarial first.  Unlike foolbox's, the
search reads the model's logits (the margin) to choose noise levels and the order of resets; acceptance is by
the decision alone.  `pointwise[library=foolbox]` runs foolbox's.
"""

from __future__ import annotations

import math

import torch

from srtbench.attacks.base import Attack, AttackOutput, attack, in_box, norm
from srtbench.attacks.minimum_norm import FoolboxMinimumNorm
from srtbench.config import require
from srtbench.maximizers import eval_mode
from srtbench.neighborhoods import ExampleRNG, rand, subset

LIBRARIES = ("native", "foolbox")
CHUNK = 4096  # images per forward pass
REFINE = 6  # rounds of draws below an adversarial p: a start with fewer changed values ends with fewer (ℓ0)


def _logits(model, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(part) for part in x.split(CHUNK)]) if len(x) else x.new_zeros((0, 0))


def _margin(model, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Best other logit minus the target's: > 0 where `x` is adversarial (ties broken as argmax does)."""
    logits = _logits(model, x)
    adv = logits.argmax(1) != target
    own = logits.gather(1, target[:, None]).squeeze(1)
    other = logits.scatter(1, target[:, None], -math.inf).amax(1)
    return torch.where(adv, (other - own).clamp_min(1e-12), (other - own).clamp_max(0.0))


def _noise(x0, p, u) -> torch.Tensor:
    """Salt (1) where u >= 1 - p/2, pepper (0) where u < p/2, else x0 (foolbox's noise on [0, 1] inputs)."""
    return torch.where(u >= 1 - p / 2, torch.ones_like(x0), torch.where(u < p / 2, torch.zeros_like(x0), x0))


def salt_and_pepper(model, x, target, steps: int, gen, patience: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial salt-and-pepper noise per example (foolbox's `SaltAndPepperNoiseAttack`: noise of probability p,
    the same on every channel, increased until the image is misclassified, at most `steps` draws per image).
    Batched: each round draws L noises per image in one forward pass.  Round one tries one p per octave
    2^j / steps (j = 0 … log2 steps, up to 1); an image found adversarial draws once more between half its p and
    its p and keeps the adversarial noise with the fewest changed values; an image not yet adversarial draws
    around the p of its highest margin, until `patience` rounds bring no higher margin.  Returns (starts, found)."""
    n, dev = len(x), x.device
    octaves = torch.tensor([min(1.0, 2.0 ** j / steps) for j in range(math.ceil(math.log2(steps)) + 1)])
    size = len(octaves)
    start, found, refined = x.clone(), torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.long)
    changed = torch.full((n,), math.inf)
    best_p, best_margin = torch.ones(n), torch.full((n,), -math.inf)
    drawn, stale = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    todo = torch.arange(n)
    while len(todo):
        g = subset(gen, todo) if isinstance(gen, ExampleRNG) else gen
        jitter, u = rand((len(todo), size), g), rand((len(todo), size, 1, *x.shape[2:]), g)
        first, refine = drawn[todo] == 0, found[todo]
        p = torch.where(first[:, None], octaves * (0.5 + 0.5 * jitter), torch.where(
            refine[:, None], best_p[todo, None] * (0.5 + 0.5 * (torch.arange(size) + jitter) / size),
            best_p[todo, None] * 2.0 ** (2 * jitter - 1))).clamp(1.0 / steps, 1.0)
        x0 = x[todo.to(dev), None]
        noisy = _noise(x0, p.view(*p.shape, *[1] * (x.dim() - 1)).to(dev), u.to(dev))
        margin = _margin(model, noisy.flatten(0, 1), target[todo.to(dev)].repeat_interleave(size)).cpu().view(-1, size)
        drawn[todo] += size
        count = torch.where(margin > 0, (noisy != x0).flatten(2).sum(2).float().cpu(), math.inf)
        least, pick = count.min(1)
        better = least < changed[todo]
        rows = todo[better]
        start[rows.to(dev)] = noisy[better.to(dev), pick[better].to(dev)]
        changed[rows], found[rows], best_p[rows] = least[better], True, p[better, pick[better]]
        top, at = margin.max(1)
        rising = (top > best_margin[todo]) & ~found[todo]
        best_margin[todo[rising]], best_p[todo[rising]] = top[rising], p[rising, at[rising]]
        stale[todo] = torch.where(rising, 0, stale[todo] + 1)
        refined[todo[refine]] += 1
        todo = ((found & (refined < REFINE)) | (~found & (stale < patience) & (drawn < steps))).nonzero().squeeze(1)
    return start, found.to(dev)


def _reset(x0, xa, lo, hi, rank) -> torch.Tensor:
    """xa with the values of rank in [lo, hi) (per row) reset to x0."""
    run = (rank >= lo[:, None]) & (rank < hi[:, None])
    return torch.where(run, x0, xa)


def _longest_run(model, x0, xa, target, rank, pos, end, shape, known: int = 0) -> torch.Tensor:
    """Per row, the largest t in [pos, end] (found by bisection) such that resetting the values of rank [pos, t)
    keeps the image adversarial (t = pos + known is known to)."""
    lo, hi = pos + known, end + 1
    while True:
        open_ = (hi - lo > 1).nonzero().squeeze(1)
        if not len(open_):
            return lo
        mid = (lo[open_] + hi[open_]) // 2
        trial = _reset(x0[open_], xa[open_], pos[open_], mid, rank[open_])
        adv = _logits(model, trial.view(-1, *shape)).argmax(1) != target[open_]
        lo[open_] = torch.where(adv, mid, lo[open_])
        hi[open_] = torch.where(adv, hi[open_], mid)


def _random_pass(model, x0, xa, target, gen, shape) -> torch.Tensor:
    """One pass over the perturbed values in random order, as foolbox's: reset each value if the image stays
    adversarial.  Runs of accepted resets are found by galloping: reset the next `jump` values at once; if the
    image stays adversarial accept them and double `jump`, else bisect for the longest run, keep the value that
    ends it, and continue with `jump` set to that run's length."""
    diff = (xa - x0).abs() > 1e-6
    keys = torch.where(diff, rand(diff.shape, gen).to(x0.device), torch.full_like(x0, 2.0))
    rank = keys.argsort(1).argsort(1)  # perturbed values first, in random order
    k, pos = diff.sum(1), torch.zeros(len(x0), dtype=torch.long, device=x0.device)
    jump = (k // 16).clamp_min(1)
    while True:
        rows = (pos < k).nonzero().squeeze(1)
        if not len(rows):
            return xa
        end = torch.minimum(pos[rows] + jump[rows], k[rows])
        trial = _reset(x0[rows], xa[rows], pos[rows], end, rank[rows])
        adv = _logits(model, trial.view(-1, *shape)).argmax(1) != target[rows]
        xa[rows[adv]] = trial[adv]
        pos[rows[adv]], jump[rows[adv]] = end[adv], jump[rows[adv]] * 2
        cut = rows[~adv]
        if len(cut):
            t = _longest_run(model, x0[cut], xa[cut], target[cut], rank[cut], pos[cut], end[~adv] - 1, shape)
            xa[cut] = _reset(x0[cut], xa[cut], pos[cut], t, rank[cut])
            jump[cut] = (t - pos[cut]).clamp_min(1)
            pos[cut] = t + 1  # the value of rank t breaks the run: keep it


def _single_rounds(model, x0, xa, target, shape) -> torch.Tensor:
    """Until no single reset keeps an image adversarial (the stopping rule of Schott et al.): test every single
    reset of every image in one forward pass, order the adversarial ones by margin, accept the longest run."""
    active = torch.ones(len(x0), dtype=torch.bool, device=x0.device)
    while active.any():
        rows = active.nonzero().squeeze(1)
        diff = (xa[rows] - x0[rows]).abs() > 1e-6
        owner, value = diff.nonzero(as_tuple=True)
        trials = xa[rows][owner]
        trials[torch.arange(len(owner)), value] = x0[rows][owner, value]
        margin = _margin(model, trials.view(-1, *shape), target[rows][owner]) if len(owner) else trials[:, 0]
        ok = margin > 0
        count = torch.zeros(len(rows), dtype=torch.long, device=x0.device).index_add_(0, owner, ok.long())
        active[rows[count == 0]] = False
        keep = count > 0
        if not keep.any():
            break
        # rank of each successful reset within its image: most adversarial first, the others after them
        score = torch.full(diff.shape, -math.inf, device=x0.device)
        score[owner[ok], value[ok]] = margin[ok]
        rank = (-score).argsort(1).argsort(1)
        sel = rows[keep]
        zero = torch.zeros(len(sel), dtype=torch.long, device=x0.device)
        t = _longest_run(model, x0[sel], xa[sel], target[sel], rank[keep], zero, count[keep], shape, known=1)
        xa[sel] = _reset(x0[sel], xa[sel], zero, t, rank[keep])
    return xa


class Pointwise(Attack):
    """Native batched point-wise attack; distances are ℓ0 (changed input values), inf where no start was found."""

    minimum_norm = True

    def __init__(self, epsilon: float, init_steps: int, l2_binary_search: bool):
        self.epsilon, self.init_steps, self.l2_binary_search = epsilon, init_steps, l2_binary_search

    def __call__(self, model, x, target, gen=None):
        with eval_mode(model), torch.no_grad():
            start, found = salt_and_pepper(model, x, target, self.init_steps, gen)
            x_adv = x.clone()
            idx = found.nonzero().squeeze(1)
            if len(idx):
                shape, g = x.shape[1:], subset(gen, idx.cpu())
                x0, xa, t = x[idx].flatten(1), start[idx].flatten(1), target[idx]
                xa = _random_pass(model, x0, xa, t, g, shape)
                xa = _single_rounds(model, x0, xa, t, shape)
                if self.l2_binary_search:
                    xa = _toward_original(model, x0, xa, t, shape)
                x_adv[idx] = xa.view(-1, *shape)
        distance = torch.where(found, norm(x_adv - x, "l0"), torch.full((len(x),), math.inf, device=x.device))
        return AttackOutput(x_adv, in_box(x_adv), distance)

    at_budget = FoolboxMinimumNorm.at_budget

    @property
    def run_key(self) -> str:
        return f"{self.name}{sorted(self.params.items())}"  # the run does not depend on the budget


def _toward_original(model, x0, xa, target, shape, steps: int = 10) -> torch.Tensor:
    """foolbox's `l2_binary_search` refinement: move each remaining perturbed value toward the original by
    bisection (one value of every image per query; the ℓ0 distance does not change)."""
    diff = (xa - x0).abs() > 1e-6
    for col in range(diff.shape[1]):
        rows = diff[:, col].nonzero().squeeze(1)
        if not len(rows):
            continue
        good, bad = xa[rows, col].clone(), x0[rows, col].clone()
        for _ in range(steps):
            mid = (good + bad) / 2
            trial = xa[rows].clone()
            trial[:, col] = mid
            adv = _logits(model, trial.view(-1, *shape)).argmax(1) != target[rows]
            good, bad = torch.where(adv, mid, good), torch.where(adv, bad, mid)
        xa[rows, col] = good
    return xa


@attack("pointwise", defaults={"mnist": dict(epsilon=784.0, init_steps=1000, l2_binary_search=False,
                                             library="foolbox"),
                               "fashion-mnist": dict(epsilon=784.0, init_steps=1000, l2_binary_search=False,
                                                     library="foolbox"),
                               "cifar10": dict(epsilon=3072.0, init_steps=1000, l2_binary_search=False,
                                               library="foolbox")},
        budget=("epsilon",), threat="l0",
        library="foolbox 3.3.4 PointwiseAttack (library=native: batched, not yet as strong; benchmarks/pointwise.py)",
        minimum_norm=True,
        source="Schott et al. 2019 point-wise attack (decision-based, from a salt-and-pepper start). The paper gives"
               " no settings: counted unbounded (epsilon = every input value), i.e. an example is broken wherever an"
               " adversarial is found, as the paper's near-zero MNIST numbers suggest; not comparable with the paper's"
               " column where its budget differed",
        notes="epsilon = ℓ0 threshold in changed input values; init_steps = salt-and-pepper draws per image at most."
              " Default library=foolbox (one input value per query, ~1 image/s). library=native batches images and"
              " input values: 7-10× faster in benchmarks/pointwise.py, but on SRT its median ℓ0 was 7 against"
              " foolbox's 5 and it found one adversarial fewer in 40, so it is not the default (a faster attack must"
              " not be a weaker one); convergence of init_steps not measured",
        header="Point-wise", order=70, slow=True, quick="init_steps=200")
def _pointwise(epsilon, init_steps, l2_binary_search, library) -> Attack:
    import foolbox as fb

    require(init_steps >= 1, "pointwise init_steps must be >= 1")
    require(library in LIBRARIES, f"pointwise library must be one of {', '.join(LIBRARIES)}, got {library!r}")
    if library == "native":
        return Pointwise(epsilon, init_steps, l2_binary_search)
    # the ℓ2 refinement does not change the ℓ0 distance that is counted, and costs ~10 queries per input value
    return FoolboxMinimumNorm(lambda: fb.attacks.PointwiseAttack(l2_binary_search=l2_binary_search), "l0", epsilon,
                              init=lambda: fb.attacks.SaltAndPepperNoiseAttack(steps=init_steps))
