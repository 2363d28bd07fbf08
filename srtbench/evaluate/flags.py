"""The flags that compare an evaluation's rows: budget monotonicity, attack order, compound ⊇ part, and the ℓ∞
gradient-masking checks (unbounded PGD, Square)."""

from __future__ import annotations

import torch

from srtbench import checks
from srtbench.attacks import attack_info, build, cover_pairs, must_beat_pairs
from srtbench.evaluate.batches import run_attack
from srtbench.evaluate.one_checkpoint import SUBSET, AttackRun, CheckpointEvaluation
from srtbench.maximizers import eval_mode, predict
from srtbench.outcomes import accuracy

SQUARE_QUERIES = 1000  # Square's query budget in the gradient-masking check



def _same_budget(a: dict, b: dict) -> bool:
    """Two rows attack at one budget where they share budget keys (a compound and its part share ε or the
    transform's range)."""
    shared = set(a) & set(b)
    return bool(shared) and all(abs(float(a[k]) - float(b[k])) <= 1e-9 for k in shared)


def _paired(runs: list[AttackRun], pairs) -> list[tuple[str, str, AttackRun, AttackRun]]:
    """(first, second, its run, the other's run) for every pair of runs of the named attacks at one fraction
    and one budget: never pgd at ε 0.05 against fgsm at ε 0.3."""
    return [(a, b, r, o) for a, b in pairs for r in runs if r.attack == a for o in runs
            if o.attack == b and o.fraction == r.fraction and _same_budget(r.row["budget"], o.row["budget"])]


def cross_flags(ev: CheckpointEvaluation) -> None:
    """Flags that compare rows: budget monotonicity (per attack setting), attack order and compound ⊇ part
    (at equal budgets), ε = 1, Square."""
    n = ev.cfg.n
    settings: dict[tuple, list[AttackRun]] = {}
    for r in ev.runs:
        settings.setdefault((r.attack, str(r.row["attack_params"])), []).append(r)
    for group in settings.values():
        accs = {r.fraction: r.row["robust_acc"] for r in group}
        if len(accs) > 1:
            flag = checks.monotone_budget(accs, n)
            for r in group:
                r.row["flags"]["monotone_budget"] = flag
    for strong, weak, s, w in _paired(ev.runs, must_beat_pairs()):  # AttackInfo.must_beat
        flag = checks.attack_order(strong, s.row["robust_acc"], weak, w.row["robust_acc"], n)
        s.row["flags"][f"order_{strong}_vs_{weak}"] = w.row["flags"][f"order_{strong}_vs_{weak}"] = flag
    for compound, part, c, p in _paired(ev.runs, cover_pairs()):  # AttackInfo.covers
        flag = checks.compound_dominates(compound, part, c.examples.broken, p.examples.broken)
        c.row["flags"][f"{compound}_covers_{part}"] = p.row["flags"][f"{compound}_covers_{part}"] = flag
    linf = [r for r in ev.runs if (attack_info(r.attack).threat, attack_info(r.attack).norm) == ("pixel", "linf")]
    if ev.cfg.sanity and linf:
        for r in linf:
            r.row["flags"].update(_pixel_flags(ev, linf))


def _pixel_flags(ev: CheckpointEvaluation, linf: list[AttackRun]) -> dict:
    if "pixel" not in ev.zero_flags:
        x, clean = ev.x[:SUBSET], ev.clean_pred[:SUBSET]
        correct = clean == ev.y[:SUBSET]
        with torch.no_grad():
            num_classes = ev.t.model(x[:1].to(ev.device)).shape[1]
        # from x itself: a random start at ε = 1 is a noise image, which would hide a masked model's gradients
        unbounded = build("pgd[epsilon=1.0,step_size=0.1,start=none]", ev.t.dataset)
        out = run_attack(ev.t.model, unbounded, x, clean, ev.cfg.batch_size, ev.device, ev.cfg.seed)
        acc = accuracy(correct & (predict(ev.t.model, out.x_adv, ev.cfg.batch_size, ev.device) == ev.y[:SUBSET]))
        flags = {"unbounded_pgd": checks.unbounded_pgd(acc, num_classes, len(x))}
        full = [r for r in linf if r.fraction == 1.0 and attack_info(r.attack).white_box]
        if full:
            best = min(full, key=lambda r: r.examples.adv_correct[:SUBSET].sum().item())
            survived = best.examples.adv_correct[:SUBSET]
            white = accuracy(survived)
            # Square runs only where the best white-box attack failed: what it breaks elsewhere cannot change the
            # comparison, and its queries there cost most of its time on a weak model
            square = best.examples.adv_pred[:SUBSET].clone()
            if survived.any():
                square[survived] = _square(ev, best, x[survived], clean[survived])
            black = accuracy(correct & (square == ev.y[:SUBSET]))
            flags["gradient_masking"] = checks.gradient_masking(best.attack, white, black, len(x))
        ev.zero_flags["pixel"] = flags
    return ev.zero_flags["pixel"]


def _square(ev: CheckpointEvaluation, best: AttackRun, x, clean) -> torch.Tensor:
    import torchattacks as ta

    eps = float(best.row["budget"]["epsilon"])
    model = ev.t.model.to(ev.device)
    with eval_mode(model):
        square = ta.Square(model, norm="Linf", eps=eps, n_queries=SQUARE_QUERIES, n_restarts=1, seed=ev.cfg.seed)
        x_adv = square(x.to(ev.device), clean.to(ev.device)).detach() if eps > 0 else x
    return predict(model, x_adv, ev.cfg.batch_size, ev.device)
