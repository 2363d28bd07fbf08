"""What is attacked: a checkpoint or a foreign model with its provenance, checked before any attack runs."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srtbench import results, sources
from srtbench.broken import Preprocessed, wrap
from srtbench.checkpoint import load as load_checkpoint
from srtbench.checkpoint import load_weights, read_torch_file
from srtbench.config import require
from srtbench.data import DataConfig
from srtbench.defenses import DEFENSES
from srtbench.errors import SrtbenchError, describe
from srtbench.evaluate.config import EvalConfig
from srtbench.maximizers import eval_mode
from srtbench.neighborhoods import budget_record
from srtbench.runtime import check_writable
from srtbench.sources.folder import from_export
from srtbench.usercode import import_callable

ZOO = "zoo:"  # `--model zoo:NAME`: a broken defense of srtbench/broken.py around the checkpoint's model


@dataclass
class Target:
    """A model to attack with its provenance (meta read defensively: foreign files lack training keys)."""

    model: nn.Module
    path: str
    sha256: str
    dataset: str
    label: str
    defense: str
    defense_params: dict
    train_threat: str
    model_name: str
    trained: dict | None = None  # the threat config it was trained against (its budgets become the attacks')
    training: dict = dataclass_field(default_factory=dict)  # the results row's training columns (train_seed, ...)
    wrapped: bool = False  # inside a broken defense or behind a --preprocess: its rows and side files are its own


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_targets(paths: list[str], cfg: EvalConfig) -> list[Target]:
    """What `evaluate` attacks: each CKPT, or the one model `--model` names with its own weights (a source:
    robustbench:NAME, hf_hub:ORG/NAME, ..., an export folder), which then takes no CKPT."""
    if cfg.model is not None and sources.find(cfg.model) is not None:
        require(not paths, f"--model {cfg.model} brings its own weights; give no CKPT (got {', '.join(paths)})")
        return [_preprocessed(_source_target(cfg), cfg)]
    require(bool(paths), f"give the checkpoints to attack (CKPT...), or a --model that brings its weights: "
            f"{sources.syntaxes()}")
    return [load_target(p, cfg) for p in paths]


def load_target(path: str, cfg: EvalConfig) -> Target:
    zoo = cfg.model[len(ZOO):] if cfg.model and cfg.model.startswith(ZOO) else None
    if cfg.model is not None and zoo is None:
        return _preprocessed(_foreign_target(path, cfg), cfg)
    target = _checkpoint_target(path, cfg)
    if zoo is not None:  # the checkpoint's model inside a broken defense (srtbench/broken.py)
        target.model, target.label = wrap(zoo, target.model), f"{target.label} in {zoo}"
        target.model_name, target.wrapped = f"{target.model_name} in {cfg.model}", True
    return _preprocessed(target, cfg)


def _preprocessed(target: Target, cfg: EvalConfig) -> Target:
    if cfg.preprocess is not None:  # behind the transform, which it declares (attacks/bpda.py)
        target.model = Preprocessed(target.model, import_callable(cfg.preprocess, f"--preprocess {cfg.preprocess}"))
        target.model_name, target.wrapped = f"{cfg.preprocess} then {target.model_name}", True
    return target


def _checkpoint_target(path: str, cfg: EvalConfig) -> Target:
    """A checkpoint file, or a folder `srtbench export` wrote (the same model from its safetensors, no pickle)."""
    if Path(path).is_dir():
        loaded = from_export(Path(path), path, Path(path).resolve().name)
        return _trained_target(loaded.model, str(loaded.path), sha256(loaded.path), loaded.meta, loaded.label, cfg)
    ckpt = load_checkpoint(path)
    return _trained_target(ckpt.build_model(), str(path), sha256(path), ckpt.meta, Path(path).stem, cfg)


def _source_target(cfg: EvalConfig) -> Target:
    """The model a source loads: an export keeps its checkpoint's training facts; any other is foreign (RobustBench,
    timm, torchvision), its label the name it goes by and its model the --model written."""
    loaded = sources.load(cfg.model, cfg.dataset, cfg.threat_model, cfg.model_dir)
    digests = [sha256(f) for f in loaded.files]  # an ensemble's several files: the hash of their hashes, in order
    digest = digests[0] if len(digests) == 1 else hashlib.sha256("\n".join(digests).encode()).hexdigest()
    if loaded.meta:
        return _trained_target(loaded.model, str(loaded.path), digest, loaded.meta, loaded.label, cfg)
    return Target(loaded.model, str(loaded.path), digest, loaded.dataset, results.clean_text(loaded.label), "unknown",
                  {}, "unknown", cfg.model)


def _trained_target(model: nn.Module, path: str, digest: str, meta: dict, stem: str, cfg: EvalConfig) -> Target:
    """A model srtbench trained, with the facts its metadata records (`stem` labels it where it names no label)."""
    if cfg.dataset is not None and meta["dataset"] != cfg.dataset:
        raise SrtbenchError(f"{path}: checkpoint is for {meta['dataset']}, not {cfg.dataset}")
    train_threat, trained = trained_against(meta)
    label = results.clean_text(str(meta.get("label") or stem))  # free text from a downloaded file
    return Target(model, path, digest, meta["dataset"], label,
                  str(meta.get("defense") or "unknown"), dict(meta.get("defense_params") or {}), train_threat,
                  str(meta["model"]), trained, training_columns(meta, trained))


def trained_against(meta: dict) -> tuple[str, dict | None]:
    """The threat a checkpoint was trained against, by name ("none" for a defense against no neighborhood, whose
    attacks then take the dataset's budgets) and as its threat config."""
    threat = meta.get("threat")
    trained = dict(threat) if isinstance(threat, dict) else None
    train_threat = threat.get("threat", "unknown") if isinstance(threat, dict) else str(threat or "unknown")
    defense = meta.get("defense")
    if defense in DEFENSES and not DEFENSES.get(defense).robust:
        return "none", None
    return train_threat, trained


def training_columns(meta: dict, trained: dict | None) -> dict[str, Any]:
    """What a results row records about the training behind a checkpoint, so tables and plots never reopen it."""
    sizes: tuple[Any, Any] = (None, None)
    if isinstance(meta.get("data"), dict):
        with contextlib.suppress(Exception):  # an older or foreign record: the counts stay empty
            known = {f.name for f in fields(DataConfig)}
            sizes = DataConfig(**{k: v for k, v in meta["data"].items() if k in known}).sizes
    seconds = meta.get("train_time_s")
    return {"train_budget": budget_record(trained), "train_seed": meta.get("seed"), "n_labeled": sizes[0],
            "n_unlabeled": sizes[1], "preset": meta.get("preset"),
            "train_time_s": round(float(seconds), 3) if isinstance(seconds, (int, float)) else None}


def _foreign_target(path: str, cfg: EvalConfig) -> Target:
    """`--model module:function` (RobustBench style): function() builds the model, CKPT holds its weights."""
    require(cfg.dataset is not None, "--model needs --dataset (a foreign checkpoint does not name its dataset)")
    module_name, fn_name = cfg.model.split(":", 1)
    builder = _import_builder(module_name, fn_name, cfg.model)
    if not Path(path).is_file():
        raise SrtbenchError(f"{path}: no such state dict file")
    state = read_torch_file(path, "state dict")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        model = builder()
    except Exception as err:  # noqa: BLE001 - the user's code may raise anything
        raise SrtbenchError(f"--model {cfg.model}: {fn_name}() raised {describe(err, 160)}") from None
    if not isinstance(model, nn.Module):
        raise SrtbenchError(f"--model {cfg.model}: {fn_name}() returned {type(model).__name__}, not a torch.nn.Module")
    load_weights(model, state, path, cfg.model)
    return Target(model, str(path), sha256(path), cfg.dataset, Path(path).stem, "unknown", {}, "unknown", cfg.model)


def _import_builder(module_name: str, fn_name: str, spec: str):
    """The builder named by `--model module:function` (a module in the current folder counts)."""
    builder = import_callable(spec, f"--model {spec}")
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: calling them will tell
        params = []
    needed = [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if needed:
        raise SrtbenchError(f"--model {spec}: {fn_name}() must build the model without arguments; it needs "
                            f"{', '.join(needed)} (wrap it in a function that takes none)")
    return builder


def check_model(target: Target, x: torch.Tensor, num_classes: int, batch_size: int, device: torch.device) -> None:
    """Before any attack: finite weights, and one finite logit per class for every clean image.

    A model that answers with another number of classes, or with NaN, would otherwise be scored 0% robust
    with every flag passing."""
    model = target.model.to(device)
    tensors = [*model.named_parameters(), *model.named_buffers()]
    bad = [name for name, t in tensors if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise SrtbenchError(f"{target.path}: the weights hold NaN or infinite values ({', '.join(bad[:3])}"
                            f"{', ...' if len(bad) > 3 else ''}); the file is damaged or its training diverged")
    finite = []
    with eval_mode(model), torch.no_grad():
        for lo in range(0, len(x), batch_size):
            xb = x[lo:lo + batch_size]
            try:
                out = model(xb.to(device))
            except Exception as err:  # noqa: BLE001 - the user's model may raise anything
                raise SrtbenchError(f"{target.path}: the model fails on a batch of {len(xb)} {target.dataset} images "
                                    f"({describe(err, 160)}); it must take images of shape "
                                    f"{tuple(xb.shape[1:])} in [0, 1]") from None
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(xb), num_classes):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise SrtbenchError(f"{target.path}: the model outputs shape {got} on a batch of {len(xb)} "
                                    f"{target.dataset} images; expected ({len(xb)}, {num_classes}), one logit per "
                                    "class")
            finite.append(torch.isfinite(out).all(1).cpu())
    finite = torch.cat(finite)
    if not finite.all():
        raise SrtbenchError(f"{target.path}: the model outputs NaN or infinite logits on {int((~finite).sum())} of "
                            f"{len(x)} clean {target.dataset} images although its weights are finite")


def check_out(out: str) -> None:
    """`--out` must be a file that can be written, checked before any work: not a folder, not under a file."""
    check_writable(out, "a CSV file (e.g. results/eval.csv)")
    path = Path(out)
    side = path.parent / f"{path.stem}.examples"
    if side.exists() and not side.is_dir():
        raise SrtbenchError(f"--out {out}: {side} (where per-example outcomes go) is a file, not a folder")
