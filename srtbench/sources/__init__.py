"""Model sources (registry): `--model PREFIX:NAME` builds a model by its ecosystem's name (RobustBench, the Hugging
Face Hub, timm, torchvision) or from a folder `srtbench export` wrote, from local files only, one module per source.

Each loads weights, never code named by the user, so a sweep file may name one without `--allow-code`."""

from __future__ import annotations

from pathlib import Path

from srtbench.config import require
from srtbench.sources import folder as _folder  # noqa: F401  (registers `folder`)
from srtbench.sources import hf_hub as _hf_hub  # noqa: F401  (registers `hf_hub`)
from srtbench.sources import robustbench as _robustbench  # noqa: F401  (registers `robustbench`)
from srtbench.sources import timm as _timm  # noqa: F401  (registers `timm`)
from srtbench.sources import torchvision as _torchvision  # noqa: F401  (registers `torchvision`)
from srtbench.sources.base import SOURCES, Loaded, Request

FOLDER = "folder"
OPTIONS = ("threat_model", "model_dir")  # options beside --model that only some sources read


def find(spec: str) -> str | None:
    """The source `--model SPEC` names (a folder's where SPEC is one, else its prefix's), or None where it names
    code (`module:function`) or a wrapper (`zoo:NAME`)."""
    if Path(spec).is_dir():
        return FOLDER
    prefix, colon, _ = spec.partition(":")
    return prefix if colon and prefix in SOURCES else None


def syntaxes() -> str:
    """How --model names each source: `hf_hub:ORG/NAME, robustbench:NAME, ...`, a folder last."""
    return ", ".join(SOURCES.meta(name)["syntax"] for name in sorted(SOURCES, key=lambda n: n == FOLDER))


def load(spec: str, dataset: str | None = None, threat_model: str | None = None,
         model_dir: str | None = None) -> Loaded:
    """The model `--model SPEC` names, with the options beside it; an option its source does not read, or a
    dataset it needs and lacks, is one line."""
    from srtbench.data import DATASETS

    source = find(spec)
    require(source is not None, f"--model {spec}: no model source of that name; sources: {syntaxes()}")
    meta = SOURCES.meta(source)
    given = {"threat_model": threat_model, "model_dir": model_dir}
    for option in OPTIONS:
        readers = [SOURCES.meta(n)["syntax"] for n in SOURCES if option in SOURCES.meta(n)["reads"]]
        require(given[option] is None or option in meta["reads"],
                f"--{option.replace('_', '-')} applies to --model {' or '.join(readers)} only, not {spec}")
    require(dataset is not None or not meta["needs_dataset"],
            f"--model {spec} needs --dataset (its weights do not name the dataset they are for)")
    if dataset is not None:
        DATASETS.get(dataset)
    name = spec[len(source) + 1:] if spec.startswith(f"{source}:") else spec
    return SOURCES.get(source)(Request(spec, name, dataset, threat_model, model_dir))


__all__ = ["FOLDER", "SOURCES", "Loaded", "Request", "find", "load", "syntaxes"]
