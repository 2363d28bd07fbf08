"""`srtbench models` and `srtbench threats`: what the registries hold."""

from __future__ import annotations

from srtbench.cli.app import echo, main


@main.command("models")
def models():
    """List the model zoo with parameter counts on each dataset shape."""
    from tabulate import tabulate

    from srtbench.data import DATASETS
    from srtbench.models import MODELS, count_parameters, create_model

    rows = []
    for name in MODELS.names():
        counts = []
        for ds in ("fashion-mnist", "cifar10"):
            spec = DATASETS.get(ds)
            counts.append(f"{count_parameters(create_model(name, spec.shape, spec.num_classes)):,}")
        rows.append([name, *counts, MODELS.meta(name).get("source", "")])
    echo(tabulate(rows, headers=["model", "params (28x28x1)", "params (32x32x3)", "source"]))


@main.command("threats")
def threats():
    """List the neighborhoods N(x) with their default budgets."""
    from srtbench.neighborhoods import NEIGHBORHOODS, ThreatConfig

    for name in NEIGHBORHOODS.names():
        echo(f"{name:10s} {ThreatConfig(threat=name).build()!r}")
