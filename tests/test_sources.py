"""Model sources (`--model robustbench:NAME`, `hf_hub:ORG/NAME`, `timm:NAME`, `torchvision:NAME`, DIR): each reads
small weights written here in the exact layout its library reads (the Hugging Face cache, torch hub's checkpoints
folder, RobustBench's model folder), with the network cut off; each missing file is one line through the CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from srtbench import sources
from srtbench.cli import main
from srtbench.errors import SrtbenchError
from srtbench.models import Normalize

TIMM_NAME = "test_efficientnet.r160_in1k"  # a 356k-parameter timm model with Hub weights (timm/NAME)
TORCHVISION_NAME = "squeezenet1_1"  # 1.2M parameters
ROBUSTBENCH_NAME, ROBUSTBENCH_THREAT = "Hendrycks2020AugMix_WRN", "corruptions"  # a WRN-40-2, 2.2M parameters


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(res, *words: str) -> None:
    assert res.exit_code == 2 and res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
    assert all(w in res.output for w in words), res.output


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No connection leaves this process, and every library looks in tmp_path for its files."""
    def refuse(*args, **kwargs):
        raise OSError("network access in a test of offline loading")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SRTBENCH_ROBUSTBENCH_DIR", raising=False)
    monkeypatch.chdir(tmp_path)


def hf_cache_repo(repo: str, files: dict[str, bytes], revision: str = "main") -> Path:
    """`files` as huggingface_hub caches them: blobs named by hash, a snapshot of links, refs/REVISION -> commit."""
    root = Path(os.environ["HF_HOME"]) / "hub" / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repr(sorted(files)).encode()).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (root / "blobs" / blob).write_bytes(data)
        (root / "snapshots" / commit / name).symlink_to(Path("..", "..", "blobs", blob))
    (root / "refs" / revision).write_text(commit)
    return root / "snapshots" / commit


def safetensors_bytes(model: torch.nn.Module) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in model.state_dict().items()})


def same_logits(loaded: torch.nn.Module, reference: torch.nn.Module, shape=(3, 32, 32)) -> bool:
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(loaded(x), reference.eval()(x))


# ---------------------------------------------------------------- timm


def timm_reference():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    body = timm.create_model(TIMM_NAME.split(".")[0])
    cfg = timm.models.get_pretrained_cfg(TIMM_NAME)
    return body, cfg


def test_timm_weights_come_from_the_hf_cache_behind_their_normalization():
    body, cfg = timm_reference()
    hf_cache_repo(cfg.hf_hub_id, {"model.safetensors": safetensors_bytes(body)})
    loaded = sources.load(f"timm:{TIMM_NAME}", "cifar10")
    assert not loaded.model.training and loaded.files[0].name == "model.safetensors"
    assert same_logits(loaded.model, torch.nn.Sequential(Normalize(cfg.mean, cfg.std), body))


def test_a_timm_model_kept_on_the_hub_takes_its_config_json():
    timm = pytest.importorskip("timm")
    torch.manual_seed(1)
    body = timm.create_model("test_efficientnet", num_classes=10)
    config = {"architecture": "test_efficientnet", "num_classes": 10,
              "pretrained_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "num_classes": 10}}
    hf_cache_repo("someone/effnet-cifar10", {"config.json": json.dumps(config).encode(),
                                             "model.safetensors": safetensors_bytes(body)})
    loaded = sources.load("timm:hf-hub:someone/effnet-cifar10", "cifar10")
    assert same_logits(loaded.model, torch.nn.Sequential(Normalize((0.5,) * 3, (0.25,) * 3), body))


def test_timm_weights_not_in_the_cache_are_one_line_naming_the_folder():
    res = run("evaluate", "--model", f"timm:{TIMM_NAME}", "--dataset", "cifar10")
    one_line_error(res, "model.safetensors or pytorch_model.bin", f"models--timm--{TIMM_NAME}", "never downloads")


# ---------------------------------------------------------------- torchvision


def test_torchvision_weights_come_from_torch_hubs_folder_behind_their_normalization():
    from torchvision import models

    torch.manual_seed(0)
    body = models.get_model(TORCHVISION_NAME).eval()
    weights = models.get_model_weights(TORCHVISION_NAME).DEFAULT
    file = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[1]
    file.parent.mkdir(parents=True)
    torch.save(body.state_dict(), file)
    loaded = sources.load(f"torchvision:{TORCHVISION_NAME}", "cifar10")
    preprocess = weights.transforms()
    assert loaded.files == [file] and loaded.label == f"{TORCHVISION_NAME}.{weights.name}"
    assert same_logits(loaded.model, torch.nn.Sequential(Normalize(preprocess.mean, preprocess.std), body),
                       (3, 64, 64))


def test_torchvision_weights_that_would_run_code_are_refused_though_torch_hub_asks_for_pickle():
    from torchvision import models

    file = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    file.mkdir(parents=True)
    url = models.get_model_weights(TORCHVISION_NAME).DEFAULT.url
    torch.save({"args": argparse.Namespace(lr=0.1)}, file / url.rsplit("/", 1)[1])
    res = run("evaluate", "--model", f"torchvision:{TORCHVISION_NAME}", "--dataset", "cifar10")
    one_line_error(res, "refused, loading it would run code", "argparse")


def test_torchvision_weights_absent_are_one_line_naming_file_and_folder(tmp_path):
    res = run("evaluate", "--model", f"torchvision:{TORCHVISION_NAME}", "--dataset", "cifar10")
    one_line_error(res, "squeezenet1_1-", str(tmp_path / "torch" / "hub" / "checkpoints"), "never downloads")


# ---------------------------------------------------------------- RobustBench


@pytest.fixture
def robustbench_entry():
    """robustbench's own builder of ROBUSTBENCH_NAME (skipped where robustbench cannot be imported, never in CI)."""
    try:
        rb = sources.robustbench._import("robustbench:test")
    except SrtbenchError as err:
        if os.environ.get("CI"):
            raise  # the dev extra installs it, so CI must never skip
        pytest.skip(f"robustbench not importable here ({err})")
    dataset, threat = rb.BenchmarkDataset("cifar10"), rb.ThreatModel(ROBUSTBENCH_THREAT)
    return rb.all_models[dataset][threat][ROBUSTBENCH_NAME]["model"]


def robustbench_file(root: Path, payload) -> Path:
    path = root / "cifar10" / ROBUSTBENCH_THREAT / f"{ROBUSTBENCH_NAME}.pt"
    path.parent.mkdir(parents=True)
    torch.save(payload, path)
    return path


def test_a_robustbench_model_loads_from_its_model_folder(robustbench_entry, tmp_path, monkeypatch):
    torch.manual_seed(0)
    body = robustbench_entry().eval()
    path = robustbench_file(tmp_path / "zoo", {"state_dict": {f"module.{k}": v for k, v in body.state_dict().items()}})
    spec = f"robustbench:{ROBUSTBENCH_NAME}"
    loaded = sources.load(spec, "cifar10", ROBUSTBENCH_THREAT, str(tmp_path / "zoo"))
    assert loaded.files == [path] and loaded.label == ROBUSTBENCH_NAME and not loaded.model.training
    assert same_logits(loaded.model, body)  # RobustBench models take [0, 1]: nothing is put in front
    monkeypatch.setenv("SRTBENCH_ROBUSTBENCH_DIR", str(tmp_path / "zoo"))
    assert sources.load(spec, "cifar10", ROBUSTBENCH_THREAT).files == [path]


def test_a_robustbench_file_that_would_run_code_is_refused(robustbench_entry, tmp_path):
    robustbench_file(tmp_path / "models", {"state_dict": robustbench_entry().state_dict(),
                                           "args": argparse.Namespace(lr=0.1)})
    res = run("evaluate", "--model", f"robustbench:{ROBUSTBENCH_NAME}", "--dataset", "cifar10",
              "--threat-model", ROBUSTBENCH_THREAT)
    one_line_error(res, "refused, loading it would run code", "argparse")


def test_a_robustbench_file_absent_is_one_line_naming_where_it_looked(robustbench_entry, tmp_path):
    res = run("evaluate", "--model", f"robustbench:{ROBUSTBENCH_NAME}", "--dataset", "cifar10",
              "--threat-model", ROBUSTBENCH_THREAT)
    one_line_error(res, f"{ROBUSTBENCH_NAME}.pt not found in {tmp_path / 'models' / 'cifar10' / 'corruptions'}",
                   "never downloads")


@pytest.mark.parametrize("args, words", [
    (("--model", "robustbench:Carmon2019Unlabeled", "--dataset", "fashion-mnist"), ("no fashion-mnist models",)),
    (("--model", "robustbench:Carmon2019", "--dataset", "cifar10"), ("did you mean Carmon2019Unlabeled",)),
])
def test_a_robustbench_name_it_does_not_know_is_one_line(robustbench_entry, args, words):
    one_line_error(run("evaluate", *args), *words)


# ---------------------------------------------------------------- the Hub (srtbench exports) and the CLI


def test_an_export_on_the_hub_loads_from_the_cache_at_a_revision(tmp_path):
    from srtbench import checkpoint, data, exported
    from srtbench.models import create_model

    model = create_model("small-cnn", (1, 28, 28), 10).eval()
    ckpt = checkpoint.Checkpoint(model.state_dict(), checkpoint.model_meta("small-cnn",
                                                                           data.DATASETS.get("fashion-mnist")))
    exported.save(tmp_path / "out", ckpt, "card\n")
    files = {name: (tmp_path / "out" / name).read_bytes() for name in (exported.CONFIG, exported.WEIGHTS)}
    hf_cache_repo("org/small", files, revision="v1")
    loaded = sources.load("hf_hub:org/small@v1")
    assert loaded.dataset == "fashion-mnist" and loaded.label == "small" and loaded.meta["model"] == "small-cnn"
    assert same_logits(loaded.model, model, (1, 28, 28))
    one_line_error(run("evaluate", "--model", "hf_hub:org/small"), "config.json of org/small at main not found",
                   str(tmp_path / "hf" / "hub" / "models--org--small"))


@pytest.mark.parametrize("args, words", [
    (("--model", "hf_hub:org/none"), ("not found in", "models--org--none")),
    (("--model", "hf_hub:../../etc"), ("not a Hub model name",)),
    (("--model", "timm:resnet18", "--dataset", "cifar10", "--threat-model", "L2"),
     ("--threat-model applies to --model robustbench:NAME only",)),
    (("--model", "timm:resnet18"), ("needs --dataset",)),
    (("--model", "torchvision:resnet18", "--dataset", "imagenet"), ("unknown dataset 'imagenet'",)),
    (("--model", "hf_hub:org/name", "runs/x.pt"), ("brings its own weights; give no CKPT",)),
])
def test_a_model_source_misused_is_one_line_exit_2(args, words):
    one_line_error(run("evaluate", *args), *words)


def test_evaluate_without_ckpt_or_source_is_a_usage_error():
    res = run("evaluate", "--attacks", "fgsm")
    assert res.exit_code == 2 and "Usage:" in res.output and "Missing argument 'CKPT...'" in res.output


def test_a_sweep_may_name_a_model_source_without_allow_code(tmp_path):
    from srtbench import sweep

    (tmp_path / "s.toml").write_text('name = "s"\ndefenses = ["standard"]\n[train]\niterations = 1\n'
                                     '[evaluate]\nattacks = ["fgsm"]\nmodel = "hf_hub:org/name"\n')
    assert dict(sweep.load(tmp_path / "s.toml").evaluate)["model"] == "hf_hub:org/name"
    (tmp_path / "s.toml").write_text((tmp_path / "s.toml").read_text().replace("hf_hub:org/name", "mypkg:build"))
    with pytest.raises(SrtbenchError, match="names code to import"):
        sweep.load(tmp_path / "s.toml")
