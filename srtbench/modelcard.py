"""A checkpoint's model card, README.md of its export folder: Hugging Face metadata as YAML front matter, whose
`model-index` holds its results rows' accuracies (one entry per dataset × threat, from `cards.build_cards`), and a
body saying what the model is and how to load it; `export` writes the folder with it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from srtbench import checkpoint, exported, results
from srtbench.cards import build_cards, checkpoint_rows
from srtbench.data import display_name
from srtbench.errors import SrtbenchError
from srtbench.evaluate.targets import sha256, trained_against
from srtbench.neighborhoods import budget_record
from srtbench.tables.profile import budget_text

TASK = {"type": "image-classification", "name": "Image Classification"}


@dataclass
class Export:
    folder: Path
    left_out: list[str]  # metadata keys that are not JSON data
    cards: int  # dataset × threat entries of the model-index


def export(path: str, out: str, results_paths: Sequence[str] = ()) -> Export:
    """Write checkpoint `path` as a folder `out` (model.safetensors, config.json, README.md), its card's model-index
    filled from the rows of `results_paths` that attacked it (as the .pt, or as this very export)."""
    ckpt = checkpoint.load(path)
    data = exported.weights(ckpt)
    digests = [sha256(path), hashlib.sha256(data).hexdigest()]
    cards = build_cards(rows_of(ckpt.meta, digests, path, results_paths)) if results_paths else []
    label = results.clean_text(str(ckpt.meta.get("label") or Path(path).stem))
    left_out = exported.save(out, ckpt, render(ckpt.meta, cards, label, Path(out).resolve().name), data)
    return Export(Path(out), left_out, len(cards))


def rows_of(meta: dict[str, Any], digests: list[str], path: str, results_paths: Sequence[str]):
    """The results rows of this checkpoint's own model (not inside a broken defense or behind a --preprocess): those
    of the first of `digests` (the .pt's, the export's) that has any, so that one model makes one card per threat."""
    frame = results.collect(results_paths)
    mine = checkpoint_rows(frame, digests, meta["model"])
    if len(mine):
        return mine
    raise SrtbenchError(f"--results: none of the {len(frame)} rows attacked {path} (SHA-256 {digests[0][:12]}...) "
                        "as it is; evaluate it first")


def metrics(card: dict[str, Any]) -> list[dict[str, Any]]:
    """A card's accuracies (%) as model-index metrics: clean, the worst case over the threat's attacks, each attack
    at its full budget."""
    out = [{"type": "accuracy", "name": "Clean accuracy", "value": card["clean_acc"]}]
    budget = budget_text(json.dumps(card["budget"])) if card["budget"] else "budget not recorded"
    out.append({"type": "robust_accuracy", "name": f"Worst case over {card['threat_name']} attacks ({budget})",
                "value": card["worst_case_acc"]})
    for entry in card["attacks"]:
        if entry["fraction"] == 1.0:
            text = budget_text(json.dumps(entry["budget"]))
            out.append({"type": "robust_accuracy", "name": f"{entry['header']} ({text})",
                        "value": entry["robust_acc"], "config": entry["attack"],
                        "args": {"budget": entry["budget"], "n": entry["n"], "seed": entry["seed"]}})
    return [m for m in out if m["value"] is not None]


def front_matter(meta: dict[str, Any], cards: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The Hub's metadata: library, tags, dataset, and the model-index where there are results."""
    tags = ["adversarial-robustness", "image-classification", "srtbench", str(meta.get("defense") or "")]
    matter: dict[str, Any] = {"library_name": "srtbench", "tags": [t for t in tags if t],
                              "datasets": [meta["dataset"]], "metrics": ["accuracy"]}
    if cards:
        matter["model-index"] = [{"name": name, "results": [
            {"task": TASK, "dataset": {"type": card["dataset"], "name": card["dataset_name"], "split": "test"},
             "metrics": metrics(card)} for card in cards]}]
    return matter


def render(meta: dict[str, Any], cards: list[dict[str, Any]], label: str, name: str) -> str:
    """README.md: the front matter, then what the model is, how to load it, and its results as a table."""
    threat, trained = trained_against(meta)
    budget = {k: v for k, v in budget_record(trained).items() if isinstance(v, (int, float))}
    against = f" against {threat} ({budget_text(json.dumps(budget))})" if trained else ""
    shape = "×".join(map(str, meta["in_shape"]))
    lines = ["---", yaml.safe_dump(front_matter(meta, cards, name), sort_keys=False, allow_unicode=True).rstrip(),
             "---", "", f"# {label}", "",
             f"A {display_name(meta['dataset'])} classifier ({meta['num_classes']} classes, images {shape} in [0, 1]) "
             f"trained with srtbench: architecture `{meta['model']}`, defense `{meta.get('defense') or 'unknown'}`"
             f"{against}.", "", "## Use", "", "```",
             f"srtbench evaluate --model hf_hub:ORG/{name} --attacks all   # from the Hugging Face cache",
             f"srtbench evaluate --model path/to/{name} --attacks all      # from this folder", "```", "",
             f"`{exported.WEIGHTS}` holds the weights (safetensors: no pickle, no code); `{exported.CONFIG}` the "
             f"metadata that rebuilds the model (srtbench {meta.get('srtbench_version', '?')}, commit "
             f"{meta.get('git_commit', '?')}).", ""]
    if cards:
        lines += ["## Results", "", "Accuracy (%) on the test set, from srtbench's results rows:", "",
                  "| dataset | threat | attack | budget | accuracy % | n |", "|---|---|---|---|---:|---:|"]
        clean = {c["dataset"]: c for c in cards if c["clean_acc"] is not None}
        lines += [f"| {c['dataset_name']} | – | clean | – | {c['clean_acc']:.2f} | |" for c in clean.values()]
        lines += [f"| {card['dataset_name']} | {card['threat_name']} | {e['header']} | "
                  f"{budget_text(json.dumps(e['budget']))} | {e['robust_acc']:.2f} | {e['n']} |"
                  for card in cards for e in card["attacks"] if e["fraction"] == 1.0 and e["robust_acc"] is not None]
        lines.append("")
    return "\n".join(lines) + "\n"
