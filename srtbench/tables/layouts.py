"""The layouts of the tables: `Column`, `Layout`, the LAYOUTS registry with every registered layout, and row keys.

A `Layout` is plain data: the rows (the paper's row names, in its order), the attacks of its columns
(after "Clean", in its order), whether it has a "Time (mins)" column, the paper table it mirrors, and the name of
its column set in COLUMN_SETS (one column per attack, or the threat profile's one per threat group).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from srtbench.registry import Registry

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Column:
    kind: str  # a kind of cell (rows.CELLS): clean | attack | worst | time, or the profile's threat | mean | min
    header: str
    attack: str = ""
    fraction: float = 1.0
    params: str | None = None  # the attack's settings, where rows of one attack differ in them (else any)
    group: str = ""  # a threat column's worst-case group (`AttackInfo.group`, e.g. "pixel linf")
    budget: str = ""  # a threat column's budget: JSON of its largest budget per name ("" where rows record none)

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "time"


@dataclass(frozen=True)
class Layout:
    name: str
    title: str
    rows: tuple[str, ...] = ()  # empty: the labels found in the results, in order of appearance
    attacks: tuple[str, ...] = ()  # empty: every attack found, in the paper's order
    time: bool = False  # Tables 8-9: training time in minutes
    paper: str | None = None  # the `checkpoint` tag of the paper's numbers, e.g. "paper:table3"
    columns: str = "attacks"  # its column set, registered in COLUMN_SETS
    published: bool = True  # whether the paper's published numbers are rows (they record no budget, no examples)
    if_found: tuple[str, ...] = ()  # attacks of `attacks` shown only where the results hold them (not the paper's)


LAYOUTS: Registry[Layout] = Registry("layout")
# a layout's columns from the rows it shows: fn(layout, rows) -> (columns, notes under the table); "attacks" is
# pivot's (one per attack, then "Worst case"), "threats" the threat profile's (profile.py)
COLUMN_SETS: Registry[Callable[[Layout, pd.DataFrame], tuple[list[Column], list[str]]]] = Registry("column set")


def _register(layout: Layout) -> None:
    LAYOUTS.register(layout.name, title=layout.title)(layout)


# the columns of the paper's Tables 3 and 4, declared once: recipes attack with exactly these
SPATIAL_ATTACKS = ("randadv", "gridadv", "randadv.t", "gridadv.t", "randadv.r", "gridadv.r")
PIXEL_ATTACKS = ("fgsm", "pgd", "mifgsm", "jsma", "cw", "pointwise", "ddn")  # cw: the paper's ℓ∞ C&W


def _lambda_rows(lams: Sequence[str]) -> tuple[str, ...]:
    return ("Standard", *[f"{d} (λ = {lam})" for lam in lams for d in ("RT", "SRT")])


_register(Layout("table1", "Table 1: SRT and RT under spatial attacks (CIFAR-10)",
                 _lambda_rows(("0.15", "0.20", "0.25", "0.30")), ("randadv", "gridadv"), paper="paper:table1"))
_register(Layout("table2", "Table 2: SRT and RT under pixel-wise attacks (CIFAR-10)",
                 _lambda_rows(("0.2", "0.4", "0.6", "0.8")), ("fgsm", "pgd"), paper="paper:table2"))
_register(Layout("table3", "Table 3: adversarial accuracy (%) under spatial attacks",
                 ("Standard", "AT", "Worst-of-k", "KLR", "SRT"), SPATIAL_ATTACKS, paper="paper:table3"))
_register(Layout("table4", "Table 4: adversarial accuracy (%) under pixel-wise attacks",
                 ("Standard", "AT", "TRADES", "UAT", "RST", "SRT"), PIXEL_ATTACKS + ("autoattack",),
                 paper="paper:table4", if_found=("autoattack",)))  # today's standard, beside the paper's battery
_register(Layout("table5", "Table 5: SRT and RT under spatial attacks (MNIST)",
                 _lambda_rows(("0.15", "0.20", "0.25", "0.30")), ("randadv", "gridadv"), paper="paper:table5"))
_register(Layout("table6", "Table 6: SRT and RT under pixel-wise attacks (MNIST)",
                 _lambda_rows(("0.2", "0.4", "0.6", "0.8")), ("fgsm", "pgd"), paper="paper:table6"))
_register(Layout("table8", "Table 8: fast SRT under spatial attacks, with training time",
                 ("Worst-of-k", "KLR", "SRT", "fast SRT"), ("gridadv", "gridadv.t", "gridadv.r"), time=True,
                 paper="paper:table8"))
_register(Layout("table9", "Table 9: fast SRT under pixel-wise attacks, with training time",
                 ("AT", "TRADES", "SRT", "fast SRT"), ("fgsm", "pgd", "mifgsm", "jsma", "cw", "ddn"), time=True,
                 paper="paper:table9"))
_register(Layout("auto", "Accuracy (%) of every checkpoint under every attack in the results"))
_register(Layout("threats", "Robustness profile: accuracy (%) under the worst case of each threat",
                 columns="threats", published=False))


def row_key(label: str) -> str:
    """Labels compare equal whatever the spelling of λ's number ("RT (λ = 0.20)" is "RT (λ = 0.2)")."""
    label = re.sub(r"\s+", " ", str(label).strip())
    return re.sub(r"λ ?= ?([0-9.]+)", lambda m: f"λ = {float(m.group(1)):g}", label)


_NOTE = r"([λβ] = [0-9.]+|[0-9,]+ steps)"  # the notes a run's name may carry beside the defense's row name


def _bare_name(key: str) -> str:
    """A row key without its run's notes: "SRT (λ = 1)" and "SRT (λ = 1, 4,800 steps)" are "SRT", "UAT (β = 1)"
    is "UAT"."""
    return re.sub(rf" \({_NOTE}(, {_NOTE})*\)$", "", key)
