"""Significance of a table's differences: every row against one (`--versus SRT`), per attack column, as notes.

Per training seed, the exact McNemar test pairs the two rows' per-example outcomes (read from their side files):
under H0 an example that only one of the two keeps correct is as likely to be either's, so the count of one kind
among the discordant pairs is Binomial(b + c, 1/2), tested two-sided.  Pairing needs the same test images (the
same indices, split and evaluation seed); rows measured on others get no test, never a mismatched one.  Across
seeds, Welch's t-test compares the two runs' per-seed robust accuracies (unequal variances; two seeds each at least).
A lead *holds* (`held`) where both tests support it: at least two seeds that both runs trained, each with a paired p
under `ALPHA` and the same run ahead on its images, and a Welch p under `ALPHA` with that run's mean ahead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from srtbench.data import display_name
from srtbench.errors import SrtbenchError
from srtbench.tables.layouts import Column, row_key
from srtbench.tables.rows import _by_attack, _hits
from srtbench.tables.seeds import train_seed
from srtbench.tables.worst import row_examples

NO_FILE = "no per-example file"
OTHER_IMAGES = "different test images"
OTHER_SPLITS = "different splits"
OTHER_EVAL_SEEDS = "different evaluation seeds"
ALPHA = 0.05  # a lead holds where every paired seed's and the seed means' tests are each below it


def mcnemar(first: torch.Tensor, second: torch.Tensor) -> float:
    """Exact McNemar p of two paired boolean outcomes (correct under attack, example by example): the two-sided
    binomial test of the discordant pairs at 1/2; 1 where there are none (the two rows agree on every example)."""
    from scipy.stats import binomtest

    only_first = int((first & ~second).sum())
    only_second = int((~first & second).sum())
    if only_first + only_second == 0:
        return 1.0
    return float(binomtest(only_first, only_first + only_second, 0.5, alternative="two-sided").pvalue)


def welch(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Welch's t-test p on two runs' per-seed accuracies; None under two seeds on either side (NaN, or 0, where
    neither varies over its seeds: `compare` says so instead)."""
    import warnings

    from scipy.stats import ttest_ind

    if len(first) < 2 or len(second) < 2:
        return None
    with warnings.catch_warnings():  # a run whose seeds score alike ("precision loss") has variance 0, exactly
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(list(first), list(second), equal_var=False).pvalue)


def _outcomes(row: pd.Series) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A row's test-image indices in ascending order and, for each, whether it stayed correct under the attack; None
    without a per-example file."""
    examples = row_examples(row)
    if examples is None:
        return None
    order = examples.index.argsort()
    return examples.index[order], examples.adv_correct[order]


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()


def paired_test(first: pd.Series, second: pd.Series) -> tuple[float | None, str]:
    """McNemar p of two results rows of one attack on the same test images, or None and why there is none."""
    if _text(first.get("split")) != _text(second.get("split")):
        return None, OTHER_SPLITS
    if float(_text(first.get("seed")) or 0) != float(_text(second.get("seed")) or 0):
        return None, OTHER_EVAL_SEEDS
    mine, theirs = _outcomes(first), _outcomes(second)
    if mine is None or theirs is None:
        return None, NO_FILE
    if not torch.equal(mine[0], theirs[0]):
        return None, OTHER_IMAGES
    return mcnemar(mine[1], theirs[1]), ""


def _by_seed(row: pd.Series) -> dict[int, pd.Series]:
    """A displayed row's results row per training seed: a seed family's own rows (`aggregate_seeds`), else itself
    (an unreadable seed counts as 0, as a path without `-sS` does)."""
    members = row.get("seed_rows")
    if isinstance(members, tuple) and members:
        return dict(members)
    return {train_seed(row) or 0: row}


@dataclass(frozen=True)
class Comparison:
    """One attack column of a rival against the chosen row: per training seed either has, the McNemar p (None: the
    reason beside it says why not), and Welch's p over the seeds (None: `welch_reason`)."""

    header: str
    seeds: tuple[int, ...] = ()
    mcnemar: tuple[float | None, ...] = ()
    reasons: tuple[str, ...] = ()
    welch: float | None = None
    welch_reason: str = ""
    held: str = ""  # the run whose lead holds (`held`), "" where neither's does


def held(names: tuple[str, str], pairs: Sequence[tuple[float, float] | None], paired: Sequence[float | None],
         welch_p: float | None, means: tuple[float, float]) -> str:
    """The name whose lead holds, else "": per seed both runs trained (`pairs`: their robust accuracies, None where
    one has no run) a paired p under ALPHA with that run ahead, two such seeds at least, every one of them, and a
    Welch p under ALPHA with its mean ahead."""
    both = [(pair, p) for pair, p in zip(pairs, paired) if pair is not None]
    if welch_p is None or welch_p >= ALPHA or means[0] == means[1] or len(both) < 2:
        return ""
    first = means[0] > means[1]
    ok = all(p is not None and p < ALPHA and (a > b if first else b > a) for (a, b), p in both)
    return (names[0] if first else names[1]) if ok else ""


def compare(column: Column, mine: pd.Series, theirs: pd.Series, names: tuple[str, str]) -> Comparison:
    """The tests of one attack column between two displayed rows' results rows (`names`: theirs, for reasons)."""
    my_seeds, their_seeds = _by_seed(mine), _by_seed(theirs)
    seeds = tuple(sorted(set(my_seeds) | set(their_seeds)))
    tests = []
    for seed in seeds:
        absent = [n for n, runs in zip(names, (my_seeds, their_seeds)) if seed not in runs]
        tests.append(paired_test(my_seeds[seed], their_seeds[seed]) if not absent else
                     (None, f"no {absent[0]} run"))
    accuracies = [[float(r["robust_acc"]) for r in runs.values()] for runs in (my_seeds, their_seeds)]
    p = welch(*accuracies)
    single = [n for n, acc in zip(names, accuracies) if len(acc) < 2]
    reason = ("one seed each" if len(single) == 2 else f"{single[0]} has one seed") if single else ""
    if p is not None and all(len(set(acc)) == 1 for acc in accuracies):  # t is 0/0 or ±inf: no test, not p = 0
        p, reason = None, "neither varies over its seeds"
    pairs = [(float(my_seeds[s]["robust_acc"]), float(their_seeds[s]["robust_acc"]))
             if s in my_seeds and s in their_seeds else None for s in seeds]
    means = (sum(accuracies[0]) / len(accuracies[0]), sum(accuracies[1]) / len(accuracies[1]))
    paired = tuple(t[0] for t in tests)
    return Comparison(column.header, seeds, paired, tuple(t[1] for t in tests), p, reason,
                      held(names, pairs, paired, p, means))


def _p(value: float) -> str:
    return f"{value:.2g}"


def _seed_list(seeds: Sequence[int]) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _mcnemar_text(c: Comparison, show_seeds: bool) -> str:
    """`McNemar p = 0.003, 0.04, 0.2`, with the seeds where asked and why a seed has none; or why none has one."""
    seeds_by_reason: dict[str, list[int]] = {}
    for seed, reason in zip(c.seeds, c.reasons):
        if reason:
            seeds_by_reason.setdefault(reason, []).append(seed)
    why = [f"{_seed_list(seeds)}: {reason}" for reason, seeds in seeds_by_reason.items()]
    if all(p is None for p in c.mcnemar):
        return f"no paired test ({next(iter(seeds_by_reason)) if len(why) == 1 else '; '.join(why)})"
    extra = [_seed_list(c.seeds)] if show_seeds else []
    extra += why
    text = "McNemar p = " + ", ".join("–" if p is None else _p(p) for p in c.mcnemar)
    return text + (f" ({'; '.join(extra)})" if extra else "")


def rival_note(versus: str, rival: str, comparisons: Sequence[Comparison | str], where: str = "") -> str:
    """One line per rival: its tests against `versus` column by column (a string: columns without a test, and why),
    the seeds and a reason for no Welch test shared by every column said once."""
    tested = [c for c in comparisons if isinstance(c, Comparison)]
    seeds = {c.seeds for c in tested}
    hoist_seeds = len(seeds) == 1
    welch_reasons = {c.welch_reason for c in tested}
    hoist_welch = len(welch_reasons) == 1 and "" not in welch_reasons
    parts = []
    for c in comparisons:
        if isinstance(c, str):
            parts.append(c)
            continue
        text = f"{c.header}: {_mcnemar_text(c, not hoist_seeds)}"
        if c.welch is not None:
            text += f", Welch p = {_p(c.welch)}" + (f" (held: {c.held} ahead)" if c.held else "")
        elif not hoist_welch:
            text += f", no Welch test ({c.welch_reason})"
        parts.append(text)
    head = f"{versus} vs {rival}{where}" + (f" ({_seed_list(next(iter(seeds)))})" if hoist_seeds else "")
    tail = f"; no Welch test over seeds ({next(iter(welch_reasons))})" if hoist_welch else ""
    return f"{head}: {'; '.join(parts)}{tail}"


def _matches(versus: str, name: str, rows: pd.DataFrame) -> bool:
    """Whether a displayed row is the one named: by its name or a results label placed on it, λ spelt either way."""
    key = row_key(versus)
    return not rows.empty and (row_key(name) == key or key in {row_key(lb) for lb in rows["label"].astype(str)})


def _rival_comparisons(mine: dict, theirs: dict, columns: Sequence[Column],
                       names: tuple[str, str]) -> list[Comparison | str]:
    """A rival's tests, column by column (`mine`, `theirs`: results rows by attack, `rows._by_attack`), then the
    columns it has no result in, said once."""
    comparisons: list[Comparison | str] = []
    untested = []
    for column in columns:
        a, b = _hits(mine, column), _hits(theirs, column)
        if b.empty:
            untested.append(column.header)
        else:
            comparisons.append(compare(column, a.iloc[0], b.iloc[0], names))
    if untested:
        comparisons.append(f"no test under {', '.join(untested)} (no result for {names[1]})")
    return comparisons


def _group_notes(versus: str, placed: list[tuple[str, pd.DataFrame]], columns: Sequence[Column],
                 where: str) -> list[str]:
    """The lines of one dataset: a line per row with results, its attack columns tested against the chosen row's
    (those the chosen row has no result in: one line)."""
    name, mine = next(((n, rows) for n, rows in placed if _matches(versus, n, rows)), (versus, None))
    if mine is None:
        return [f"{versus} has no results{where}: no significance tests there"]
    my_attacks = _by_attack(mine)
    lacking = [c.header for c in columns if _hits(my_attacks, c).empty]
    notes = [f"No significance tests under {', '.join(lacking)}{where}: {name} has no result there"] if lacking else []
    columns = [c for c in columns if not _hits(my_attacks, c).empty]
    for rival, theirs in placed:
        if rival != name and not theirs.empty and columns:
            notes.append(rival_note(name, rival, _rival_comparisons(my_attacks, _by_attack(theirs), columns,
                                                                    (name, rival)), where))
    return notes


def versus_notes(versus: str, groups: Sequence[tuple[str, list[tuple[str, pd.DataFrame]]]],
                 columns: Sequence[Column]) -> list[str]:
    """Notes under a table: what the tests are, then per dataset a line per other row, each attack column's McNemar
    p per training seed and Welch p over seeds against row `versus`, or why a test could not be made.  `groups`:
    per dataset its displayed rows and their results rows (`rows.placed_rows`).  An unknown row is an error."""
    shown = next((n for _, placed in groups for n, rows in placed if _matches(versus, n, rows)), None)
    if shown is None:
        known = dict.fromkeys(n for _, placed in groups for n, rows in placed if not rows.empty)
        raise SrtbenchError(f"no row {versus!r} to test the others against; the table's rows: {', '.join(known)}")
    attacked = [c for c in columns if c.kind == "attack"]
    if not attacked:
        return [f"No significance tests against {shown}: the table has no attack columns"]
    notes = [f"Significance against {shown}, per attack: McNemar p is the exact McNemar test (two-sided) on the "
             "test images both rows were attacked on, per training seed; Welch p is Welch's t-test on the robust "
             f"accuracies of the seeds; a lead is held where both support it (two seeds or more, every paired p and "
             f"the Welch p under {ALPHA:g}, the same row ahead in each)"]
    for dataset, placed in groups:
        notes += _group_notes(versus, placed, attacked, f" on {display_name(dataset)}" if len(groups) > 1 else "")
    return notes
