"""Training objectives: SRT (Eq. (9)/(11)) and every defense the paper compares it with, registered in DEFENSES.

A defense is only its objective: `objective(model, batch, neighborhood, params, gen)` returns a dict
with `loss` (what the trainer minimizes), `natural` and `robust` (its two parts, detached) and
`correct` / `count` (training accuracy of the supervised term's logits).  The inner maximization is
done by the foundation's maximizers (model in eval mode, no parameter gradients); which one depends on
the neighborhood, which names its own (`train_solver`): PGD over a pixel ball, worst-of-k random transforms over
a spatial one, PGD on σ for blur and on contrast/brightness for color, and its parts' in sequence over a compound
(pixel-wise first, Appendix F).  A defense is defined for every registered threat unless it declares otherwise.

Notation: L = cross-entropy, C(x) = argmax f(x) computed in eval mode without gradient (the official
code's choice), x_l / y the labeled part of the batch, x_u its unlabeled part, λ, β trade-offs.

Where the paper and its official code (THUYimingLi/Semi-supervised_Robust_Training) differ, the paper
is the default and the code's choice an option: `--weighting code` (spatial SRT's weighted mean over
the concatenated batch), `--spatial-pick flip` (spatial SRT's choice of transform).  The PGD start
x + 0.001·N(0, I) (`--start normal`) is the code's, since the paper names none.

Files: `params.py` (the hyperparameters, declared once), `registry.py` (a defense's facts and the registry),
`inner.py` (the inner maximization and the parts every objective returns), `supervised.py` (standard, AT,
Worst-of-k, TRADES, KLR), `semi_supervised.py` (UAT, RST, RT, SRT, fast SRT), `per_type.py` (AT(avg), AT(max)).
A new defense is one module with an objective under `@register` and one import line below.
"""

# the import order is the registration order, which `srtbench train --help` lists
# isort: off
from srtbench.defenses import supervised  # noqa: F401
from srtbench.defenses import semi_supervised  # noqa: F401
from srtbench.defenses import per_type  # noqa: F401
# isort: on
from srtbench.defenses.params import DefenseParams, ramp_lambda
from srtbench.defenses.registry import DEFENSES, Defense, Objective, Setup, register

__all__ = ["DEFENSES", "Defense", "DefenseParams", "Objective", "Setup", "ramp_lambda", "register"]
