"""Whether training runs converged: the held-out check's accuracy per SGD step from metrics CSVs, and a verdict.

The verdict reads only the held-out robust accuracy (`robust_acc`; rows where no check ran hold NaN and are
skipped): its change over the last quarter of the run, from the last check at or before 75% of the last check's step
to the last check. A change smaller than `FLAT_WITHIN` points is flat; a larger one is rising or falling where the
two checks tell it from noise, else unresolved. Where the trainer recorded each check's per-image outcomes
(`robust_correct`), the two checks are compared image by image, by the exact McNemar test at `ALPHA`. Where it did
not (runs trained before it did), the change must leave the 95% band that sampling alone gives two checks of n
images each: binomial, the two checks taken as independent although they score the same images, so the band is wider
than the paired test and calls fewer changes. n is the run's held-out size (`check_size`): the count its per-image
outcomes carry, else its checkpoint's, kept in the figure's values; without any the verdict has no band. A run with
no check that early gets no verdict (the trainer's final check and the one before it can be a few dozen steps apart,
where any curve looks flat).

A figure keeps its numbers in OUT.values.csv; redrawn after a run's metrics file is gone, it takes that run's checks
from there or from another convergence figure in its folder (`recorded`), so a recipe need not train again only to
redraw it (`drawable`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from srtbench.errors import SrtbenchError

FLAT_WITHIN = 1.0  # accuracy points: a smaller change of held-out robust accuracy over the tail is flat
Z95 = 1.959964  # the normal quantile of a two-sided 95% band
ALPHA = 0.05  # a change the paired test of two checks' per-image outcomes puts at p < ALPHA is a rise or a fall
TAIL = 0.25  # the tail: the last quarter of the run's steps
COLUMNS = ("step", "clean_acc", "robust_acc")
PANELS = {"clean": "clean_acc", "robust": "robust_acc"}
RULE = (f"the change of held-out robust accuracy over the last {TAIL:.0%} of the run's steps (from the last check "
        f"at or before {1 - TAIL:.0%} of the last check's step): under {FLAT_WITHIN:g} point is flat, else rising "
        "or falling where the two checks tell it from noise, else unresolved (the exact McNemar test on their "
        f"per-image outcomes at p < {ALPHA:g}; for runs without them, outside the 95% binomial band of two checks of "
        "the held-out images); where the learning rate is held and then decays, over the last "
        "quarter of the held phase, so the decay's jump is not read as a rise")


@dataclass(frozen=True)
class Verdict:
    """One run's held-out checks (step, robust accuracy) and what their tail says: the tail of the whole run, or,
    with `decay` (the step of the first check after a constant learning rate fell), of the phase before it; `n`, the
    images a check scores, gives the change its noise band; `outcomes`, each check's per-image results (`pack`ed,
    "" where the metrics have none), a paired test instead."""

    name: str
    checks: tuple[tuple[int, float], ...]
    decay: int | None = None
    n: int | None = None
    outcomes: tuple[str, ...] = ()

    @property
    def phase(self) -> tuple[tuple[int, float], ...]:
        """The checks the verdict reads: those before `decay`, else all."""
        return self.checks if self.decay is None else tuple(c for c in self.checks if c[0] < self.decay)

    @property
    def reference(self) -> tuple[int, float] | None:
        """The check the tail starts from: the last at or before (1 - TAIL) of the phase's last check's step."""
        if len(self.phase) < 2:
            return None
        bound = (1 - TAIL) * self.phase[-1][0]
        earlier = [c for c in self.phase[:-1] if c[0] <= bound]
        return earlier[-1] if earlier else None

    @property
    def change(self) -> float | None:
        """Robust accuracy at the phase's last check minus at the reference (None without one)."""
        return None if self.reference is None else self.phase[-1][1] - self.reference[1]

    @property
    def noise(self) -> float | None:
        """Half-width in points of the 95% band that sampling alone gives `change`: two binomial proportions of `n`
        images, taken as independent (None without `n` or a reference)."""
        if not self.n or self.reference is None:
            return None
        p, q = self.reference[1] / 100, self.phase[-1][1] / 100
        return 100 * Z95 * math.sqrt(max(p * (1 - p) + q * (1 - q), 0.0) / self.n)

    @cached_property  # read by `paired` and `line`: unpacked once
    def _pair(self) -> tuple | str | None:
        """The reference and last checks' per-image outcomes (two boolean vectors); why they cannot be compared
        where both cells hold something that is not two packed vectors of one length; None where either has none."""
        if self.reference is None or len(self.outcomes) != len(self.checks):
            return None
        from srtbench.outcomes import unpack

        cells = [self.outcomes[self.checks.index(c)] for c in (self.reference, self.phase[-1])]
        if not all(cell.strip() for cell in cells):
            return None
        try:
            first, last = map(unpack, cells)
        except ValueError as err:
            return str(err)
        return (first, last) if len(first) == len(last) > 0 else f"checks of {len(first)} and {len(last)} images"

    @cached_property  # read by `word` and `line`: tested once
    def paired(self) -> tuple[float, int] | None:
        """(exact McNemar p, images) of the reference and last checks of the phase, image by image, where both
        recorded their outcomes on the same images; else None."""
        if not isinstance(self._pair, tuple):
            return None
        from srtbench.tables.significance import mcnemar

        return mcnemar(*self._pair), len(self._pair[0])

    @property
    def word(self) -> str | None:
        """flat, rising, falling, or unresolved: a change of `FLAT_WITHIN` or more that the paired test does not
        support (p ≥ `ALPHA`) or, without per-image outcomes, inside the noise band; None without a reference."""
        if self.change is None:
            return None
        if abs(self.change) < FLAT_WITHIN:
            return "flat"
        if (self.paired[0] >= ALPHA if self.paired else self.noise is not None and abs(self.change) < self.noise):
            return "unresolved"
        return "rising" if self.change > 0 else "falling"

    def _change_text(self) -> str:
        """`+3.0`; with per-image outcomes `+3.0 (McNemar p = 0.012, 500 images)`; with a noise band
        `+3.0 ± 5.6 (500 images)`."""
        if self.paired:
            return f"{self.change:+.1f} (McNemar p = {self.paired[0]:.2g}, {self.paired[1]:,} images)"
        band = "" if self.noise is None else f" ± {self.noise:.1f} ({self.n:,} images)"
        unread = f" (per-image outcomes unreadable: {self._pair})" if isinstance(self._pair, str) else ""
        return f"{self.change:+.1f}{band}{unread}"

    def line(self) -> str:
        """e.g. `at: robust 74.4 at step 2,400, +0.4 over its last 25% (steps 1,800→2,400): flat`, or with a decay
        `at: robust 75.0 at step 3,510, before its learning rate first fell, +0.0 over that phase's last 25% (steps
        2,340→3,510): flat; 76.8 at step 4,800`."""
        if not self.checks:
            return f"{self.name}: no held-out check ran: no verdict"
        step, robust = self.phase[-1]
        if self.reference is None:
            return (f"{self.name}: robust {robust:.1f} at step {step:,}, no held-out check at or before "
                    f"{1 - TAIL:.0%} of its steps: no verdict")
        first = self.reference[0]
        if self.decay is None:
            return (f"{self.name}: robust {robust:.1f} at step {step:,}, {self._change_text()} over its last "
                    f"{TAIL:.0%} (steps {first:,}→{step:,}): {self.word}")
        end, last = self.checks[-1]
        return (f"{self.name}: robust {robust:.1f} at step {step:,}, before its learning rate first fell, "
                f"{self._change_text()} over that phase's last {TAIL:.0%} (steps {first:,}→{step:,}): {self.word}; "
                f"{last:.1f} at step {end:,}")


def verdict(name: str, rows: Iterable[tuple[float, float]], lrs: Iterable[float] | None = None,
            n: int | None = None, outcomes: Iterable[object] | None = None) -> Verdict:
    """The verdict on (step, held-out robust accuracy) rows in training order; rows with a NaN in either (no
    check ran) are skipped. `lrs`, the learning rate of each row: where it stays at its first value over two checks
    or more and then falls (a step decay, not a warm-up), the verdict reads the checks before it fell. `n`, the
    images a check scores: the change's noise band (none without it). `outcomes`, each row's per-image results
    (`robust_correct`: `pack`ed, empty or NaN where none): the paired test that replaces the band."""
    rows = list(rows)
    lrs = [math.nan] * len(rows) if lrs is None else [float(v) for v in lrs]
    packed = [""] * len(rows) if outcomes is None else [v if isinstance(v, str) else "" for v in outcomes]
    kept = [(int(step), float(robust), lr, bits) for (step, robust), lr, bits in zip(rows, lrs, packed)
            if not (math.isnan(float(step)) or math.isnan(float(robust)))]
    checks = tuple((step, robust) for step, robust, *_ in kept)
    rates = [lr for _, _, lr, _ in kept]
    fell = next((i for i, lr in enumerate(rates) if lr < rates[0]), None) if rates else None
    held = fell is not None and fell >= 2 and all(lr == rates[0] for lr in rates[:fell])
    return Verdict(name, checks, checks[fell][0] if held else None, n, tuple(bits for *_, bits in kept))


def metrics_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The metrics CSVs named, a folder standing for every `*.metrics.csv` in it, a checkpoint for the metrics its
    training wrote beside it (`NAME.pt` -> `NAME.metrics.csv`)."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(path.glob("*.metrics.csv"))
            if not inside:
                raise SrtbenchError(f"{path}: no *.metrics.csv in this folder")
            found += inside
        else:
            found.append(path.with_suffix(".metrics.csv") if path.suffix == ".pt" else path)
    return list(dict.fromkeys(found))


def check_size(metrics: Path, frame, default: int | None = None) -> int | None:
    """The images each held-out check of a run scored: the count its per-image outcomes carry (`robust_correct`,
    the first that unpacks), else its checkpoint's (`NAME.pt` beside `NAME.metrics.csv`, `train.check_size`: read
    whole, so only for runs trained before the outcomes were kept), else what a figure's values kept (`check_n`),
    else `default`."""
    from srtbench.checkpoint import read_torch_file
    from srtbench.outcomes import unpack

    for cell in frame["robust_correct"].dropna() if "robust_correct" in frame.columns else ():
        try:
            return len(unpack(cell)) or None
        except ValueError:
            continue
    ckpt = metrics.with_name(metrics.name.removesuffix(".metrics.csv") + ".pt")
    if ckpt.is_file():
        try:
            size = read_torch_file(ckpt)["meta"]["train"]["check_size"]
            if isinstance(size, int) and size > 0:
                return size
        except (SrtbenchError, KeyError, TypeError):
            pass
    if "check_n" in frame.columns and frame["check_n"].notna().any():
        return int(frame["check_n"].dropna().iloc[0])
    return default


def family(name: str) -> tuple[str, int]:
    """A run's name without its seed suffix, and the seed (`at-s2` -> ("at", 2); no suffix: seed 0), by the rule
    tables group seeds by (`tables.seeds.SEED_SUFFIX`), so a figure draws the seeds of one run in one colour."""
    from srtbench.tables.seeds import SEED_SUFFIX

    match = SEED_SUFFIX.search(f"{name}.pt")
    return (name[:match.start()], int(match.group(1))) if match and match.start() else (name, 0)


def convergence(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                check_n: int | None = None) -> dict[str, Verdict]:
    """Held-out clean and robust accuracy against the SGD step (two panels, a line per run named by its file's
    stem), written as OUT.png and OUT.pdf; returns each run's verdict. `check_n`: the images a check scored, for
    runs whose checkpoint is gone and whose figure did not keep it (`check_size`)."""
    import matplotlib

    from srtbench import plots

    files = metrics_files(paths)
    kept, frames, sizes = recorded(out), {}, {}
    for path in files:
        name = plots.run_name(path)
        frame = kept[name] if name in kept and not path.exists() else plots.read_metrics(path, COLUMNS)
        sizes[name] = check_size(path, frame, check_n)
        frames[name] = frame.assign(check_n=sizes[name] or math.nan)
    if len(frames) < len(files):
        raise SrtbenchError("two metrics files share a name; a line per run needs distinct file stems")
    fig, axes = plots.grid(1, len(PANELS))
    # a colour per run family (its seeds share it; tab10 repeats after ten), a marker and a dash per seed, the
    # legend beside the panels
    families = list(dict.fromkeys(family(name)[0] for name in frames))
    colors = matplotlib.colormaps["tab20" if len(families) > 10 else "tab10"]
    for name, df in frames.items():
        stem, seed = family(name)
        style = {"color": colors(families.index(stem) % 20), "marker": "os^D"[seed % 4],
                 "linestyle": ("-", "--", ":", "-.")[seed % 4]}
        for ax, column in zip(axes[0], PANELS.values()):
            rows = df[df["step"].notna() & df[column].notna()]
            ax.plot(rows["step"], rows[column].astype(float), ms=3, label=plots.literal(name), **style)
    for ax, panel in zip(axes[0], PANELS):
        ax.set(xlabel="SGD step", ylabel=f"held-out {panel} accuracy (%)", title=f"held-out {panel} accuracy")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    plots.save(fig, out, values=_values(frames))
    return {name: verdict(name, zip(df["step"], df["robust_acc"]), df.get("lr"), sizes[name],
                          df.get("robust_correct")) for name, df in frames.items()}


def recorded(out: str | os.PathLike) -> dict:
    """The held-out checks earlier drawings kept, by run: OUT.values.csv's, then those of the other convergence
    figures in its folder. What a run is drawn from once its metrics file is gone (a clone holds the results, not
    the training folder). {} without any."""
    import pandas as pd

    from srtbench import plots

    own = plots.stem_of(out).with_name(plots.stem_of(out).name + ".values.csv")
    kept: dict = {}
    for path in [own, *sorted(set(own.parent.glob("*.values.csv")) - {own})]:
        try:
            table = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue
        if "run" in table.columns and all(c in table.columns for c in COLUMNS):  # a convergence figure's
            for name, rows in table.groupby("run"):
                kept.setdefault(str(name), rows.drop(columns="run").reset_index(drop=True))
    return kept


def drawable(path: str | os.PathLike, out: str | os.PathLike) -> bool:
    """Whether the figure OUT can draw the training that writes checkpoint `path` without running it: its metrics
    file exists, or the figure's values CSV kept its checks."""
    from srtbench import plots

    metrics = metrics_files([path])[0]
    return metrics.exists() or plots.run_name(metrics) in recorded(out)


def _values(frames: dict):
    """The numbers behind the figure: a row per run and held-out check, with the learning rate and the run's
    training time so far (`lr`, `total_time_s`, where the metrics file has them), the images a check scored
    (`check_n`, where known) and its per-image outcomes (`robust_correct`, where the trainer wrote them)."""
    import pandas as pd

    rows = []
    for name, df in frames.items():
        kept = df[df["step"].notna() & df["robust_acc"].notna()]
        columns = [c for c in (*COLUMNS, "lr", "total_time_s", "check_n", "robust_correct") if c in kept.columns]
        rows.append(kept[columns].assign(run=name))
    table = pd.concat(rows)
    return table[["run", *(c for c in table.columns if c != "run")]]
