"""The scales a recipe runs at (cpu, paper): which preset serves each of the paper's settings, and how much is attacked.

`--scale paper` uses the paper's presets (MNIST, CIFAR-10, the paper's models and schedules, full test sets);
`--scale cpu` runs the same experiment on Fashion-MNIST with SmallCNN through the `fmnist-{pixel,spatial}-cpu`
presets, short schedules in SGD steps (`Scale.iterations`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from srtbench.errors import SrtbenchError
from srtbench.recipes.settings import CPU_ATTACKS, PAPER_ATTACKS

SCALES = ("cpu", "paper")


@dataclass(frozen=True)
class Scale:
    """Which preset serves each of the paper's settings, and how many test images are attacked."""

    name: str
    presets: dict[str, str]
    n: int
    n_slow: int
    n_today: int | None = None  # images AutoAttack attacks where a recipe asks for more than n_slow
    iterations: int | None = None  # SGD steps of a supervised run on LABELED_UNIT images, unless a recipe sets the
    # length (None: the preset's); other runs get as many epochs (`Plan.length`)
    protocol: str = "epochs"  # a recipe's protocol unless one is named: `steps` needs `equal_steps`
    equal_steps: int | None = None  # SGD steps of every run under the steps protocol
    train_extra: tuple[tuple[str, Any], ...] = ()  # options (field, value) added to every training run
    results: str = "results/paper-scale"  # one CSV per checkpoint, shared by every experiment; EXPERIMENT/ holds
    # each experiment's table and figures
    attack_settings: dict[str, str] = field(default_factory=dict)  # settings given to an attack named bare
    # per (experiment, dataset): the settings of every attack that experiment evaluates there ("" = none: bare);
    # where set, an attack or experiment missing from it is an error, never the battery's default
    table_settings: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def attack(self, spec: str, experiment: str = "", dataset: str = "") -> str:
        """`pgd` -> `pgd[epsilon=0.1,...]` with this scale's settings for the experiment's table on `dataset`; a spec
        with settings is kept."""
        if "[" in spec:
            return spec
        settings = self.attack_settings
        if self.table_settings:
            settings = self.table_settings.get((experiment, dataset), {})
            if spec not in settings:
                raise SrtbenchError(f"no {self.name}-scale settings for {spec} in {experiment} on {dataset}: add them"
                                    " to the recipes' settings table")
        return f"{spec}[{settings[spec]}]" if settings.get(spec) else spec

    def preset(self, setting: str) -> str:
        return self.presets[setting]


LABELED_UNIT = 10_000  # the paper's |D_L|

SCALE_PRESETS = {
    "paper": Scale("paper", {
        "cifar10-spatial-table1": "cifar10-spatial-table1", "cifar10-pixel-table2": "cifar10-pixel-table2",
        "cifar10-spatial": "cifar10-spatial-table3", "mnist-spatial": "mnist-spatial-table5",
        "cifar10-pixel": "cifar10-pixel-table4", "mnist-pixel": "mnist-pixel-table4",
        "mnist-pixel-table6": "mnist-pixel-table6",
        "cifar10-fast-spatial": "cifar10-fast-table8", "cifar10-fast-pixel": "cifar10-fast-table9",
    }, n=10_000, n_slow=10_000, table_settings=PAPER_ATTACKS),
    "cpu": Scale("cpu", {
        **{s: "fmnist-spatial-cpu" for s in ("cifar10-spatial-table1", "cifar10-spatial", "mnist-spatial",
                                              "cifar10-fast-spatial")},
        **{s: "fmnist-pixel-cpu" for s in ("cifar10-pixel-table2", "cifar10-pixel", "mnist-pixel",
                                            "mnist-pixel-table6", "cifar10-fast-pixel")},
    }, n=1_000, n_slow=250, n_today=500, iterations=400, protocol="steps", equal_steps=4_800,
        train_extra=(("check_every", 5), ("amp", False)), results="results/fmnist",
        attack_settings=CPU_ATTACKS),
}
# why 400 steps at the CPU scale: 5 epochs of D_L (10,000 / 128 = 79 steps each), where SmallCNN has left its
# chance plateau and AT clears 60% PGD accuracy; fp32 (--no-amp) wherever it runs, so a row trained on a GPU
# compares with one trained on the CPU; an SRT epoch covers D_L ∪ D_U (469 steps), so equal epochs give
# it 2,400 (`Plan.length`), and Table 4 adds AT at 2,400 steps as a control; the held-out check every 5 epochs
# (of D_L: `check_cadence`).  The default protocol, equal steps, gives every run the same 4,800 steps, as the
# official code trains RT and SRT (pixel_exps/train.py): first 2,400, but AT at twice those gained 2.6 points
# under PGD on the same images (McNemar p = 0.0016, REPRODUCTION.md), so 2,400 did not converge it
