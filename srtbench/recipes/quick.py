"""The recipe of the README's demo (`quick`): a cheap run attacked beside the shipped reference checkpoints."""

from __future__ import annotations

from srtbench.recipes.planning import Plan, recipe
from srtbench.recipes.scales import SCALE_PRESETS

# the demo trains the cheap model (standard, ~40 s on 2 cores) and attacks it beside the shipped reference
# checkpoints of the reproduction (AT, and SRT whose 2,400 steps take 17-26 minutes): under 2 minutes measured
QUICK_N = 500
QUICK_REFERENCE = ("models/fmnist-at.pt", "models/fmnist-srt-pixel.pt")  # `make models`, models/README.md


# equal epochs: the shipped AT and SRT were trained so (400 and 2,400 steps), and the demo's standard run stays 400
# steps (~40 s) instead of the steps protocol's 4,800
@recipe("quick", "Quick demo: standard training on Fashion-MNIST against the shipped AT and SRT models, FGSM and PGD",
        protocol="epochs")
def _quick(plan: Plan) -> None:
    preset = SCALE_PRESETS["cpu"].preset("mnist-pixel")
    # attacked at the budget the models were trained for (the cpu scale's ε 0.1), not Table 4's default of 0.3
    attacks = [SCALE_PRESETS["cpu"].attack(a) for a in ("fgsm", "pgd")]
    plan.evaluations = plan.results_dir  # 500 images, not the tables' 1,000: kept apart from the shared CSVs
    plan.evaluate(plan.train("standard", preset), attacks, n=QUICK_N)  # Table 4's standard run at this scale
    for shipped in QUICK_REFERENCE:
        plan.evaluate(shipped, attacks, n=QUICK_N)
    plan.table("auto")
