"""`srtbench evaluate CKPT...` (the attack battery) and `srtbench attacks` (what it holds)."""

from __future__ import annotations

import click

from srtbench.cli.app import echo, main
from srtbench.config import click_options, from_options
from srtbench.evaluate import EvalConfig


@main.command("evaluate")
@click.argument("checkpoints", nargs=-1, metavar="[CKPT]...")
@click_options(EvalConfig)
def evaluate_cmd(checkpoints, **options):
    """Attack checkpoints; one CSV row per (checkpoint, attack, fraction), re-runs skip existing rows.

    A --model that brings its own weights (RobustBench, Hugging Face Hub, timm, torchvision, an export folder)
    takes no CKPT; its weights are read from this machine's files only, never downloaded.

    \b
    srtbench evaluate runs/srt.pt --attacks pgd,gridadv --n 1000 --out results/srt.csv
    srtbench evaluate runs/*.pt --attacks 'pgd[steps=100],fgsm' --fractions 0.2,0.4,0.6,0.8,1.0
    srtbench evaluate weights.pt --model mypkg.nets:build --dataset cifar10 --attacks autoattack
    srtbench evaluate --model robustbench:Carmon2019Unlabeled --dataset cifar10 --threat-model Linf
    srtbench evaluate --model hf_hub:ORG/NAME --attacks pgd      (an `srtbench export` folder on the Hub)
    srtbench evaluate --model exported/srt --attacks pgd         (the folder itself)
    torchrun --nproc-per-node 2 -m srtbench -- evaluate runs/srt.pt --n 1000   (examples sharded over ranks;
      the `--` stops torchrun from reading --n as its own --nnodes)
    """
    from srtbench import sources
    from srtbench.distributed import current
    from srtbench.evaluate import evaluate
    from srtbench.evaluate.evaluation import earlier_notes
    from srtbench.runtime import set_threads

    set_threads()  # this process's share of the cores ($SRTBENCH_THREADS), before any work
    cfg = from_options(EvalConfig, options)
    if not checkpoints and (cfg.model is None or sources.find(cfg.model) is None):
        raise click.UsageError(f"Missing argument 'CKPT...', the checkpoints to attack (none where --model brings "
                               f"its own weights: {sources.syntaxes()})")
    summaries = evaluate(_without_resume_states(checkpoints), cfg)
    if current().main:  # under torchrun, rank 0 speaks for all
        for summary in summaries:
            echo(report(summary))
            for note in earlier_notes(cfg.out, summary):
                echo(note, err=True)
        echo(f"rows in {cfg.out}")


def _without_resume_states(paths) -> list[str]:
    """A `runs/*.pt` glob also takes NAME.last.pt, the resume state older versions wrote beside NAME.pt (now
    NAME.resume): skip it where NAME.pt is evaluated too, so no run is evaluated twice."""
    from pathlib import Path

    from srtbench.checkpoint import LEGACY_RESUME_SUFFIX

    given, kept = {Path(p) for p in paths}, []
    for p in paths:
        name = Path(p).name
        final = Path(p).with_name(name[: -len(LEGACY_RESUME_SUFFIX)] + ".pt")
        if name.endswith(LEGACY_RESUME_SUFFIX) and final in given:
            echo(f"note: skipped {p}: the resume state of {final}, which is evaluated", err=True)
        else:
            kept.append(p)
    return kept


SYMBOLS = {"epsilon": "ε", "rotation": "rot", "translation": "tr", "gamma": "γ"}


def budget_text(budget: dict, sources: dict) -> str:
    """`ε 0.1 (checkpoint)`: each budget with where it came from."""
    parts = [f"{SYMBOLS.get(k, k)} {float(v):g}" + (f" ({sources[k]})" if k in (sources or {}) else "")
             for k, v in (budget or {}).items()]
    return ", ".join(parts)


def report(summary) -> str:
    """Rows with their budgets, worst case per group of attacks (threat, norm) with the risks of Definition 2, every
    WARN flag.

    Percentages are rounded as the tables round them (`tables.fixed`: 15.625 is 15.63 in both) and printed as
    written (tabulate would reparse "40.00" as 40)."""
    from tabulate import tabulate

    from srtbench.tables import fixed

    t = summary.target
    lines = [f"\n{t.label}  ({t.path}, {t.dataset}, defense {t.defense}, trained against {t.train_threat}, "
             f"clean {fixed(summary.clean_acc)}%)"]
    rows = []
    for r in summary.runs:
        row = r.row
        flags = row["flags"]
        warns = sum(1 for f in flags.values() if f["status"] == "WARN")
        dist = row.get("median_distance")
        rows.append([r.attack, budget_text(row["budget"], row.get("budget_source")), f"{r.fraction:g}",
                     fixed(row["robust_acc"]), f"[{fixed(row['robust_ci_low'], 1)}, {fixed(row['robust_ci_high'], 1)}]",
                     "" if dist in ("", None) or dist != dist else f"{float(dist):.3g}",
                     f"{float(row['wall_time_s']):.1f}",
                     f"{len(flags) - warns} PASS" + (f", {warns} WARN" if warns else "")])
    lines.append(tabulate(rows, headers=["attack", "budget (from)", "fraction", "robust %", "95% CI", "median dist",
                                         "time s", "flags"], disable_numparse=True,
                          colalign=("left", "left", "right", "right", "left", "right", "right", "left")))
    times = {}  # wall time per attack, summed over fractions (rows skipped as already done count their first run)
    for r in summary.runs:
        times[r.attack] = times.get(r.attack, 0.0) + float(r.row["wall_time_s"])
    if times:
        lines.append(f"attack wall time: {sum(times.values()):.1f} s in all ("
                     + ", ".join(f"{name} {t:.1f} s" for name, t in sorted(times.items(), key=lambda kv: -kv[1])) + ")")
    worst = [[group, f"{f:g}", *(fixed(w[k]) for k in ("robust_acc", "R_stand", "R_rob", "R_adv")),
              ",".join(w["attacks"])]
             for (group, f), w in sorted(summary.worst.items())]
    lines.append("\nworst case per example (Definition 2 risks, %):")
    headers = ["threat (norm)", "fraction", "robust %", "R_stand", "R_rob", "R_adv", "attacks"]
    lines.append(tabulate(worst, headers=headers,
                          disable_numparse=True, colalign=("left", *["right"] * 5, "left")))
    warns = sorted({(name, f["detail"]) for r in summary.runs for name, f in r.row["flags"].items()
                    if f["status"] == "WARN"})
    lines.append("\nsanity: " + ("all flags PASS" if not warns else f"{len(warns)} WARN"))
    lines += [f"  WARN {name}: {detail}" for name, detail in warns]
    lines += [f"  adaptive: {f.cause} ({f.detail}) -> {', '.join(f.attacks) or 'nothing runnable'}"
              for f in getattr(summary, "findings", [])]
    return "\n".join(lines)


@main.command("attacks")
@click.option("--dataset", default=None, help="show the defaults of one dataset only")
def attacks_cmd(dataset):
    """List the attack battery with its default settings per dataset and where they come from."""
    from srtbench.attacks import ATTACKS, attack_defaults
    from srtbench.data import DATASETS

    datasets = [DATASETS.get(dataset).name] if dataset else DATASETS.names()
    echo("Defaults per dataset; `srtbench evaluate` attacks a checkpoint at the budget it was trained against\n"
               "(ε for pixel-wise attacks, rotation/translation for spatial ones; the step size follows ε), and\n"
               "settings written as name[k=v] win over both. Each row's budget_source says which applied.\n")
    for name in ATTACKS.names():
        info = ATTACKS.meta(name)["info"]
        echo(f"{name}  [{info.group}{', minimum-norm' if info.minimum_norm else ''}; {info.library}]")
        echo(f"    {info.source}")
        for ds in datasets:
            settings = ",".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in attack_defaults(name, ds).items())
            echo(f"    {ds:13s} {name}[{settings}]")
        echo(f"    budget (scaled by --fractions): {', '.join(info.budget)}")
        if info.notes:
            echo(f"    {info.notes}")
