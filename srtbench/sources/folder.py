"""`--model DIR`: a folder `srtbench export` wrote (model.safetensors, config.json), rebuilt as its checkpoint was,
with its training facts; no pickle is read."""

from __future__ import annotations

from pathlib import Path

from srtbench import exported
from srtbench.sources.base import SOURCES, Loaded, Request


def from_export(folder: Path, where: str, label: str) -> Loaded:
    """The model of an export folder with its metadata; `label` where the metadata names none."""
    ckpt = exported.load(folder, where)
    weights = Path(ckpt.path)
    return Loaded(ckpt.build_model().eval(), weights, [weights], str(ckpt.meta.get("label") or label),
                  ckpt.meta["dataset"], ckpt.meta)


@SOURCES.register("folder", syntax="DIR (a folder written by `srtbench export`)", reads=("dataset",),
                  needs_dataset=False, summary="config.json rebuilds the model, model.safetensors holds its weights")
def load(request: Request) -> Loaded:
    folder = Path(request.name)
    return from_export(folder, f"--model {request.spec}", folder.resolve().name)
