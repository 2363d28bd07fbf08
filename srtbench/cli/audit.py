"""`srtbench audit CKPT...`: can a gradient attack's number be trusted on this model, and what to run if not."""

from __future__ import annotations

import click

from srtbench.audit import AuditConfig
from srtbench.cli.app import echo, main
from srtbench.config import click_options, from_options


@main.command("audit")
@click.argument("checkpoints", nargs=-1, required=True, metavar="CKPT...")
@click_options(AuditConfig, exclude=("adaptive",))
def audit_cmd(checkpoints, **options):
    """Check each model for gradient masking and each attack for failure; print the causes and what to run.

    \b
    srtbench audit models/fmnist-srt-pixel.pt
    srtbench audit models/fmnist-standard.pt --model zoo:noisy --attacks pgd
    Exit status 1 where an evaluation cannot be trusted (a cause found or an indicator WARNs).
    """
    from srtbench.audit import verdict
    from srtbench.evaluate import evaluate
    from srtbench.runtime import set_threads

    set_threads()
    cfg = from_options(AuditConfig, options)
    trusted = True
    for summary in evaluate(list(checkpoints), cfg.evaluation()):
        v = verdict(summary)
        trusted &= v.trusted
        t = summary.target
        echo(f"\n{t.label}  ({t.path}, {t.model_name}, {t.dataset}, clean {summary.clean_acc:.2f}%)")
        for line in v.lines:
            echo(f"  {line}")
    echo(f"rows in {cfg.out}")
    raise SystemExit(0 if trusted else 1)
