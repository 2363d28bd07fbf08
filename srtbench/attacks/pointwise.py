"""Point-wise attack (Schott et al. 2019, "Towards the first adversarially robust neural network model on MNIST"),
native and batched: a salt-and-pepper start, then reset perturbed input values to the original while the image
stays adversarial, until no single reset keeps it adversarial (the attack's local minimum of the ℓ0 distance).

foolbox's `PointwiseAttack` tries one input value of every image per forward pass, and its
`SaltAndPepperNoiseAttack` start spends all its `steps` noise draws on every image, most of them searching for a
start with few changed values (a smaller start ends smaller).  Here (1) `salt_and_pepper` draws one noise per
octave of p for every image in one forward pass and, for an image none of them breaks, climbs the margin by
mutating its most adversarial noise; (2) `_pass` is foolbox's random-order pass with runs of accepted resets found
by galloping and bisection (a few queries per kept value instead of one per value); (3) `_local_search` spends
the queries foolbox spends on the start on the reduced adversarial instead: add fresh noise, reduce again trying
the old values first, keep what is smaller; (4) `_single_rounds` tests every single reset at once until none keeps
the image adversarial (foolbox's stopping rule).  Unlike foolbox's, the search reads the model's logits (the
margin) to pick noises and the order of resets; acceptance is by the decision alone.  Every draw is per example:
an image's result does not depend on the others in its batch.  `pointwise[library=foolbox]` runs foolbox's.
"""

from __future__ import annotations

import math

import torch

from srtbench.attacks.base import Attack, AttackOutput, attack, in_box, norm
from srtbench.attacks.minimum_norm import FoolboxMinimumNorm
from srtbench.config import require
from srtbench.maximizers import eval_mode
from srtbench.neighborhoods import rand, subset

LIBRARIES = ("native", "foolbox")
CHUNK = 256  # images per forward pass (on a CPU, SmallCNN costs twice as much per image from 512 on)
PATIENCE = 5  # rounds without a higher margin before a start search gives up on an image
MUTATE = 0.25  # fraction of the values a start search redraws per mutant
IMPROVE = 8  # rounds of the local search after the first reduction
EXTRA = 2.0  # fresh noise per local-search round: about EXTRA × the image's changed values


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


def salt_and_pepper(model, x, target, steps: int, gen, patience: int = PATIENCE) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial salt-and-pepper noise per example (foolbox's `SaltAndPepperNoiseAttack`: noise of probability p,
    the same on every channel, at most `steps` draws per image), batched: round one draws one noise per octave
    p = 2^j / steps (j = 0 … log2 steps, up to 1) for every image in one forward pass and keeps the adversarial one
    with the fewest changed values.  An image none of them breaks climbs the margin: each round redraws a fraction
    MUTATE of the values of its most adversarial noise so far (L mutants, p within a factor 2 of that noise's)
    and keeps the best, until one is adversarial, `steps` draws are spent, or `patience` rounds bring no higher
    margin.  Returns (starts, found)."""
    n, dev, plane = len(x), x.device, (1, *x.shape[2:])
    octaves = torch.tensor([min(1.0, 2.0 ** j / steps) for j in range(math.ceil(math.log2(steps)) + 1)])
    size = len(octaves)
    p = (octaves * (0.5 + 0.5 * rand((n, size), gen))).clamp(1.0 / steps, 1.0)
    noisy = _noise(x[:, None], _expand(p, x).to(dev), rand((n, size, *plane), gen).to(dev))
    pick, found, at, score = _draws(model, x, target, noisy)
    every = torch.arange(n)
    start = torch.where(_expand(found, x).to(dev), noisy[every, pick.to(dev)], x)
    state, state_p = noisy[every, at.to(dev)], p[every, at]
    drawn, stale = torch.full((n,), size), torch.zeros(n, dtype=torch.long)
    todo = (~found).nonzero().squeeze(1)
    while len(todo):
        g, rows, r = subset(gen, todo), todo.to(dev), torch.arange(len(todo))
        p = (state_p[todo, None] * 2.0 ** (2 * rand((len(todo), size), g) - 1)).clamp(1.0 / steps, 1.0)
        fresh = _noise(x[rows, None], _expand(p, x).to(dev), rand((len(todo), size, *plane), g).to(dev))
        mutants = torch.where(rand((len(todo), size, *plane), g).to(dev) < MUTATE, fresh, state[rows, None])
        pick, hit, at, top = _draws(model, x[rows], target[rows], mutants)
        start[rows[hit.to(dev)]], found[todo[hit]] = mutants[r[hit], pick[hit]], True
        rising = top > score[todo]
        up = todo[rising]
        state[up.to(dev)], state_p[up] = mutants[r[rising], at[rising]], p[r[rising], at[rising]]
        score[up] = top[rising]
        stale[todo] = torch.where(rising, 0, stale[todo] + 1)
        drawn[todo] += size
        todo = todo[~hit & (stale[todo] < patience) & (drawn[todo] < steps)]
    return start, found.to(dev)


def _expand(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`t` (per example, or per example and draw) shaped to broadcast over the images of `x`."""
    return t.view(*t.shape, *[1] * (x.dim() - 1))


def _draws(model, x, target, noisy) -> tuple[torch.Tensor, ...]:
    """For L noisy images per example (B, L, ...): the adversarial one with the fewest changed values (index, and
    whether there is one) and the one of highest margin (index, margin); all on the CPU."""
    size = noisy.shape[1]
    margin = _margin(model, noisy.flatten(0, 1), target.repeat_interleave(size)).view(-1, size).cpu()
    count = torch.where(margin > 0, (noisy != x[:, None]).flatten(2).sum(2).float().cpu(), math.inf)
    least, pick = count.min(1)
    top, at = margin.max(1)
    return pick, torch.isfinite(least), at, top


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


def _pass(model, x0, xa, target, keys, shape) -> torch.Tensor:
    """One pass over the perturbed values in the order of `keys` (foolbox's pass, in random order): reset each
    value if the image stays adversarial.  Runs of accepted resets are found by galloping: reset the next `jump`
    values at once; if the image stays adversarial accept them and double `jump`, else bisect for the longest run
    (accepting as it goes), keep the value that ends it, and gallop on with `jump` set to that run's length.  One
    forward pass per step tests one run of every image, galloping or bisecting."""
    diff = (xa - x0).abs() > 1e-6
    rank = torch.where(diff, keys.to(x0.device), math.inf).argsort(1).argsort(1)  # perturbed values first
    dev = x0.device
    k, pos = diff.sum(1), torch.zeros(len(x0), dtype=torch.long, device=dev)
    jump = (k // 16).clamp_min(1)
    hi = torch.full_like(k, -1)  # bisecting rows: resetting [pos, hi) breaks the adversarial; -1: galloping
    run = torch.zeros_like(k)  # values accepted since the current run began
    while True:
        rows = (pos < k).nonzero().squeeze(1)
        if not len(rows):
            return xa
        p, h = pos[rows], hi[rows]
        bisect = h >= 0
        end = torch.where(bisect, (p + h) // 2, torch.minimum(p + jump[rows], k[rows]))
        trial = _reset(x0[rows], xa[rows], p, end, rank[rows])
        adv = _logits(model, trial.view(-1, *shape)).argmax(1) != target[rows]
        xa[rows[adv]] = trial[adv]
        run[rows] = torch.where(adv, run[rows] + end - p, run[rows])
        pos[rows] = torch.where(adv, end, p)
        jump[rows] = torch.where(adv & ~bisect, jump[rows] * 2, jump[rows])
        hi[rows] = torch.where(adv, h, end)  # a failed gallop bisects [pos, end); a failed bisection step halves it
        # a run ends where its next value alone breaks the adversarial: keep that value, gallop on
        ended = rows[(hi[rows] >= 0) & (hi[rows] - pos[rows] <= 1)]
        pos[ended] += 1
        jump[ended], run[ended], hi[ended] = run[ended].clamp_min(1), 0, -1


def _local_search(model, x0, xa, target, gen, shape, rounds: int) -> torch.Tensor:
    """Iterated local search on the ℓ0 distance: add fresh salt-and-pepper noise (about EXTRA × the image's changed
    values) to each adversarial, reduce it again in a random order that tries its old values first, and keep the
    result where it changes fewer values.  A start with fewer changed values ends with fewer: foolbox spends its
    1000 draws on finding a small start; these rounds find smaller adversarials from the one at hand."""
    n, dim = x0.shape
    for _ in range(rounds):
        changed = (xa - x0).abs() > 1e-6
        count = changed.sum(1)
        rows = (count > 1).nonzero().squeeze(1)
        if not len(rows):
            break
        g = subset(gen, rows.cpu())
        p = (EXTRA * count[rows] / dim).clamp(max=1.0)[:, None]
        trial = torch.where(changed[rows], xa[rows], _noise(x0[rows], p, rand((len(rows), dim), g).to(x0.device)))
        adv = _logits(model, trial.view(-1, *shape)).argmax(1) != target[rows]
        rows, trial = rows[adv], trial[adv]
        if not len(rows):
            continue
        old_first = rand((len(rows), dim), subset(gen, rows.cpu())).to(x0.device) + (~changed[rows]).float()
        reduced = _pass(model, x0[rows], trial, target[rows], old_first, shape)
        fewer = ((reduced - x0[rows]).abs() > 1e-6).sum(1) < count[rows]
        xa[rows[fewer]] = reduced[fewer]
    return xa


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
                xa = _pass(model, x0, xa, t, rand(xa.shape, g), shape)
                xa = _local_search(model, x0, xa, t, g, shape, IMPROVE)
                xa = _single_rounds(model, x0, xa, t, shape)
                if self.l2_binary_search:
                    xa = _toward_original(model, x0, xa, t, shape)
                x_adv[idx] = xa.view(-1, *shape)
        distance = torch.where(found, norm(x_adv - x, "l0"), torch.full((len(x),), math.inf, device=x.device))
        return AttackOutput(x_adv, in_box(x_adv), distance)




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


@attack("pointwise", defaults=lambda spec: dict(epsilon=float(spec.input_values), init_steps=1000,
                                                l2_binary_search=False, library="native"),
        budget=("epsilon",), threat="pixel", norm="l0",
        library="native",
        minimum_norm=True,
        source="Schott et al. 2019 point-wise attack (decision-based, from a salt-and-pepper start). The paper gives"
               " no settings: counted unbounded (epsilon = every input value), i.e. an example is broken wherever an"
               " adversarial is found, as the paper's near-zero MNIST numbers suggest; not comparable with the paper's"
               " column where its budget differed",
        notes="epsilon = ℓ0 threshold in changed input values; init_steps = salt-and-pepper draws per image at most."
              " library=native is batched; library=foolbox runs foolbox 3.3.4 PointwiseAttack (one input value per"
              " query). Compared by `python benchmarks/pointwise.py` (README, Performance)",
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
