"""`--model timm:NAME`: a timm model (`resnet18`, `resnet18.a1_in1k`, or `hf-hub:ORG/NAME` as timm spells a Hub
repo) with its pretrained weights from the local Hugging Face cache (torch hub's folder for weights timm serves by
URL), behind the normalization of its pretrained config so that it takes images in [0, 1]."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import nn

from srtbench.errors import SrtbenchError
from srtbench.files import open_regular
from srtbench.sources.base import (
    SOURCES,
    Loaded,
    Request,
    library_call,
    missing,
    need,
    normalized,
    read_state_dict,
    torch_hub_file,
)
from srtbench.sources.hf_cache import cached, repo_and_revision

HUB = "hf-hub:"  # timm's prefix of a model kept on the Hub with its config.json
WEIGHTS = ["model.safetensors", "pytorch_model.bin"]  # what timm reads from a Hub repo, in its order


@SOURCES.register("timm", syntax="timm:NAME", reads=("dataset",), needs_dataset=True,
                  summary="timm's pretrained weights from the Hugging Face cache, with their normalization")
def load(request: Request) -> Loaded:
    model, files, cfg = build(request.spec, request.name)
    return Loaded(normalized(model, cfg["mean"], cfg["std"]), files[0], files, request.name, str(request.dataset))


def build(spec: str, name: str, num_classes: int | None = None) -> tuple[nn.Module, list[Path], dict[str, Any]]:
    """The timm model `name` with its pretrained weights read from local files (weights-only), in eval mode; with
    the files and the pretrained config (mean, std, ...)."""
    timm = need("timm", spec, "hub")
    if name.startswith(HUB):
        arch, cfg, kwargs = _hub_config(spec, name[len(HUB):])
    else:
        arch, cfg, kwargs = name, _registered_config(timm, spec, name), {}
    weights = _weights_file(spec, cfg)
    state = read_state_dict(weights)
    known = {f.name for f in dataclasses.fields(timm.models.PretrainedCfg)}
    # the state dict goes in as the pretrained source, so timm's own checkpoint filter (key renames) still applies
    overlay = {**{k: v for k, v in cfg.items() if k in known}, "state_dict": state, "source": None}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    model = library_call(spec, lambda: timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=overlay,
                                                         **kwargs))
    return model.eval(), [weights], cfg


def _registered_config(timm, spec: str, name: str) -> dict[str, Any]:
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError as err:  # a known architecture with an unknown tag
        raise SrtbenchError(f"--model {spec}: {err}") from None
    if cfg is None:
        raise SrtbenchError(f"--model {spec}: timm {timm.__version__} has no pretrained model {name!r} (see "
                            "timm.list_pretrained())")
    return cfg.to_dict()


def _hub_config(spec: str, name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A Hub repo's config.json as timm reads it: its architecture, pretrained config and model arguments."""
    repo, revision = repo_and_revision(spec, name)
    path = cached(spec, repo, ["config.json"], revision)
    with open_regular(path, "r", "config") as handle:
        try:
            config = json.load(handle)
        except ValueError:
            config = None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise SrtbenchError(f"--model {spec}: {path} is no timm config (it names no architecture)")
    cfg = dict(config.get("pretrained_cfg") or {})
    cfg.update(hf_hub_id=repo, hf_hub_revision=revision)
    if "num_classes" in config:
        cfg["num_classes"] = config["num_classes"]
    return config["architecture"], cfg, {"num_classes": cfg.get("num_classes", 1000),
                                         **dict(config.get("model_args") or {})}


def _weights_file(spec: str, cfg: dict[str, Any]) -> Path:
    """Where timm would read the weights from, on this machine: the Hub cache where it names a Hub repo (as timm
    prefers it), else torch hub's folder of URL downloads."""
    if cfg.get("hf_hub_id"):
        names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else WEIGHTS
        return cached(spec, cfg["hf_hub_id"], names, cfg.get("hf_hub_revision") or "main")
    if cfg.get("url"):
        file = torch_hub_file(cfg["url"])
        if file.is_file():
            return file
        raise missing(spec, file.name, file.parent, f"download {cfg['url']} there where there is a network, or point "
                      "TORCH_HOME at a copy")
    raise SrtbenchError(f"--model {spec}: timm names no pretrained weights for it")
