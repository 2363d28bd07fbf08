"""The attack settings of each scale: the cpu scale's ε 0.1 battery, and the paper's settings table by table.

Every evaluation names its attacks' budgets and steps (`pgd[epsilon=0.031,steps=20,step_size=0.003]`), so no
number depends on the battery's defaults, which follow the attacked checkpoint's training budget.
"""

from __future__ import annotations

# the Fashion-MNIST presets train at the ℓ∞ budget of Table 6 (ε 0.1), so the cpu scale attacks there: Appendix C's
# FGSM and PGD-40 (step 0.005) for Table 6, the same budget and steps for MI-FGSM, the ℓ∞ C&W, AutoAttack and the
# compound attacks; the spatial attacks (the paper's 30°, 3 px), JSMA and the minimum-norm attacks keep the battery's
# settings (bare)
CPU_EPSILON = "epsilon=0.1"
CPU_PGD = f"{CPU_EPSILON},steps=40,step_size=0.005"
CPU_ATTACKS = {"fgsm": CPU_EPSILON, "pgd": CPU_PGD, "mifgsm": CPU_PGD, "cw": CPU_PGD, "autoattack": CPU_EPSILON,
               "pgd+": CPU_PGD, "gridadv+": CPU_PGD}


# Appendix B (Section 4.1, and through Appendix D the spatial Tables 3, 5, 8): rotations up to 30°, translations up
# to 3 px; GridAdv over 31 rotations and 5 translations per direction.  The .t / .r variants attack one part, the
# other held at 0.  RandAdv's number of draws k is not in the paper: the battery's.
GRID = "rotations=31,translations=5"
PAPER_SPATIAL = {"randadv": "rotation=30,translation=3", "gridadv": f"rotation=30,translation=3,{GRID}",
                 "randadv.t": "rotation=0,translation=3", "gridadv.t": f"rotation=0,translation=3,{GRID}",
                 "randadv.r": "rotation=30,translation=0", "gridadv.r": f"rotation=30,translation=0,{GRID}"}


def paper_pixel(epsilon: str, steps: int, step_size: str) -> dict[str, str]:
    """Appendix E (Tables 4, 9): FGSM at ε; PGD and MI-FGSM with `steps` of `step_size`; the ℓ∞ C&W (the paper's C&W
    column, no settings given) at PGD's; AutoAttack (not in the paper) at PGD's ε; JSMA at advertorch's defaults θ 1,
    γ 1 (the paper's attacks are "implemented based on Advertorch"); point-wise, DDN and the ℓ2 C&W have no settings
    in the paper: the battery's.  The random start and MI-FGSM's decay are not in the paper: the battery's."""
    pgd = f"epsilon={epsilon},steps={steps},step_size={step_size}"
    return {"fgsm": f"epsilon={epsilon}", "pgd": pgd, "mifgsm": pgd, "cw": pgd, "jsma": "theta=1.0,gamma=1.0",
            "pointwise": "", "ddn": "", "cw-l2": "", "autoattack": f"epsilon={epsilon}"}


# Appendix E: CIFAR-10 "ε = 0.031 ..., the step size α = 0.007, and the iteration step is set to 10"; MNIST "PGD-40 and
# MI-FGSM-40 with step size 0.01 and FGSM under perturbation size 0.3"
TABLE4 = {"cifar10": paper_pixel("0.031", 10, "0.007"), "mnist": paper_pixel("0.3", 40, "0.01")}
# Appendix F: "the maximum perturbation size is the same as the one used in previous experiments": Table 4's pixel-wise
# settings with Appendix B's spatial ones
COMPOUND_ATTACKS = {d: {a: f"{TABLE4[d]['pgd']},rotation=30,translation=3,{GRID}" for a in ("pgd+", "gridadv+")}
                    for d in TABLE4}
PAPER_ATTACKS: dict[tuple[str, str], dict[str, str]] = {
    ("table1", "cifar10"): PAPER_SPATIAL,
    # Appendix B: "PGD-20 with step size 0.003 and FGSM under perturbation size 0.031"
    ("table2", "cifar10"): {"fgsm": "epsilon=0.031", "pgd": "epsilon=0.031,steps=20,step_size=0.003"},
    ("table3", "cifar10"): PAPER_SPATIAL, ("table3", "mnist"): PAPER_SPATIAL,
    ("table4", "cifar10"): TABLE4["cifar10"], ("table4", "mnist"): TABLE4["mnist"],
    ("table5", "mnist"): PAPER_SPATIAL,
    # Appendix C: "PGD-40 with step size 0.005 and FGSM under perturbation size 0.1"
    ("table6", "mnist"): {"fgsm": "epsilon=0.1", "pgd": "epsilon=0.1,steps=40,step_size=0.005"},
    # Appendix J (fast SRT): "Other settings are the same as those used in Section 4.2-4.3" (Tables 3 and 4)
    ("table8", "cifar10"): PAPER_SPATIAL, ("table9", "cifar10"): TABLE4["cifar10"],
    **{("figure1", d): {**TABLE4[d], **PAPER_SPATIAL, **COMPOUND_ATTACKS[d]} for d in TABLE4},
    **{("figure7", d): COMPOUND_ATTACKS[d] for d in TABLE4},
    # Section 4.5 (Figure 2) and Appendix J (Figure 9): "the same as those used in Section 4.2-4.3"
    **{("figure2", d): {**TABLE4[d], **PAPER_SPATIAL} for d in TABLE4},
    ("figure9", "cifar10"): {**TABLE4["cifar10"], **PAPER_SPATIAL},
}
