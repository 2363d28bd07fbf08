"""The recipes of Tables 8 and 9: fast SRT against the other defenses, with training time."""

from __future__ import annotations

from srtbench.recipes.planning import Plan, recipe

# fast SRT at the cpu scale keeps the paper's share of SRT's length (Table 8: 45,000 of 80,000 iterations; Table 9:
# 50 of 120 epochs) and peaks at LR-max 0.1, twice the presets' η (the paper's 0.2 is twice its 0.1)
FAST_SHARE = {"cifar10-fast-spatial": 45 / 80, "cifar10-fast-pixel": 50 / 120}


def _fast_srt(plan: Plan, setting: str, lam: float) -> str:
    preset, extra = plan.scale.preset(setting), {}
    if plan.scale.iterations:
        extra = {"lr_max": 0.1, "iterations": round(plan.length("srt", preset) * FAST_SHARE[setting])}
    return plan.train("fast-srt", preset, lam, extra=extra)


@recipe("table8", "Table 8: fast SRT vs Worst-of-k, KLR, SRT under spatial attacks, with training time")
def _table8(plan: Plan) -> None:
    s = plan.scale.preset("cifar10-spatial")
    attacks = ("gridadv", "gridadv.t", "gridadv.r")
    for ckpt in (plan.train("worst-of-k", s), plan.train("klr", s), plan.train("srt", s, 0.2),
                 _fast_srt(plan, "cifar10-fast-spatial", 0.2)):
        plan.evaluate(ckpt, attacks)
    plan.table("table8")


@recipe("table9", "Table 9: fast SRT vs AT, TRADES, SRT under pixel-wise attacks, with training time")
def _table9(plan: Plan) -> None:
    p = plan.scale.preset("cifar10-pixel")
    attacks = ("fgsm", "pgd", "mifgsm", "jsma", "cw", "ddn")
    for ckpt in (plan.train("at", p), plan.train("trades", p), plan.train("srt", p, 1.0),
                 _fast_srt(plan, "cifar10-fast-pixel", 1.0)):
        plan.evaluate(ckpt, attacks)
    plan.table("table9")
