"""The attack battery: every attack of the paper's Tables 1-9 and Figures 1/7, in one registry.

An attack is a neighborhood + a maximizer + a loss (`native`: FGSM, PGD, MI-FGSM, C&W, RandAdv, GridAdv and
their compounds PGD+/GridAdv+), or a thin adapter to a library attack (`minimum_norm`: foolbox's C&W-ℓ2, DDN,
point-wise; `autoattack`: torchattacks' AutoAttack components), or a batched re-implementation checked against a
library (`jsma`).  Each is registered once (`base.attack`) with every fact about it: its defaults
(computed from each dataset's declared budgets, `data.AttackBudgets`: Section 4.1, Appendix B, C, E, F), its
column header and place in the paper's tables, whether it is slow or white-box, and the attacks it must beat;
tables, evaluation, recipes and plots read those facts.
`build("pgd[steps=100,start=none]", dataset, fraction)` (`spec`) applies command-line overrides and scales every
budget by `fraction` (the perturbation fractions of Figures 1 and 7).

Attacks are called with the label to move away from (evaluation passes the clean prediction C(x),
so the outcome measures R_rob of Eq. (4) as well as R_adv of Eq. (3)) and return an `AttackOutput`.
Minimum-norm attacks (C&W-ℓ2, DDN, point-wise) run unbounded once and report per-example distances; the
budget `epsilon` only decides which of their examples count as broken (`at_budget`).

A new attack is one module here and one import line below (the import registers it; the order of the imports
is the order of `srtbench attacks` and of `--attacks all`).
"""

# isort: off
from srtbench.attacks import native  # noqa: F401  (registers fgsm, pgd, mifgsm, cw, randadv*, gridadv*, pgd+, gridadv+)
from srtbench.attacks import jsma  # noqa: F401  (registers jsma)
from srtbench.attacks import minimum_norm  # noqa: F401  (registers cw-l2, ddn)
from srtbench.attacks import pointwise  # noqa: F401  (registers pointwise)
from srtbench.attacks import derived  # noqa: F401  (registers NAME-pgd, NAME-grid, NAME-rand of every threat)
from srtbench.attacks import autoattack  # noqa: F401  (registers autoattack)
from srtbench.attacks import transfer  # noqa: F401  (registers transfer)
# isort: on
from srtbench.attacks.base import (
    ATTACKS,
    NORMS,
    Attack,
    AttackInfo,
    AttackOutput,
    BuiltAttack,
    attack,
    attack_defaults,
    attack_info,
    batch_seed,
    battery,
    cover_pairs,
    header,
    must_beat_pairs,
    neighborhood,
    paper_order,
    rank,
)
from srtbench.attacks.spec import SOURCES, build, parse, resolve, split_specs, trained_budget

__all__ = [
    "ATTACKS", "NORMS", "SOURCES", "Attack", "AttackInfo", "AttackOutput", "BuiltAttack", "attack", "attack_defaults",
    "attack_info", "battery", "batch_seed", "build", "cover_pairs", "header", "must_beat_pairs", "neighborhood",
    "paper_order", "parse", "rank", "resolve", "split_specs", "trained_budget",
]
