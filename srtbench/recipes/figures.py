"""The recipes of Figures 1, 2, 7 and 9: robust accuracy over the budget, the unlabeled data and fast SRT's settings."""

from __future__ import annotations

from srtbench.recipes.planning import Plan, recipe

FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)  # Figures 1 and 7


# ---------------------------------------------------------------- Figures 1, 7: compound attacks and defenses


# the compound experiments (Figures 1, 7): the paper gives no separate schedule, so its pixel-wise one is used
COMPOUND = {"paper": {"cifar10-pixel": "cifar10-pixel-table4", "mnist-pixel": "mnist-pixel-table4"},
            "cpu": {"cifar10-pixel": "fmnist-compound-cpu", "mnist-pixel": "fmnist-compound-cpu"}}
# SRT+'s λ at both scales: Appendix F gives none; 0.2 is SRT's spatial λ (Section 4.2), the smaller of its two, as
# the srt defense takes for any non-pixel threat (the pixel-wise presets' λ = 1 would otherwise win at the paper scale)
SRT_PLUS = {"threat": "compound", "lam": 0.2}


@recipe("figure1", "Figure 1: single and compound defenses against PGD, GridAdv, PGD+, GridAdv+ over the budget")
def _figure1(plan: Plan) -> None:
    attacks = ("gridadv+", "pgd+", "pgd", "gridadv")
    for spatial, pixel in (("cifar10-spatial", "cifar10-pixel"), ("mnist-spatial", "mnist-pixel")):
        s, p = plan.scale.preset(spatial), plan.scale.preset(pixel)
        compound = COMPOUND[plan.scale.name][pixel]
        for ckpt in (plan.train("at", p), plan.train("worst-of-k", s),
                     plan.train("srt", p, 1.0), plan.train("srt", s, 0.2),  # λ tells pixel-wise from spatial
                     plan.train("at", compound, extra={"threat": "compound"}, tag="-compound"),
                     plan.train("srt", compound, extra=SRT_PLUS, tag="-compound")):
            plan.evaluate(ckpt, attacks, FRACTIONS)
    plan.plot("budget", ",".join(attacks))  # the CSVs hold other experiments' attacks too


# ---------------------------------------------------------------- Figure 2: the effect of unlabeled data


# the unlabeled-data sweep of Figure 2 (|D_U|), beside |D_L| of the scale's presets (10,000 at both scales)
UNLABELED_SWEEP = {"paper": {"cifar10": (0, 10_000, 20_000, 30_000, 40_000),
                             "mnist": (0, 10_000, 20_000, 30_000, 40_000, 50_000)},
                   "cpu": {"fashion-mnist": (0, 10_000, 20_000, 50_000)}}
N_LABELED = {"paper": 10_000, "cpu": 10_000}
N_UNLABELED = {"paper": None, "cpu": 50_000}  # the presets' own |D_U|: that sweep point is the tables' run


@recipe("figure2", "Figure 2: SRT's robust accuracy against the number of unlabeled examples")
def _figure2(plan: Plan) -> None:
    scenarios = (("pixel", "at", 1.0, "pgd"), ("spatial", "worst-of-k", 0.2, "gridadv"))
    for dataset, sweep in UNLABELED_SWEEP[plan.scale.name].items():
        prefix = "cifar10" if dataset == "cifar10" else "mnist"
        for scenario, defense, lam, attack in scenarios:
            preset = plan.scale.preset(f"{prefix}-{scenario}")
            for n in sweep:
                n = None if n == N_UNLABELED[plan.scale.name] else n  # shared with the tables' run
                plan.evaluate(plan.train("srt", preset, lam, n_unlabeled=n), (attack,))
            # the supervised reference has labels for every image the largest SRT run sees (Section 4.5:
            # all 60,000 MNIST / 50,000 CIFAR-10 training images at the paper's scale)
            every = {"n_labeled": N_LABELED[plan.scale.name] + max(sweep)}
            plan.evaluate(plan.train(defense, preset, n_unlabeled=0, extra=every, tag="-all-labeled"), (attack,))
    plan.plot("unlabeled", ",".join(attack for *_, attack in scenarios))


@recipe("figure7", "Figure 7: compound defenses AT+, SRT+, AT(avg), AT(max) against PGD+ and GridAdv+")
def _figure7(plan: Plan) -> None:
    for pixel in ("cifar10-pixel", "mnist-pixel"):
        compound = COMPOUND[plan.scale.name][pixel]
        for ckpt in (plan.train("at", compound, extra={"threat": "compound"}, tag="-compound"),
                     plan.train("srt", compound, extra=SRT_PLUS, tag="-compound"),
                     plan.train("at-avg", compound, extra={"threat": "compound"}),
                     plan.train("at-max", compound, extra={"threat": "compound"})):
            plan.evaluate(ckpt, ("gridadv+", "pgd+"), FRACTIONS)
    plan.plot("budget", "gridadv+,pgd+")


# ---------------------------------------------------------------- Figure 9: fast SRT's learning rate and length

# (LR-max values, training-length option, lengths): spatial runs count iterations, pixel-wise ones epochs
FAST_SWEEP = {
    "paper": {"cifar10-fast-spatial": ((0.1, 0.2), "iterations", (15_000, 30_000, 45_000)),
              "cifar10-fast-pixel": ((0.1, 0.2), "epochs", (10, 20, 30, 40, 50))},
    "cpu": {"cifar10-fast-spatial": ((0.05, 0.1), "iterations", (100, 200, 400)),
            "cifar10-fast-pixel": ((0.05, 0.1), "iterations", (100, 200, 400))},
}


@recipe("figure9", "Figure 9: fast SRT's robustness against maximum learning rate and training length")
def _figure9(plan: Plan) -> None:
    for setting, lam, attack in (("cifar10-fast-spatial", 0.2, "gridadv"), ("cifar10-fast-pixel", 1.0, "pgd")):
        preset = plan.scale.preset(setting)
        lrs, length, values = FAST_SWEEP[plan.scale.name][setting]
        for lr in lrs:
            for value in values:
                label = f"fast SRT (LR-max {lr:g}, {value:,} {length})"
                extra = {"lr_max": lr, length: value}
                plan.evaluate(plan.train("fast-srt", preset, lam, label=label, extra=extra,
                                         tag=f"-lrmax{lr:g}-{length}{value}"), (attack,))
    plan.table("auto")
