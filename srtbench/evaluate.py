"""Attack checkpoints with the battery: per-example outcomes, the paper's risks, result rows, sanity flags.

`evaluate(paths, cfg)` runs every attack × budget fraction on the first `n` test examples, writes one
CSV row per (checkpoint, attack, fraction) with `results.append` and the per-example outcomes beside it
with `results.write_per_example`.  Attacks are aimed at the clean prediction C(x), so one run measures
the risks of Definition 2 per example: R_stand = I{C(x) ≠ y}, R_adv = max over N(x) of I{C(x') ≠ y}
(x ∈ N(x), so a misclassified x counts), R_rob = I{C(x') ≠ C(x)}; they obey Lemma 1 by construction, so
they are reported as numbers, not checked.
The worst case over attacks is taken per example ("not min of means"), within each group of attacks (a threat,
and for pixel-wise attacks a norm: `AttackInfo.group`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import math
import os
import sys
import time
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srtbench import __version__, checks, distributed, results
from srtbench.attacks import (
    ATTACKS,
    Attack,
    AttackOutput,
    attack_info,
    build,
    cover_pairs,
    must_beat_pairs,
    split_specs,
)
from srtbench.checkpoint import check_dtypes
from srtbench.checkpoint import load as load_checkpoint
from srtbench.config import field, require, validate
from srtbench.data import DataConfig
from srtbench.errors import SrtbenchError, describe
from srtbench.maximizers import build as build_maximizer
from srtbench.maximizers import cross_entropy, eval_mode, misclassified, predict
from srtbench.neighborhoods import ExampleRNG, Neighborhood, budget_record
from srtbench.outcomes import Examples, accuracy, risks, worst_case
from srtbench.progress import progress_bar
from srtbench.runtime import DEVICES, check_writable, command_line, device_label, exact_fp32, git_commit

SUBSET = 64  # examples the extra sanity runs (ε = 0, ε = 1, Square) use
SQUARE_QUERIES = 1000  # Square's query budget in the gradient-masking check


@dataclass
class EvalConfig:
    attacks: str = field("all", "attacks: all, or a comma list of name or name[key=value,...]")
    fractions: tuple[float, ...] = field((1.0,), "budget fractions (Figures 1 and 7), e.g. 0.2,0.4,0.6,0.8,1.0")
    n: int = field(1000, "evaluate the first N test examples")
    batch_size: int = field(256, "examples per attack batch")
    device: str = field("auto", "auto, cpu or cuda", choices=DEVICES)
    seed: int = field(0, "seed of the attacks' random starts and draws")
    dataset: str | None = field(None, "dataset (default: the checkpoint's; required with --model)")
    data_dir: str | None = field(None, "folder holding the dataset files")
    out: str = field("results/eval.csv", "results CSV (per-example files go to NAME.examples/ beside it)")
    force: bool = field(False, "recompute rows that already exist in --out")
    model: str | None = field(None, "module:function building a foreign model; CKPT is then its state dict")
    sanity: bool = field(True, "run the sanity checks (a few extra attack runs on 64 examples)")

    def __post_init__(self):
        validate(self)
        require(self.n >= 1, f"--n must be >= 1, got {self.n}")
        require(0 <= self.seed < 2**32, f"--seed must be in [0, 2**32), got {self.seed}")
        require(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        require(len(self.fractions) >= 1, "--fractions is empty")
        for f in self.fractions:
            require(math.isfinite(f) and 0 <= f <= 1, f"--fractions must lie in [0, 1], got {f:g}")
        require(len(set(map(float, self.fractions))) == len(self.fractions),
                f"--fractions lists a value twice: {','.join(f'{f:g}' for f in self.fractions)}")
        require(self.model is None or all(self.model.partition(":")[::2]),
                f"--model must be module:function, got {self.model!r}")


# ---------------------------------------------------------------- what is attacked


@dataclass
class Target:
    """A model to attack with its provenance (meta read defensively: foreign files lack training keys)."""

    model: nn.Module
    path: str
    sha256: str
    dataset: str
    label: str
    defense: str
    defense_params: dict
    train_threat: str
    model_name: str
    trained: dict | None = None  # the threat config it was trained against (its budgets become the attacks')
    training: dict = dataclass_field(default_factory=dict)  # the results row's training columns (train_seed, ...)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_target(path: str, cfg: EvalConfig) -> Target:
    if cfg.model is not None:
        return _foreign_target(path, cfg)
    ckpt = load_checkpoint(path)
    meta = ckpt.meta
    if cfg.dataset is not None and meta["dataset"] != cfg.dataset:
        raise SrtbenchError(f"{path}: checkpoint is for {meta['dataset']}, not {cfg.dataset}")
    threat = meta.get("threat")
    trained = dict(threat) if isinstance(threat, dict) else None
    train_threat = threat.get("threat", "unknown") if isinstance(threat, dict) else str(threat or "unknown")
    if meta.get("defense") == "standard":  # trained against no neighborhood: the dataset's budgets apply
        train_threat, trained = "none", None
    label = results.clean_text(str(meta.get("label") or Path(path).stem))  # free text from a downloaded file
    return Target(ckpt.build_model(), str(path), sha256(path), meta["dataset"], label,
                  str(meta.get("defense") or "unknown"), dict(meta.get("defense_params") or {}), train_threat,
                  str(meta["model"]), trained, training_columns(meta, trained))


def training_columns(meta: dict, trained: dict | None) -> dict[str, Any]:
    """What a results row records about the training behind a checkpoint, so tables and plots never reopen it."""
    sizes: tuple[Any, Any] = (None, None)
    if isinstance(meta.get("data"), dict):
        with contextlib.suppress(Exception):  # an older or foreign record: the counts stay empty
            known = {f.name for f in fields(DataConfig)}
            sizes = DataConfig(**{k: v for k, v in meta["data"].items() if k in known}).sizes
    seconds = meta.get("train_time_s")
    return {"train_budget": budget_record(trained), "train_seed": meta.get("seed"), "n_labeled": sizes[0],
            "n_unlabeled": sizes[1], "preset": meta.get("preset"),
            "train_time_s": round(float(seconds), 3) if isinstance(seconds, (int, float)) else None}


def _foreign_target(path: str, cfg: EvalConfig) -> Target:
    """`--model module:function` (RobustBench style): function() builds the model, CKPT holds its weights."""
    require(cfg.dataset is not None, "--model needs --dataset (a foreign checkpoint does not name its dataset)")
    module_name, fn_name = cfg.model.split(":", 1)
    builder = _import_builder(module_name, fn_name, cfg.model)
    if not Path(path).is_file():
        raise SrtbenchError(f"{path}: no such state dict file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same one-line error
        raise SrtbenchError(f"{path}: not a loadable state dict ({type(err).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        model = builder()
    except Exception as err:  # noqa: BLE001 - the user's code may raise anything
        raise SrtbenchError(f"--model {cfg.model}: {fn_name}() raised {describe(err, 160)}") from None
    if not isinstance(model, nn.Module):
        raise SrtbenchError(f"--model {cfg.model}: {fn_name}() returned {type(model).__name__}, not a torch.nn.Module")
    check_dtypes(model, state, path)
    try:
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - wrong keys, shapes or a non-dict all mean the same
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip() and "Error(s) in loading" not in ln]
        raise SrtbenchError(f"{path}: weights do not fit {cfg.model} ({(lines or [type(err).__name__])[0][:160]})") \
            from None
    return Target(model, str(path), sha256(path), cfg.dataset, Path(path).stem, "unknown", {}, "unknown", cfg.model)


def _import_builder(module_name: str, fn_name: str, spec: str):
    """The builder named by `--model module:function`; a module in the current folder counts, as under `python -m`
    (the `srtbench` script's sys.path lacks the current folder)."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        builder = getattr(importlib.import_module(module_name), fn_name)
    except Exception as err:  # noqa: BLE001 - importing user code may raise anything (SyntaxError included)
        raise SrtbenchError(f"--model {spec}: cannot import ({describe(err, 160)})") from None
    if not callable(builder):
        raise SrtbenchError(f"--model {spec}: {fn_name} is not callable ({type(builder).__name__})")
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: calling them will tell
        params = []
    needed = [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if needed:
        raise SrtbenchError(f"--model {spec}: {fn_name}() must build the model without arguments; it needs "
                            f"{', '.join(needed)} (wrap it in a function that takes none)")
    return builder


def check_model(target: Target, x: torch.Tensor, num_classes: int, batch_size: int, device: torch.device) -> None:
    """Before any attack: finite weights, and one finite logit per class for every clean image.

    A model that answers with another number of classes, or with NaN, would otherwise be scored 0% robust
    with every flag passing."""
    model = target.model.to(device)
    tensors = [*model.named_parameters(), *model.named_buffers()]
    bad = [name for name, t in tensors if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise SrtbenchError(f"{target.path}: the weights hold NaN or infinite values ({', '.join(bad[:3])}"
                            f"{', ...' if len(bad) > 3 else ''}); the file is damaged or its training diverged")
    finite = []
    with eval_mode(model), torch.no_grad():
        for lo in range(0, len(x), batch_size):
            xb = x[lo:lo + batch_size]
            try:
                out = model(xb.to(device))
            except Exception as err:  # noqa: BLE001 - the user's model may raise anything
                raise SrtbenchError(f"{target.path}: the model fails on a batch of {len(xb)} {target.dataset} images "
                                    f"({describe(err, 160)}); it must take images of shape "
                                    f"{tuple(xb.shape[1:])} in [0, 1]") from None
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(xb), num_classes):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise SrtbenchError(f"{target.path}: the model outputs shape {got} on a batch of {len(xb)} "
                                    f"{target.dataset} images; expected ({len(xb)}, {num_classes}), one logit per "
                                    "class")
            finite.append(torch.isfinite(out).all(1).cpu())
    finite = torch.cat(finite)
    if not finite.all():
        raise SrtbenchError(f"{target.path}: the model outputs NaN or infinite logits on {int((~finite).sum())} of "
                            f"{len(x)} clean {target.dataset} images although its weights are finite")


def check_out(out: str) -> None:
    """`--out` must be a file that can be written, checked before any work: not a folder, not under a file."""
    check_writable(out, "a CSV file (e.g. results/eval.csv)")
    path = Path(out)
    side = path.parent / f"{path.stem}.examples"
    if side.exists() and not side.is_dir():
        raise SrtbenchError(f"--out {out}: {side} (where per-example outcomes go) is a file, not a folder")


# ---------------------------------------------------------------- running attacks in batches


def held_out_check(model: nn.Module, images, neighborhood: Neighborhood, steps: int, seed: int,
                   device: torch.device, chunk: int = 250) -> tuple[float, float]:
    """The trainer's quick robustness check: (clean accuracy, robust accuracy) in percent on `images` (an
    ImageSet) under the attack the neighborhood names for itself (`attack_solver`: PGD from a uniform start with
    2.5·ε/K steps pixel-wise, GridAdv spatially, in sequence for a compound), examples stopping once
    misclassified.  Its own generator, so it never disturbs the training randomness."""
    if len(images) == 0:
        return float("nan"), float("nan")
    attack, gen = build_maximizer(neighborhood.attack_solver(steps)), torch.Generator().manual_seed(seed)
    clean = robust = 0
    with eval_mode(model):
        for lo in range(0, len(images), chunk):
            x, y = images.batch(torch.arange(lo, min(lo + chunk, len(images))))
            x, y = x.to(device), y.to(device)
            pred = predict(model, x)
            theta = attack(model, neighborhood, x, y, cross_entropy, done=misclassified, gen=gen)
            adv = predict(model, neighborhood.apply(x, theta).detach())
            clean, robust = clean + (pred == y).sum().item(), robust + (adv == y).sum().item()
    return 100.0 * clean / len(images), 100.0 * robust / len(images)


def example_rng(seed: int, start: int, count: int) -> ExampleRNG:
    """Random draws depend on (seed, each example's index) only: not on the batch size, the sharding or the
    order of attacks (library attacks that draw from one generator per batch are marked `batch_dependent`)."""
    return ExampleRNG(seed, range(start, start + count))


def run_attack(model, attack: Attack, x, target, batch_size, device, seed, progress=None, task=None) -> AttackOutput:
    """The attack over all examples, batch by batch; outputs gathered on the CPU.

    Under torchrun, rank r takes batches r, r + world, ...; every rank then holds all outputs.  Random
    draws depend only on the example, so the result equals a single process's at any batch size.
    """
    d = distributed.current()
    rank, size = d.rank, d.world
    parts: dict[int, AttackOutput] = {}
    done = 0
    for i, lo in enumerate(range(0, len(x), batch_size)):
        if i % size != rank:
            continue
        xb, tb = x[lo:lo + batch_size].to(device), target[lo:lo + batch_size].to(device)
        parts[lo] = attack(model, xb, tb, example_rng(seed, lo, len(xb))).to("cpu")
        done += len(xb) * size  # rank 0 reports for all ranks, which move in step
        if progress is not None:
            progress.update(task, completed=min(len(x), done))
    if size > 1:
        parts = {lo: part for g in distributed.gather(parts, d) for lo, part in g.items()}
    out = None
    for lo in sorted(parts):
        out = parts[lo] if out is None else out.cat(parts[lo])
    return out


# ---------------------------------------------------------------- one checkpoint


@dataclass
class AttackRun:
    """One row and the per-example outcomes behind it."""

    row: dict[str, Any]
    examples: Examples
    attack: str
    threat: str
    fraction: float


def _params_hash(params: dict) -> str:
    return hashlib.sha256(results.dumps(params).encode()).hexdigest()[:8]


class CheckpointEvaluation:
    def __init__(self, target: Target, cfg: EvalConfig, x, y, device, existing: set, progress):
        self.t, self.cfg, self.x, self.y, self.device = target, cfg, x, y, device
        self.existing, self.progress = existing, progress
        self.out = Path(cfg.out)
        self.clean_pred = predict(target.model, x, cfg.batch_size, device)
        self.index = torch.arange(len(x))
        self.cache: dict[str, AttackOutput] = {}
        self.zero_flags: dict[str, dict] = {}
        self.runs: list[AttackRun] = []
        self.common_flags = {"deterministic": checks.deterministic(target.model, x[:SUBSET].to(device))}

    @property
    def clean_acc(self) -> float:
        return accuracy(self.clean_pred == self.y)

    def _side_path(self, name: str, params: dict, fraction: float) -> str:
        t, c = self.t, self.cfg
        return (f"{self.out.stem}.examples/{t.sha256[:12]}-{name}-{_params_hash(params)}"
                f"-f{fraction:g}-n{c.n}-s{c.seed}.pt")

    def _outputs(self, attack: Attack, label: str) -> tuple[AttackOutput, float]:
        """The attack's output on all examples and its wall time (minimum-norm runs serve every fraction)."""
        if attack.run_key not in self.cache:
            task = self.progress.add_task(label, total=len(self.x), info="")
            start = time.perf_counter()
            out = run_attack(self.t.model, attack, self.x, self.clean_pred, self.cfg.batch_size, self.device,
                             self.cfg.seed, self.progress, task)
            self.cache[attack.run_key] = (out, time.perf_counter() - start)
        return self.cache[attack.run_key]

    def run(self, spec: str, fraction: float) -> AttackRun:
        """One (attack, fraction): its row (every flag but those comparing rows, `cross_flags`) and outcomes. The
        side file is written as soon as the attack ends; the CSV once, after the cross-row flags."""
        atk = self._build(spec, fraction)
        key_row = self._row_base(atk, fraction)
        side = self._side_path(atk.name, atk.params, fraction)
        done = None if self.cfg.force else self._finished(key_row, side)
        if done is not None:
            return AttackRun(*done, atk.name, atk.threat, fraction)
        full, wall = self._outputs(atk, f"{self.t.label} · {spec} × {fraction:g}")
        out = atk.at_budget(full, self.x)
        adv_pred = predict(self.t.model, out.x_adv, self.cfg.batch_size, self.device)
        again = predict(self.t.model, out.x_adv, max(1, self.cfg.batch_size // 2 + 1), self.device)
        ex = Examples(self.index, self.y, self.clean_pred, adv_pred, out.distance)
        flags = {**self.common_flags, "in_neighborhood": checks.in_neighborhood(out.inside),
                 "reclassified": checks.reclassified(adv_pred, again)}
        if self.cfg.sanity:
            flags["zero_budget"] = self._zero_budget(spec, atk)
        row = {**key_row, **self._outcome(ex, atk), "flags": flags, "per_example": side, "wall_time_s": round(wall, 3)}
        if distributed.current().main:  # rank 0 writes, the others hold the same outcomes
            results.write_per_example(self.out.parent / side, ex.as_dict(), row)
        return AttackRun(row, ex, atk.name, atk.threat, fraction)

    def _finished(self, key_row: dict, side: str) -> tuple[dict, Examples] | None:
        """The row and outcomes of this (attack, fraction) if done before: in --out, or only in its side file (an
        evaluation cut short before it wrote the CSV). A row without its side file is recomputed."""
        try:
            saved = results.read_per_example(self.out.parent / side)
        except SrtbenchError:
            return None
        key = results.key(key_row)
        row = next((r for r in self.existing_rows() if results.key(r) == key), None) if key in self.existing else None
        if row is None and "row" in saved:
            stored = json.loads(saved["row"])
            row = stored if results.key(stored) == key else None
        if row is None:
            return None
        parsed = {c: json.loads(row[c]) if isinstance(row[c], str) and row[c] else {}
                  for c in ("flags", "budget", "budget_source")}
        return {**row, **parsed}, Examples.from_dict(saved)

    def _build(self, spec: str, fraction: float) -> Attack:
        """The attack at this checkpoint's budgets; an attack that draws per batch records the batch size."""
        atk = build(spec, self.t.dataset, fraction, self.t.trained)
        if atk.batch_dependent:
            atk.params["batch_size"] = self.cfg.batch_size
        return atk

    def existing_rows(self) -> list[dict]:
        if not hasattr(self, "_existing_rows"):
            df = results.read(self.out).drop(columns=["source"])
            self._existing_rows = [dict(r) for _, r in df.iterrows()]
        return self._existing_rows

    def _zero_budget(self, spec: str, atk: Attack) -> dict:
        if atk.run_key in self.zero_flags:
            return self.zero_flags[atk.run_key]
        zero = self._build(spec, 0.0)
        if zero.minimum_norm:  # the unbounded run is cached; only the threshold changes
            x, label, out = self.x, self.y, zero.at_budget(self._outputs(zero, "")[0], self.x)
            clean = self.clean_pred
        else:
            x, label, clean = self.x[:SUBSET], self.y[:SUBSET], self.clean_pred[:SUBSET]
            out = run_attack(self.t.model, zero, x, clean, self.cfg.batch_size, self.device, self.cfg.seed)
        adv = predict(self.t.model, out.x_adv, self.cfg.batch_size, self.device)
        flag = checks.zero_budget(accuracy(clean == label), accuracy((clean == label) & (adv == label)), len(x))
        self.zero_flags[atk.run_key] = flag
        return flag

    def _row_base(self, atk: Attack, fraction: float) -> dict[str, Any]:
        t, c = self.t, self.cfg
        return {"checkpoint": t.path, "checkpoint_sha256": t.sha256, "label": t.label, "defense": t.defense,
                "defense_params": t.defense_params, "train_threat": t.train_threat, "model": t.model_name,
                **t.training, "dataset": t.dataset, "split": "test", "attack": atk.name,
                "attack_params": results.dumps(atk.params), "fraction": float(fraction), "budget": atk.budget,
                "budget_source": atk.budget_source, "n": c.n, "seed": c.seed}

    def _outcome(self, ex: Examples, atk: Attack) -> dict[str, Any]:
        robust = int(ex.adv_correct.sum())
        low, high = results.wilson_interval(robust, len(ex.label))
        found = ex.broken | torch.tensor(atk.minimum_norm)  # a minimum-norm distance counts beyond the budget too
        dist = ex.distance[ex.clean_correct & torch.isfinite(ex.distance) & found]
        return {"clean_acc": round(self.clean_acc, 4), "robust_acc": round(100 * robust / len(ex.label), 4),
                "robust_ci_low": round(low, 4), "robust_ci_high": round(high, 4),
                "mean_distance": round(dist.mean().item(), 6) if len(dist) else "",
                "median_distance": round(dist.median().item(), 6) if len(dist) else "",
                "device": device_label(self.device), "srtbench_version": __version__, "git_commit": git_commit(),
                "command": command_line(), "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}


# ---------------------------------------------------------------- cross-row flags


def _same_budget(a: dict, b: dict) -> bool:
    """Two rows attack at one budget where they share budget keys (a compound and its part share ε or the
    transform's range)."""
    shared = set(a) & set(b)
    return bool(shared) and all(abs(float(a[k]) - float(b[k])) <= 1e-9 for k in shared)


def _paired(runs: list[AttackRun], pairs) -> list[tuple[str, str, AttackRun, AttackRun]]:
    """(first, second, its run, the other's run) for every pair of runs of the named attacks at one fraction
    and one budget: never pgd at ε 0.05 against fgsm at ε 0.3."""
    return [(a, b, r, o) for a, b in pairs for r in runs if r.attack == a for o in runs
            if o.attack == b and o.fraction == r.fraction and _same_budget(r.row["budget"], o.row["budget"])]


def cross_flags(ev: CheckpointEvaluation) -> None:
    """Flags that compare rows: budget monotonicity (per attack setting), attack order and compound ⊇ part
    (at equal budgets), ε = 1, Square."""
    n = ev.cfg.n
    settings: dict[tuple, list[AttackRun]] = {}
    for r in ev.runs:
        settings.setdefault((r.attack, str(r.row["attack_params"])), []).append(r)
    for group in settings.values():
        accs = {r.fraction: r.row["robust_acc"] for r in group}
        if len(accs) > 1:
            flag = checks.monotone_budget(accs, n)
            for r in group:
                r.row["flags"]["monotone_budget"] = flag
    for strong, weak, s, w in _paired(ev.runs, must_beat_pairs()):  # AttackInfo.must_beat
        flag = checks.attack_order(strong, s.row["robust_acc"], weak, w.row["robust_acc"], n)
        s.row["flags"][f"order_{strong}_vs_{weak}"] = w.row["flags"][f"order_{strong}_vs_{weak}"] = flag
    for compound, part, c, p in _paired(ev.runs, cover_pairs()):  # AttackInfo.covers
        flag = checks.compound_dominates(compound, part, c.examples.broken, p.examples.broken)
        c.row["flags"][f"{compound}_covers_{part}"] = p.row["flags"][f"{compound}_covers_{part}"] = flag
    linf = [r for r in ev.runs if (attack_info(r.attack).threat, attack_info(r.attack).norm) == ("pixel", "linf")]
    if ev.cfg.sanity and linf:
        for r in linf:
            r.row["flags"].update(_pixel_flags(ev, linf))


def _pixel_flags(ev: CheckpointEvaluation, linf: list[AttackRun]) -> dict:
    if "pixel" not in ev.zero_flags:
        x, clean = ev.x[:SUBSET], ev.clean_pred[:SUBSET]
        correct = clean == ev.y[:SUBSET]
        with torch.no_grad():
            num_classes = ev.t.model(x[:1].to(ev.device)).shape[1]
        # from x itself: a random start at ε = 1 is a noise image, which would hide a masked model's gradients
        unbounded = build("pgd[epsilon=1.0,step_size=0.1,start=none]", ev.t.dataset)
        out = run_attack(ev.t.model, unbounded, x, clean, ev.cfg.batch_size, ev.device, ev.cfg.seed)
        acc = accuracy(correct & (predict(ev.t.model, out.x_adv, ev.cfg.batch_size, ev.device) == ev.y[:SUBSET]))
        flags = {"unbounded_pgd": checks.unbounded_pgd(acc, num_classes, len(x))}
        full = [r for r in linf if r.fraction == 1.0 and attack_info(r.attack).white_box]
        if full:
            best = min(full, key=lambda r: r.examples.adv_correct[:SUBSET].sum().item())
            white = accuracy(best.examples.adv_correct[:SUBSET])
            black = accuracy(correct & (_square(ev, best, x, clean) == ev.y[:SUBSET]))
            flags["gradient_masking"] = checks.gradient_masking(best.attack, white, black, len(x))
        ev.zero_flags["pixel"] = flags
    return ev.zero_flags["pixel"]


def _square(ev: CheckpointEvaluation, best: AttackRun, x, clean) -> torch.Tensor:
    import torchattacks as ta

    eps = float(best.row["budget"]["epsilon"])
    model = ev.t.model.to(ev.device)
    with eval_mode(model):
        square = ta.Square(model, norm="Linf", eps=eps, n_queries=SQUARE_QUERIES, n_restarts=1, seed=ev.cfg.seed)
        x_adv = square(x.to(ev.device), clean.to(ev.device)).detach() if eps > 0 else x
    return predict(model, x_adv, ev.cfg.batch_size, ev.device)


# ---------------------------------------------------------------- the whole evaluation


@dataclass
class Summary:
    target: Target
    clean_acc: float
    runs: list[AttackRun]
    worst: dict[tuple[str, float], dict[str, Any]]  # (threat, fraction) -> risks of Definition 2, attacks


def evaluate(paths: list[str], cfg: EvalConfig) -> list[Summary]:
    from srtbench import data

    check_out(cfg.out)
    specs = split_specs(cfg.attacks)
    targets = [load_target(p, cfg) for p in paths]
    for target in targets:  # every spec must build before the first attack runs
        for spec in specs:
            for fraction in cfg.fractions:
                build(spec, target.dataset, fraction, target.trained)
    d, device = distributed.init_distributed(cfg.device)
    exact_fp32(device)
    tests: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for target in targets:  # every model must answer its clean test images sanely before the first attack runs
        if target.dataset not in tests:
            test = data.load(target.dataset, False, cfg.data_dir)
            require(cfg.n <= len(test), f"--n {cfg.n} exceeds the {len(test)} test examples of {target.dataset}")
            tests[target.dataset] = test.batch(torch.arange(cfg.n))
        check_model(target, tests[target.dataset][0], data.DATASETS.get(target.dataset).num_classes, cfg.batch_size,
                    device)
        target.model.cpu()  # one model on the device at a time
    summaries = []
    for target in targets:
        x, y = tests[target.dataset]
        target.model.to(device).eval()
        existing = set() if cfg.force else results.existing_keys(cfg.out)
        with progress_bar(disable=not d.main) as progress:
            ev = CheckpointEvaluation(target, cfg, x, y, device, existing, progress)
            for spec in specs:
                for fraction in cfg.fractions:
                    ev.runs.append(ev.run(spec, fraction))
            cross_flags(ev)
        if d.main:
            results.append(cfg.out, [r.row for r in ev.runs], replace=True)
        distributed.barrier(d)  # every rank sees the finished file before the next checkpoint
        summaries.append(Summary(target, ev.clean_acc, ev.runs, _worst(ev.runs)))
    return summaries


def _worst(runs: list[AttackRun]) -> dict[tuple[str, float], dict[str, Any]]:
    groups: dict[tuple[str, float], list[AttackRun]] = {}
    for r in runs:
        groups.setdefault((r.threat, r.fraction), []).append(r)
    out = {}
    for key, group in groups.items():
        ex = worst_case([r.examples for r in group])
        out[key] = {**risks(ex), "robust_acc": accuracy(ex.adv_correct), "attacks": [r.attack for r in group]}
    return out


def known_attacks() -> list[str]:
    return ATTACKS.names()
