"""The local Hugging Face cache: where it lies (as huggingface_hub places it, read at each call) and which of a model
repo's files it holds at a revision; nothing is ever downloaded."""

from __future__ import annotations

import os
import re
from pathlib import Path

from srtbench.errors import SrtbenchError
from srtbench.sources.base import missing, need

# ORG/NAME as the Hub spells a model repo (NAME alone for the oldest ones): no `..`, no leading dot or dash
REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


def cache_dir() -> Path:
    """huggingface_hub's model cache: $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
    ~/.cache/huggingface/hub (huggingface_hub reads these once at import; here they are read when asked)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def repo_and_revision(spec: str, name: str) -> tuple[str, str]:
    """`ORG/NAME[@REVISION]` split and checked: a name that could leave the cache folder is refused."""
    repo, _, revision = name.partition("@")
    if not REPO_ID.match(repo) or ".." in repo or (revision and not re.match(r"^[\w./-]+$", revision)):
        raise SrtbenchError(f"--model {spec}: not a Hub model name; write ORG/NAME or ORG/NAME@REVISION")
    return repo, revision or "main"


def cached(spec: str, repo: str, filenames: list[str], revision: str = "main") -> Path:
    """The first of `filenames` that the cache holds for `repo` at `revision`; none, one line naming them all and
    the cache folder."""
    hub = need("huggingface_hub", spec, "hub")
    folder = cache_dir()
    for filename in filenames:
        found = hub.try_to_load_from_cache(repo, filename, cache_dir=str(folder), revision=revision)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    where = folder / f"models--{repo.replace('/', '--')}"
    raise missing(spec, f"{' or '.join(filenames)} of {repo} at {revision}", where,
                  f"fetch it where there is a network with `hf download {repo}` and copy the cache, or point "
                  "HF_HOME at one")
