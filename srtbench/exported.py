"""The shareable form of a checkpoint: a folder of `model.safetensors` (the weights, no pickle), `config.json` (the
metadata that rebuilds the model) and `README.md` (its model card), written by `srtbench export` and read back, from
the folder or the Hugging Face cache, without torch.load."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from srtbench.checkpoint import Checkpoint, check_meta
from srtbench.errors import SrtbenchError, describe
from srtbench.files import open_regular
from srtbench.runtime import atomic_path

FORMAT = "srtbench-export"
FORMAT_VERSION = 1
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"


def plain(value: Any) -> tuple[bool, Any]:
    """(whether `value` is JSON data, the value as JSON holds it): tuples become lists, NaN and objects are not."""
    if value is None or isinstance(value, (bool, int, str)):
        return True, value
    if isinstance(value, float):
        return math.isfinite(value), value
    if isinstance(value, (list, tuple)):
        items = [plain(v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, dict):
        items = {k: plain(v) for k, v in value.items()}
        return all(isinstance(k, str) for k in value) and all(ok for ok, _ in items.values()), \
            {k: v for k, (_, v) in items.items()}
    return False, None


def config_of(meta: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """config.json's content: the format header and every metadata key that is JSON data; the keys left out."""
    kept, dropped = {"format": FORMAT, "format_version": FORMAT_VERSION}, []
    for key, value in meta.items():
        ok, data = plain(value)
        if ok and key not in kept:
            kept[key] = data
        else:
            dropped.append(key)
    return kept, dropped


def weights(ckpt: Checkpoint) -> bytes:
    """model.safetensors' bytes (the same for the same weights, so its SHA-256 names them)."""
    from safetensors.torch import save

    # own, contiguous copies: safetensors refuses tensors that share memory
    return save({k: v.detach().cpu().contiguous().clone() for k, v in ckpt.state_dict.items()}, {"format": "pt"})


def save(folder: str | os.PathLike, ckpt: Checkpoint, card: str, data: bytes | None = None) -> list[str]:
    """Write the three files into `folder` (created; other files in it are left alone), each atomically; `data` is
    `weights(ckpt)` where the caller has it.  Returns the metadata keys config.json could not hold."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SrtbenchError(f"--out {folder} is a file; name a folder")
    config, dropped = config_of(ckpt.meta)
    with atomic_path(folder / WEIGHTS) as tmp:
        tmp.write_bytes(weights(ckpt) if data is None else data)
    for name, text in ((CONFIG, json.dumps(config, indent=2, ensure_ascii=False) + "\n"), (CARD, card)):
        with atomic_path(folder / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return dropped


def load(folder: str | os.PathLike, where: str = "") -> Checkpoint:
    """The checkpoint a folder holds (`where` names it in errors: `--model hf_hub:ORG/NAME`); every way it can be
    wrong is one line."""
    from safetensors.torch import load as load_tensors

    folder = Path(folder)
    label = where or str(folder)
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise SrtbenchError(f"{label}: no {name} in {folder} (a folder `srtbench export` wrote holds {CONFIG} "
                                f"and {WEIGHTS})")
    with open_regular(folder / CONFIG, "r", "config") as handle:
        try:
            config = json.load(handle)
        except ValueError as err:
            raise SrtbenchError(f"{label}: {CONFIG} is not JSON ({describe(err, 120)})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise SrtbenchError(f"{label}: {CONFIG} is not an srtbench export (no \"format\": \"{FORMAT}\"); a timm "
                            "model on the Hub loads with --model timm:hf-hub:ORG/NAME")
    if not isinstance(config.get("format_version"), int) or config["format_version"] > FORMAT_VERSION:
        raise SrtbenchError(f"{label}: written by a newer srtbench (format_version {config.get('format_version')!r})")
    meta = check_meta({k: v for k, v in config.items() if k not in ("format", "format_version")}, folder / CONFIG)
    with open_regular(folder / WEIGHTS, "rb", "weights") as handle:
        try:
            state = load_tensors(handle.read())
        except Exception as err:  # noqa: BLE001 - a damaged header can make the reader raise anything
            raise SrtbenchError(f"{label}: {WEIGHTS} is not a safetensors file ({describe(err, 120)})") from None
    return Checkpoint(state, meta, None, str(folder / WEIGHTS))
