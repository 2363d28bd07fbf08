"""`--model hf_hub:ORG/NAME[@REVISION]`: an `srtbench export` folder uploaded to the Hugging Face Hub, read from the
local Hugging Face cache (config.json and model.safetensors of one snapshot); nothing is downloaded, no pickle read."""

from __future__ import annotations

from srtbench import exported
from srtbench.sources.base import SOURCES, Loaded, Request
from srtbench.sources.folder import from_export
from srtbench.sources.hf_cache import cached, repo_and_revision


@SOURCES.register("hf_hub", syntax="hf_hub:ORG/NAME", reads=("dataset",), needs_dataset=False,
                  summary="an `srtbench export` folder on the Hugging Face Hub, from the local cache")
def load(request: Request) -> Loaded:
    repo, revision = repo_and_revision(request.spec, request.name)
    config = cached(request.spec, repo, [exported.CONFIG], revision)
    cached(request.spec, repo, [exported.WEIGHTS], revision)  # in the same snapshot folder, or one line saying not
    return from_export(config.parent, f"--model {request.spec}", repo.rpartition("/")[2])
