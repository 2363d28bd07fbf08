"""Every indicator of one attack run on a subset of its examples: per-example tensors (for the per-example file)
and the flags that summarise them."""

from __future__ import annotations

import torch

from srtbench import checks
from srtbench.attacks import BuiltAttack
from srtbench.indicators.binarization import applicable, binarization_test, threat_set
from srtbench.indicators.paths import path_indicators
from srtbench.indicators.reruns import Subset, non_convergence, restarts, transfer_stronger

Flag = dict[str, str]
FEW = 32  # examples of the binarization test for a slow attack or under EOT (where each pass is N passes)


def attack_indicators(atk: BuiltAttack, s: Subset, dataset: str, fraction: float, trained: dict | None,
                      classes: int) -> tuple[dict[str, torch.Tensor], dict[str, Flag]]:
    """The indicators of `atk` on the subset `s` (whose `broken` is the run's own outcome): per example, and flags.
    An attack that searches on a surrogate (transfer) gets none: its failures are not the attacked model's."""
    if not atk.info.queries_model:
        return {}, {}
    model = s.model.to(s.device)
    x, clean = s.x.to(s.device), s.clean.to(s.device)
    n = len(x)
    per: dict[str, torch.Tensor] = {}
    flags: dict[str, Flag] = {}
    failed = int((~s.broken).sum())
    # a slow attack (minutes per hundred images: AutoAttack, JSMA, C&W-ℓ2, DDN, point-wise) is not run again
    reruns = (("non_convergence", lambda: non_convergence(atk, s, dataset, fraction, trained),
               checks.indicator_non_convergence),
              ("restarts", lambda: restarts(atk, s), checks.indicator_restarts),
              ("transfer_stronger", lambda: transfer_stronger(atk, s, dataset, fraction, trained),
               checks.indicator_transfer_stronger))
    for name, rerun, check in reruns:
        found = None if atk.info.slow and name != "transfer_stronger" else rerun()
        if found is not None:
            per[name], flags[name] = found, check(int(found.sum()), failed, n)
    # the path of srtbench's own fast attacks (a library attack returns the best point it found by its design); under
    # EOT one pass is one noise draw: neither a success nor a loss of the attack's
    if atk.eot == 1 and atk.info.library == "native" and not atk.info.slow:
        path = path_indicators(model, atk, x, clean, s.index, s.seed, s.broken)
        per["silent_success"], per["flat_loss"] = path.silent, path.flat
        flags["silent_success"] = checks.silent_success(int(path.silent.sum()), n)
        flags["flat_loss"] = checks.flat_loss(int(path.flat.sum()), failed)
    if not_binarizable(atk, model, x) == "":
        k = n if atk.eot == 1 and not atk.info.slow else min(n, FEW)  # one readout, one attack run per example
        test = binarization_test(model, atk, x[:k], clean[:k], s.index[:k], s.seed, classes)
        per["binarization_feasible"], per["binarization_passed"] = test.feasible, test.passed
        flags["binarization"] = checks.binarization(int(test.passed.sum()), int(test.feasible.sum()), k)
    return per, flags


def not_binarizable(atk: BuiltAttack, model, x: torch.Tensor) -> str:
    """Why the binarization test does not apply to this attack on this model ("" where it does)."""
    if threat_set(atk) is None:
        return f"{atk.name} has no threat set to sample from"
    return applicable(model, x[:8])
