"""Model cards (`srtbench card`, `cards.build_cards`): one JSON record per model × dataset × threat, with RobustBench's
fields and srtbench's own, written under names no label can steer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from srtbench import cards, results
from srtbench.cli import main

WHEN = "2026-12-01T10:00:00+00:00"
FLAGS = {"gradient_masking": {"status": "WARN", "detail": "pgd 51.6% vs Square 46.9% on 64 examples; trust Square"},
         "zero_budget": {"status": "PASS", "detail": "fraction 0: 100.00% vs clean 100.00%"}}
HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "../../escape/../x")
SEEDS = {0: (80.0, 60.0), 1: (81.0, 62.0), 2: (85.0, 67.0)}  # SRT's seeds: clean and PGD accuracy
# AT's per-example outcomes over 4 examples (all clean-correct): each attack alone leaves 75%, together 50%
PAPER = (("AT", 98.99, 94.69), ("SRT", 99.28, 96.60))  # Table 4 (MNIST): clean and PGD accuracy
AT_OUTCOMES = {"fgsm": [1, 1, 0, 1], "autoattack": [1, 1, 0, 1], "pgd": [1, 0, 1, 1]}


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def row(**over) -> dict:
    """A full results row as `srtbench evaluate` writes one; `over` changes any column."""
    base = {"checkpoint": "runs/at.pt", "checkpoint_sha256": sha("at"), "label": "AT", "defense": "at",
            "defense_params": {"steps": 5}, "train_threat": "pixel", "train_budget": {"epsilon": 0.1, "norm": "linf"},
            "train_seed": 0, "n_labeled": 1000, "n_unlabeled": 2000, "preset": "", "train_time_s": 120.0,
            "model": "small-cnn", "dataset": "fashion-mnist", "split": "test", "attack": "pgd",
            "attack_params": {"epsilon": 0.1, "steps": 40}, "fraction": 1.0, "budget": {"epsilon": 0.1},
            "budget_source": {"epsilon": "checkpoint"}, "n": 1000, "seed": 0, "clean_acc": 80.0, "robust_acc": 50.0,
            "flags": FLAGS, "wall_time_s": 1.5, "forward_passes": 41000, "backward_passes": 40000, "device": "cpu",
            "srtbench_version": "0.2.0", "git_commit": "c0ffee", "command": "srtbench evaluate runs/at.pt",
            "timestamp": WHEN}
    low, high = results.wilson_interval(round(over.get("robust_acc", 50.0) * over.get("n", 1000) / 100),
                                        over.get("n", 1000))
    return {**base, "robust_ci_low": round(low, 4), "robust_ci_high": round(high, 4), **over}


def _at_rows(folder: Path) -> list[dict]:
    """AT: FGSM, PGD and AutoAttack on 4 examples with per-example files, PGD at half the budget too, and GridAdv (a
    second threat) without one."""
    rows, index = [], torch.arange(4)
    for attack, robust in AT_OUTCOMES.items():
        side = f"{sha('at')[:12]}-{attack}-f1.pt"
        ok = torch.tensor(robust, dtype=torch.bool)
        results.write_per_example(folder / "at.examples" / side, {
            "index": index, "clean_pred": index, "adv_pred": torch.where(ok, index, (index + 1) % 4), "label": index,
            "clean_correct": torch.ones(4, dtype=torch.bool), "adv_correct": ok, "distance": torch.zeros(4)})
        rows.append(row(attack=attack, n=4, clean_acc=100.0, robust_acc=75.0, per_example=f"at.examples/{side}",
                        forward_passes=400, backward_passes=300))
    rows.append(row(attack="pgd", fraction=0.5, budget={"epsilon": 0.05}, n=4, clean_acc=100.0, robust_acc=100.0,
                    forward_passes=200, backward_passes=150))
    rows.append(row(attack="gridadv", attack_params={"rotation": 30, "translation": 3}, n=4, clean_acc=100.0,
                    budget={"rotation": 30.0, "translation": 3.0}, robust_acc=25.0, forward_passes=None,
                    backward_passes=None))
    return rows


def write_results(folder: Path) -> Path:
    """A results folder: AT (`_at_rows`), SRT at three seeds, two models with hostile labels and a path-like one,
    and the paper's numbers for AT and SRT (MNIST, which Fashion-MNIST stands in for)."""
    results.append(folder / "at.csv", _at_rows(folder))
    results.append(folder / "srt.csv", [
        row(checkpoint=f"runs/srt{f'-s{s}' if s else ''}.pt", checkpoint_sha256=sha(f"srt{s}"), label="SRT (λ = 1)",
            defense="srt", train_seed=s, clean_acc=clean, robust_acc=pgd, flags={}, timestamp=f"2026-12-0{s + 2}")
        for s, (clean, pgd) in SEEDS.items()])
    results.append(folder / "hostile.csv", [
        row(checkpoint=f"runs/h{i}.pt", checkpoint_sha256=sha(f"h{i}"), label=label, robust_acc=40.0 - i)
        for i, label in enumerate(HOSTILE)])
    results.append(folder / "paper.csv", [{"checkpoint": "paper:table4", "label": label, "dataset": "mnist",
                                           "attack": "pgd", "fraction": 1.0, "clean_acc": clean, "robust_acc": pgd}
                                          for label, clean, pgd in PAPER])
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def built(folder) -> list[dict]:
    return cards.build_cards(results.collect([folder]))


def one(built, name: str, threat: str = "pixel linf") -> dict:
    return next(c for c in built if c["name"] == name and c["threat"] == threat)


def test_a_card_per_model_dataset_and_threat(built):
    assert sorted((c["name"], c["threat"]) for c in built if c["name"] == "AT") == [("AT", "pixel linf"),
                                                                                     ("AT", "spatial")]
    assert len([c for c in built if c["name"] == "SRT (λ = 1)"]) == 3  # a card per seed's checkpoint
    assert all(c["name"] != "AT" or c["dataset"] == "fashion-mnist" for c in built)  # the paper's row is no card


def test_the_papers_number_is_found_by_the_rows_name(built):
    """"SRT (λ = 1)" is the paper's "SRT" (λ aside, as the tables match rows) on MNIST, where Fashion-MNIST stands
    in for it."""
    assert {tuple(r["robust_acc"].items()) for c in built if c["name"] == "SRT (λ = 1)" for r in c["reported"]} == \
        {(("pgd", 96.60),)}


def test_a_card_holds_robustbenchs_fields(built):
    card = one(built, "AT")
    assert card["source"]["checkpoint"] == "runs/at.pt" and card["source"]["sha256"] == sha("at")
    assert card["architecture"] == "small-cnn" and card["dataset"] == "fashion-mnist"
    assert card["training"]["unlabeled"] == 2000 and card["training"]["additional_data"] is True
    assert card["budget"] == {"epsilon": 0.1} and card["clean_acc"] == 100.0
    assert card["autoattack_acc"] == 75.0 and card["strongest_attack"]["robust_acc"] == 75.0
    assert card["reported"] == [{"table": "table4", "label": "AT", "dataset": "mnist", "clean_acc": 98.99,
                                 "robust_acc": {"pgd": 94.69}}]
    assert card["forward_passes"] == 3 * 400 + 200 and card["backward_passes"] == 3 * 300 + 150
    assert card["evaluated"] == "2026-12-01"
    assert card["srtbench_version"] == "0.2.0" and card["git_commit"] == "c0ffee"


def test_the_worst_case_is_taken_per_example(built):
    assert one(built, "AT")["worst_case_acc"] == pytest.approx(50.0)  # each attack alone: 75%
    assert one(built, "AT", "spatial")["worst_case_acc"] is None  # no per-example file: not guessed


def test_every_attack_row_keeps_its_interval_settings_and_cost(built):
    entries = one(built, "AT")["attacks"]
    assert [(e["attack"], e["fraction"]) for e in entries] == [("fgsm", 1.0), ("pgd", 1.0), ("pgd", 0.5),
                                                                ("autoattack", 1.0)]
    pgd = entries[1]
    assert pgd["ci95"] == [pytest.approx(v, abs=1e-4) for v in results.wilson_interval(3, 4)]
    assert pgd["settings"] == {"epsilon": 0.1, "steps": 40} and pgd["forward_passes"] == 400
    assert pgd["flags"] == FLAGS


def test_flags_are_merged_over_the_rows(built):
    flags = one(built, "AT")["flags"]
    assert flags["gradient_masking"]["status"] == "WARN"
    assert flags["gradient_masking"]["warned_by"] == ["fgsm", "pgd", "autoattack"]
    assert flags["zero_budget"] == {"status": "PASS", "details": [FLAGS["zero_budget"]["detail"]], "warned_by": []}


def test_a_card_is_json(built):
    for card in built:
        assert json.loads(cards.to_json(card)) == card


def test_card_file_names_stay_in_their_folder(built):
    names = [cards.card_filename(c) for c in built]
    assert len(set(names)) == len(names)
    assert all("/" not in n and not n.startswith(".") and ".." not in n for n in names), names


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_card_writes_one_json_file_per_card(folder, tmp_path):
    out = run("card", folder, "--out", tmp_path / "cards", "--no-paper")
    assert out.exit_code == 0, out.output
    written = sorted(p.name for p in (tmp_path / "cards").iterdir())
    assert len(written) == len(cards.build_cards(results.collect([folder])))
    assert all(p.resolve().parent == (tmp_path / "cards").resolve() for p in (tmp_path / "cards").iterdir())
    assert "fashion-mnist--pixel_linf--._.._escape_.._x--" not in " ".join(written)  # `..` never survives
    assert any(n.startswith("fashion-mnist--pixel_linf--_script_alert_1_") for n in written)


def test_card_finds_a_checkpoints_rows_by_its_hash(folder, tmp_path):
    checkpoint = tmp_path / "at.pt"
    checkpoint.write_bytes(b"at")  # its SHA-256 is the rows' sha("at")
    out = run("card", checkpoint, "--results", folder, "--out", tmp_path / "cards", "--no-paper")
    assert out.exit_code == 0, out.output
    written = [json.loads(p.read_text()) for p in (tmp_path / "cards").iterdir()]
    assert sorted(c["threat"] for c in written) == ["pixel linf", "spatial"]
    assert {c["source"]["sha256"] for c in written} == {sha("at")}


def test_a_checkpoint_without_rows_is_one_line(folder, tmp_path):
    checkpoint = tmp_path / "other.pt"
    checkpoint.write_bytes(b"other")
    out = run("card", checkpoint, "--results", folder, "--out", tmp_path / "cards")
    assert out.exit_code == 2 and out.output.count("\n") == 1 and "no results rows of" in out.output, out.output
