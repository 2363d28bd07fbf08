"""`srtbench data ...`: inspect datasets and the paper's labeled/unlabeled split."""

from __future__ import annotations

import click

from srtbench.cli.app import echo, main
from srtbench.config import click_options, from_options


@main.group("data")
def data_group():
    """Inspect datasets and the labeled/unlabeled split."""


@data_group.command("info")
@click.argument("dataset", required=False)
@click_options(__import__("srtbench.data", fromlist=["DataConfig"]).DataConfig, exclude=("dataset",))
def info(dataset, **options):
    """Sizes, the labeled/unlabeled split, class counts and where the files were found."""
    from tabulate import tabulate

    from srtbench import data

    cfg = from_options(data.DataConfig, options, **({"dataset": dataset} if dataset else {}))
    spec = cfg.spec
    train = data.load(cfg.dataset, True, cfg.data_dir, cfg.download)
    test = data.load(cfg.dataset, False, cfg.data_dir, cfg.download)
    labeled, unlabeled = data.split(train, cfg.n_labeled, cfg.n_unlabeled, cfg.split_seed)
    shape = "x".join(map(str, spec.shape))
    echo(f"dataset      {spec.name}  ({shape}, {spec.num_classes} classes)")
    echo(f"files        {train.source}")
    echo(f"train        {len(train)}  = labeled {len(labeled)} + unlabeled {len(unlabeled)}"
               f" (+ {len(train) - len(labeled) - len(unlabeled)} unused; split seed {cfg.split_seed})")
    echo(f"test         {len(test)}")
    echo(f"augmentation {'pad-4 crop + flip (Appendix B)' if spec.augment else 'none'}")
    rows = zip(
        spec.classes,
        data.class_counts(labeled.labels, spec.num_classes),
        data.class_counts(test.labels, spec.num_classes),
    )
    echo(tabulate(rows, headers=["class", "labeled", "test"], tablefmt="simple"))
