"""`srtbench export`: a checkpoint as model.safetensors + config.json + README.md, loaded back (`--model DIR`) to the
same logits without torch.load, its model card's model-index built from the results rows that attacked it."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from srtbench import checkpoint, data, evaluate, exported, sources
from srtbench.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(res, *words: str) -> None:
    assert res.exit_code == 2 and res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
    assert all(w in res.output for w in words), res.output


@pytest.fixture
def ckpt(trained_cnn, tmp_path):
    """A checkpoint as the trainer writes it, with one metadata value JSON cannot hold."""
    path = tmp_path / "srt.pt"
    meta = {**checkpoint.model_meta("small-cnn", data.DATASETS.get("fashion-mnist")), "label": "SRT (λ = 1)",
            "defense": "srt", "defense_params": {"lam": 1.0}, "threat": {"threat": "pixel", "epsilon": 0.1},
            "metrics": {"loss": 0.5}, "extra": torch.ones(2)}
    checkpoint.save(path, trained_cnn, meta)
    return path


def test_an_export_loads_back_to_identical_logits_without_torch_load(ckpt, tmp_path, monkeypatch):
    res = run("export", ckpt, "--out", tmp_path / "shared")
    assert res.exit_code == 0 and "config.json leaves out extra" in res.output, res.output
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    original = checkpoint.load(ckpt).build_model().eval()

    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load called on the safetensors path")

    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = sources.load(str(tmp_path / "shared"))
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), original(x))
    assert loaded.meta["label"] == "SRT (λ = 1)" and loaded.meta["defense_params"] == {"lam": 1.0}
    assert "extra" not in loaded.meta and loaded.files == [tmp_path / "shared" / "model.safetensors"]


def test_config_json_is_the_json_part_of_the_metadata(ckpt, tmp_path):
    assert run("export", ckpt, "--out", tmp_path / "shared").exit_code == 0
    config = json.loads((tmp_path / "shared" / "config.json").read_text())
    meta = checkpoint.load(ckpt).meta
    assert config["format"] == exported.FORMAT and config["threat"] == {"threat": "pixel", "epsilon": 0.1}
    assert {k: v for k, v in config.items() if not k.startswith("format")} == {k: v for k, v in meta.items()
                                                                               if k != "extra"}


def test_an_evaluated_export_keeps_its_training_facts_and_fills_the_model_index(ckpt, tmp_path, fmnist_test):
    out, csv = tmp_path / "shared", tmp_path / "r.csv"
    assert run("export", ckpt, "--out", out).exit_code == 0
    for target in (["--model", out], [ckpt]):
        res = run("evaluate", *target, "--attacks", "fgsm", "--n", 16, "--device", "cpu", "--out", csv, "--no-sanity")
        assert res.exit_code == 0, res.output
    rows = pd.read_csv(csv)
    mine, pt = rows.iloc[0], rows.iloc[1]
    assert mine.checkpoint_sha256 == evaluate.sha256(out / "model.safetensors") != pt.checkpoint_sha256
    for column in ("label", "defense", "train_threat", "train_budget", "model", "clean_acc", "robust_acc"):
        assert mine[column] == pt[column], column
    # the folder in CKPT's place (`srtbench evaluate DIR`) is the same model as `--model DIR`
    res = run("evaluate", out, "--attacks", "fgsm", "--n", 16, "--device", "cpu", "--out", tmp_path / "dir.csv",
              "--no-sanity")
    assert res.exit_code == 0, res.output
    as_ckpt = pd.read_csv(tmp_path / "dir.csv").iloc[0]
    assert as_ckpt.checkpoint_sha256 == mine.checkpoint_sha256 and as_ckpt.robust_acc == pt.robust_acc
    res = run("export", ckpt, "--out", tmp_path / "carded", "--results", csv)
    assert res.exit_code == 0 and "model-index of 1" in res.output, res.output
    card = (tmp_path / "carded" / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "srtbench" and front["datasets"] == ["fashion-mnist"]
    (index,) = front["model-index"]
    (result,) = index["results"]
    assert result["dataset"]["type"] == "fashion-mnist" and result["task"]["type"] == "image-classification"
    values = {m["name"]: m["value"] for m in result["metrics"]}
    assert values["Clean accuracy"] == pt.clean_acc and values["FGSM (ε 0.1)"] == pt.robust_acc
    assert "# SRT (λ = 1)" in card and "--model hf_hub:ORG/carded" in card


def test_export_mistakes_are_one_line(ckpt, tmp_path):
    (tmp_path / "file").write_text("x")
    one_line_error(run("export", ckpt, "--out", tmp_path / "file"), "is a file; name a folder")
    one_line_error(run("export", tmp_path / "absent.pt", "--out", tmp_path / "o"), "no such checkpoint file")
    pd.DataFrame([{"checkpoint_sha256": "0" * 64, "model": "small-cnn", "label": "other", "attack": "fgsm",
                   "fraction": 1.0, "clean_acc": 50.0, "robust_acc": 10.0, "dataset": "fashion-mnist"}]
                 ).to_csv(tmp_path / "other.csv", index=False)
    one_line_error(run("export", ckpt, "--out", tmp_path / "o", "--results", tmp_path / "other.csv"),
                   "none of the 1 rows attacked")


def test_a_damaged_export_folder_is_one_line(ckpt, tmp_path):
    assert run("export", ckpt, "--out", tmp_path / "shared").exit_code == 0
    args = ("evaluate", "--model", tmp_path / "shared", "--out", tmp_path / "r.csv")
    (tmp_path / "shared" / "model.safetensors").write_bytes(b"\x00" * 64)
    one_line_error(run(*args), "model.safetensors is not a safetensors file")
    (tmp_path / "shared" / "config.json").write_text('{"architecture": "resnet18"}')
    one_line_error(run(*args), "config.json is not an srtbench export")
    (tmp_path / "shared" / "config.json").unlink()
    one_line_error(run(*args), "no config.json in")
