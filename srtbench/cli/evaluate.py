"""`srtbench evaluate CKPT...` (the attack battery) and `srtbench attacks` (what it holds)."""

from __future__ import annotations

import click

from srtbench.cli import main
from srtbench.config import click_options, from_options
from srtbench.evaluate import EvalConfig


@main.command("evaluate")
@click.argument("checkpoints", nargs=-1, required=True, metavar="CKPT...")
@click_options(EvalConfig)
def evaluate_cmd(checkpoints, **options):
    """Attack checkpoints; one CSV row per (checkpoint, attack, fraction), re-runs skip existing rows.

    \b
    srtbench evaluate runs/srt.pt --attacks pgd,gridadv --n 1000 --out results/srt.csv
    srtbench evaluate runs/*.pt --attacks 'pgd[steps=100],fgsm' --fractions 0.2,0.4,0.6,0.8,1.0
    srtbench evaluate weights.pt --model mypkg.nets:build --dataset cifar10 --attacks autoattack
    torchrun --nproc-per-node 2 -m srtbench -- evaluate runs/srt.pt --n 1000   (examples sharded over ranks;
      the `--` stops torchrun from reading --n as its own --nnodes)
    """
    from srtbench.evaluate import evaluate, world

    cfg = from_options(EvalConfig, options)
    summaries = evaluate(list(checkpoints), cfg)
    if world()[0] == 0:  # under torchrun, rank 0 speaks for all
        for summary in summaries:
            click.echo(report(summary))
        click.echo(f"rows in {cfg.out}")


SYMBOLS = {"epsilon": "ε", "rotation": "rot", "translation": "tr", "gamma": "γ"}


def budget_text(budget: dict, sources: dict) -> str:
    """`ε 0.1 (checkpoint)`: each budget with where it came from."""
    parts = [f"{SYMBOLS.get(k, k)} {float(v):g}" + (f" ({sources[k]})" if k in (sources or {}) else "")
             for k, v in (budget or {}).items()]
    return ", ".join(parts)


def report(summary) -> str:
    """Rows with their budgets, worst case per threat group with the risks of Definition 2, and every WARN flag."""
    from tabulate import tabulate

    t = summary.target
    lines = [f"\n{t.label}  ({t.path}, {t.dataset}, defense {t.defense}, trained against {t.train_threat}, "
             f"clean {summary.clean_acc:.2f}%)"]
    rows = []
    for r in summary.runs:
        row = r.row
        flags = row["flags"]
        warns = sum(1 for f in flags.values() if f["status"] == "WARN")
        dist = row.get("median_distance")
        rows.append([r.attack, budget_text(row["budget"], row.get("budget_source")), f"{r.fraction:g}",
                     f"{row['robust_acc']:.2f}", f"[{row['robust_ci_low']:.1f}, {row['robust_ci_high']:.1f}]",
                     "" if dist in ("", None) or dist != dist else f"{float(dist):.3g}",
                     f"{float(row['wall_time_s']):.1f}",
                     f"{len(flags) - warns} PASS" + (f", {warns} WARN" if warns else "")])
    lines.append(tabulate(rows, headers=["attack", "budget (from)", "fraction", "robust %", "95% CI", "median dist",
                                         "time s", "flags"]))
    worst = [[threat, f"{f:g}", f"{w['robust_acc']:.2f}", f"{w['R_stand']:.2f}", f"{w['R_rob']:.2f}",
              f"{w['R_adv']:.2f}", ",".join(w["attacks"])]
             for (threat, f), w in sorted(summary.worst.items())]
    lines.append("\nworst case per example (Definition 2 risks, %):")
    lines.append(tabulate(worst, headers=["threat", "fraction", "robust %", "R_stand", "R_rob", "R_adv", "attacks"]))
    warns = sorted({(name, f["detail"]) for r in summary.runs for name, f in r.row["flags"].items()
                    if f["status"] == "WARN"})
    lines.append("\nsanity: " + ("all flags PASS" if not warns else f"{len(warns)} WARN"))
    lines += [f"  WARN {name}: {detail}" for name, detail in warns]
    return "\n".join(lines)


@main.command("attacks")
@click.option("--dataset", default=None, help="show the defaults of one dataset only")
def attacks_cmd(dataset):
    """List the attack battery with its default settings per dataset and where they come from."""
    from srtbench.attacks import ATTACKS, FAMILIES, family

    families = [family(dataset)] if dataset else list(FAMILIES)
    click.echo("Defaults per dataset; `srtbench evaluate` attacks a checkpoint at the budget it was trained against\n"
               "(ε for pixel-wise attacks, rotation/translation for spatial ones; the step size follows ε), and\n"
               "settings written as name[k=v] win over both. Each row's budget_source says which applied.\n")
    for name in ATTACKS.names():
        info = ATTACKS.meta(name)["info"]
        click.echo(f"{name}  [{info.threat}{', minimum-norm' if info.minimum_norm else ''}; {info.library}]")
        click.echo(f"    {info.source}")
        for fam in families:
            settings = ",".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in info.defaults[fam].items())
            click.echo(f"    {fam:13s} {name}[{settings}]")
        click.echo(f"    budget (scaled by --fractions): {', '.join(info.budget)}")
        if info.notes:
            click.echo(f"    {info.notes}")
