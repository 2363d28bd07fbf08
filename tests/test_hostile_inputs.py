"""Hostile input (issue 16): every bad input is one `error: ...` line with its exit code, never a traceback.

Each case builds its files in tmp_path (tiny generated Fashion-MNIST IDX files, `--model` modules in the
current folder, state dicts) and returns the argv; the table holds the expected exit code and a substring of
the one-line message.  Attacks are replaced by a tripwire: every case must fail before any attack runs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from srtbench import checkpoint, data
from srtbench.cli import main
from srtbench.evaluate import one_checkpoint as evaluate_module  # where each attack run starts
from tests import test_data as data_tests

N_IMAGES = 16  # the generated test set (and training set) of every case


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    data_tests.write_idx(path, array, compress)


def fmnist(root: Path, labels: list[int] | None = None, n_labels: int | None = None, train: bool = False,
           train_labels: list[int] | None = None) -> Path:
    """Fashion-MNIST-shaped IDX files under root/data (test split; the training split with `train`)."""
    folder = root / "data"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, wanted, make in (("t10k", labels, True), ("train", train_labels, train)):
        if not make:
            continue
        y = np.array(wanted if wanted is not None else rng.integers(0, 10, N_IMAGES))
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (N_IMAGES, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y[: n_labels or len(y)])
    return folder


GOOD = """
from torch import nn

def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
"""


def foreign(root: Path, source: str = GOOD, *extra: str, nan_weights: bool = False) -> list[str]:
    """`evaluate w.pt --model MODULE:build` with MODULE written to the current folder (root)."""
    name = f"hostile_{uuid.uuid4().hex[:10]}"
    (root / f"{name}.py").write_text(textwrap.dedent(source))
    namespace: dict = {}
    try:
        exec(compile(textwrap.dedent(source), name, "exec"), namespace)  # the weights the builder's model takes
        state = namespace["build"]().state_dict()
    except Exception:  # noqa: BLE001 - a builder that cannot build gets an empty state dict
        state = {}
    if nan_weights:
        state = {k: torch.full_like(v, float("nan")) for k, v in state.items()}
    torch.save(state, root / "w.pt")
    return ["evaluate", str(root / "w.pt"), "--model", f"{name}:build", "--dataset", "fashion-mnist",
            *evaluate_args(root), *extra]


def evaluate_args(root: Path) -> list[str]:
    if not (root / "data").exists():
        fmnist(root)
    return ["--data-dir", str(root / "data"), "--n", "8", "--no-sanity", "--attacks", "fgsm[epsilon=0.1]",
            "--device", "cpu", "--out", str(root / "out.csv")]


def native(root: Path, nan_weights: bool = False) -> list[str]:
    """`evaluate ckpt.pt` on an srtbench checkpoint of an untrained SmallCNN."""
    torch.manual_seed(0)
    from srtbench.models import create_model

    model = create_model("small-cnn", (1, 28, 28), 10)
    if nan_weights:
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
    checkpoint.save(root / "ckpt.pt", model, checkpoint.model_meta("small-cnn", data.DATASETS.get("fashion-mnist")))
    return ["evaluate", str(root / "ckpt.pt"), *evaluate_args(root)]


def misfit(root: Path) -> list[str]:
    argv = foreign(root)
    torch.save({"1.weight": torch.zeros(3), "1.bias": torch.zeros(10)}, root / "w.pt")
    return argv


def corrupt_gz(root: Path) -> list[str]:
    folder = fmnist(root, train=True)
    (folder / "train-images-idx3-ubyte").unlink()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not deflate data at all")
    return info(folder)


def truncated_gz(root: Path) -> list[str]:
    folder = fmnist(root, train=True)
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((N_IMAGES, 28, 28)), compress=True)
    (folder / "train-images-idx3-ubyte").unlink()
    gz = folder / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:30])
    return info(folder)


def truncated_header(root: Path) -> list[str]:
    folder = fmnist(root, train=True)
    (folder / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    return info(folder)


def info(folder: Path) -> list[str]:
    return ["data", "info", "fashion-mnist", "--data-dir", str(folder), "--n-labeled", "8"]


def system_copy(root: Path, monkeypatch) -> Path:
    """A stand-in for Debian's copy, so that a fallback to it would succeed."""
    system = root / "system"
    system.mkdir()
    fmnist(system, train=True)
    monkeypatch.setitem(data.DEBIAN_DIRS, "fashion-mnist", str(system / "data"))
    return system / "data"


def broken_run(monkeypatch):
    import srtbench.neighborhoods

    def boom():
        raise RuntimeError("boom")

    monkeypatch.setattr(srtbench.neighborhoods.NEIGHBORHOODS, "names", boom)


def then(*steps):
    """Setup steps in order, written inline in a case; the last one is the argv."""
    return steps[-1]


@dataclass
class Case:
    id: str
    setup: Callable[[Path, pytest.MonkeyPatch], list[str]]
    code: int
    message: str


CASES = [
    # the top-level handler: an unexpected exception is one line naming the file with its traceback
    Case("unexpected-exception", lambda r, m: then(broken_run(m), ["threats"]), 1, "RuntimeError: boom"),
    # --model builders
    Case("model-raises", lambda r, m: foreign(r, "def build():\n    raise ValueError('no weights here')\n"),
         2, "build() raised ValueError: no weights here"),
    Case("model-needs-argument", lambda r, m: foreign(r, "def build(width):\n    return None\n"),
         2, "build() must build the model without arguments; it needs width"),
    Case("model-not-a-module", lambda r, m: foreign(r, "def build():\n    return 'a model'\n"),
         2, "build() returned str, not a torch.nn.Module"),
    Case("model-not-callable", lambda r, m: foreign(r, "build = 3\n"), 2, "build is not callable (int)"),
    Case("model-syntax-error", lambda r, m: foreign(r, "def build(:\n    pass\n"), 2, "cannot import (SyntaxError"),
    Case("model-import-raises", lambda r, m: foreign(r, "import no_such_module_here\n"), 2,
         "cannot import (ModuleNotFoundError: No module named 'no_such_module_here')"),
    Case("model-missing-module", lambda r, m: ["evaluate", str(r / "w.pt"), "--model", "no_such_mod_xyz:build",
                                              "--dataset", "fashion-mnist", *evaluate_args(r)],
         2, "--model no_such_mod_xyz:build: cannot import"),
    Case("model-missing-function", lambda r, m: foreign(r, "def other():\n    pass\n"), 2,
         "cannot import (AttributeError"),
    Case("model-weights-do-not-fit", lambda r, m: misfit(r), 2, "size mismatch for 1.weight"),
    Case("model-five-classes", lambda r, m: foreign(r, GOOD.replace("(784, 10)", "(784, 5)")),
         2, "outputs shape (8, 5) on a batch of 8 fashion-mnist images; expected (8, 10)"),
    Case("model-three-channels", lambda r, m: foreign(r, """
         from torch import nn

         def build():
             return nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 26 * 26, 10))
         """), 2, "to have 3 channels, but got 1 channels"),
    Case("model-forward-raises", lambda r, m: foreign(r, """
         from torch import nn

         class Broken(nn.Module):
             def forward(self, x):
                 raise KeyError('head')

         def build():
             return Broken()
         """), 2, "fails on a batch of 8 fashion-mnist images (KeyError: 'head')"),
    Case("model-nan-weights", lambda r, m: foreign(r, GOOD, nan_weights=True), 2,
         "the weights hold NaN or infinite values (1.weight"),
    Case("checkpoint-nan-weights", lambda r, m: native(r, nan_weights=True), 2,
         "the weights hold NaN or infinite values"),
    Case("model-nan-logits", lambda r, m: foreign(r, """
         import torch
         from torch import nn

         class Log(nn.Module):
             def forward(self, x):
                 return torch.log(x.flatten(1)[:, :10] - 2)

         def build():
             return Log()
         """), 2, "NaN or infinite logits on 8 of 8 clean fashion-mnist images although its weights are finite"),
    # dataset files
    Case("idx-corrupt-gz", lambda r, m: corrupt_gz(r), 2, "train-images-idx3-ubyte.gz: corrupt gzip file"),
    Case("idx-truncated-gz", lambda r, m: truncated_gz(r), 2, "train-images-idx3-ubyte.gz: corrupt gzip file"),
    Case("idx-truncated-header", lambda r, m: truncated_header(r), 2, "truncated IDX header"),
    Case("idx-labels-shorter", lambda r, m: info(fmnist(r, n_labels=10, train=True)),
         2, f"labels-idx1-ubyte: holds 10 labels for the {N_IMAGES} images"),
    Case("idx-test-label-out-of-range", lambda r, m: then(fmnist(r, labels=[3] * 5 + [200] + [3] * 10), native(r)),
         2, "label 200 (example 5) outside the 10 classes"),
    Case("idx-train-label-out-of-range", lambda r, m: ["train", "standard", "--data-dir",
                                                       str(fmnist(r, train=True, train_labels=[10] * N_IMAGES)),
                                                       "--n-labeled", "8", "--out", str(r / "run.pt")],
         2, "label 10 (example 0) outside the 10 classes"),
    Case("data-dir-nonexistent", lambda r, m: then(system_copy(r, m), info(r / "nonexistent")),
         2, f"dataset 'fashion-mnist' not found in --data-dir {{tmp}}{os.sep}nonexistent"),
    Case("data-dir-empty", lambda r, m: then(system_copy(r, m), (r / "empty").mkdir(), info(r / "empty")),
         2, "dataset 'fashion-mnist' not found in --data-dir"),
    Case("data-dir-empty-evaluate", lambda r, m: then(system_copy(r, m), (r / "empty").mkdir(),
                                                      native(r) + ["--data-dir", str(r / "empty")]),
         2, "dataset 'fashion-mnist' not found in --data-dir"),
    Case("data-dir-is-a-file", lambda r, m: then(system_copy(r, m), (r / "f").write_text("x"), info(r / "f")),
         2, "dataset 'fashion-mnist' not found in --data-dir"),
    Case("n-exceeds-test-set", lambda r, m: native(r) + ["--n", "100"], 2, f"--n 100 exceeds the {N_IMAGES} test"),
    # choices
    Case("reproduce-quick-scale-bogus", lambda r, m: ["reproduce", "quick", "--scale", "bogus", "--dry-run"],
         2, "unknown scale 'bogus'; choose one of: cpu, paper"),
    Case("reproduce-table3-scale-bogus", lambda r, m: ["reproduce", "table3", "--scale", "bogus", "--dry-run"],
         2, "unknown scale 'bogus'"),
    Case("reproduce-unknown-experiment", lambda r, m: ["reproduce", "table42", "--dry-run"], 2, "table42"),
    # outputs checked before any work
    Case("out-is-a-folder", lambda r, m: then((r / "results").mkdir(), native(r) + ["--out", str(r / "results")]),
         2, "is a folder; name a CSV file"),
    Case("out-under-a-file", lambda r, m: then((r / "notes.txt").write_text("x"),
                                               native(r) + ["--out", str(r / "notes.txt" / "r.csv")]),
         2, "notes.txt is a file, not a folder"),
    Case("train-out-is-a-folder",
         lambda r, m: then((r / "d.pt").mkdir(), ["train", "standard", "--out", str(r / "d.pt")]),
         2, "is a folder; name a .pt file"),
    Case("train-out-under-a-file", lambda r, m: then((r / "notes.txt").write_text("x"),
                                                     ["train", "standard", "--out", str(r / "notes.txt" / "x.pt")]),
         2, "notes.txt is a file, not a folder"),
    # already one line before issue 16: kept so that they stay so
    Case("checkpoint-missing", lambda r, m: ["evaluate", str(r / "nope.pt"), *evaluate_args(r)], 2,
         "no such checkpoint file"),
    Case("checkpoint-garbage", lambda r, m: then((r / "g.pt").write_bytes(b"garbage" * 10),
                                                 ["evaluate", str(r / "g.pt"), *evaluate_args(r)]),
         2, "corrupt or not a PyTorch file"),
    Case("attack-unknown", lambda r, m: native(r) + ["--attacks", "nosuch"], 2, "nosuch"),
    Case("attack-malformed", lambda r, m: native(r) + ["--attacks", "pgd[steps=abc]"], 2, "steps"),
    Case("n-zero", lambda r, m: native(r) + ["--n", "0"], 2, "--n must be >= 1, got 0"),
    Case("model-without-colon", lambda r, m: native(r) + ["--model", "nocolon"], 2, "--model must be module:function"),
    Case("model-empty-module", lambda r, m: native(r) + ["--model", ":build"], 2, "--model must be module:function"),
    Case("model-empty-function", lambda r, m: native(r) + ["--model", "os:"], 2, "--model must be module:function"),
    Case("dataset-unknown", lambda r, m: native(r) + ["--dataset", "imagenet"], 2, "imagenet"),
    Case("model-without-dataset", lambda r, m: ["evaluate", str(r / "w.pt"), "--model", "m:build",
                                                *evaluate_args(r)], 2, "--model needs --dataset"),
]


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """A clean stage: cwd = tmp_path (not on sys.path), no SRTBENCH_DATA, tracebacks into tmp_path, and
    attacks that fail the test if any case reaches them."""
    monkeypatch.delenv("SRTBENCH_DATA", raising=False)
    monkeypatch.delenv("SRTBENCH_DEBUG", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd(), str(tmp_path))])
    monkeypatch.chdir(tmp_path)
    traces = tmp_path / "traces"
    traces.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(traces))

    def tripwire(*args, **kwargs):
        raise AssertionError("an attack ran before the bad input was refused")

    monkeypatch.setattr(evaluate_module, "run_attack", tripwire)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("hostile_"):
            del sys.modules[name]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_with_its_exit_code(case, hostile, monkeypatch):
    argv = case.setup(hostile, monkeypatch)
    result = CliRunner().invoke(main, argv)
    out = result.output
    assert "Traceback" not in out, out
    assert out.startswith("error: ") and out.count("\n") == 1 and out.endswith("\n"), out
    assert case.message.replace("{tmp}", str(hostile)) in out, out
    assert result.exit_code == case.code, (result.exit_code, out)
    assert not (hostile / "out.csv").exists()


def test_unexpected_exception_writes_its_traceback_to_the_named_file(hostile, monkeypatch):
    broken_run(monkeypatch)
    out = CliRunner().invoke(main, ["threats"]).output
    assert "SRTBENCH_DEBUG=1" in out
    written = list((hostile / "traces").iterdir())
    assert len(written) == 1 and str(written[0]) in out
    trace = written[0].read_text()
    assert trace.startswith("Traceback") and "RuntimeError: boom" in trace and "def boom" not in out


def test_srtbench_debug_shows_the_traceback(hostile, monkeypatch):
    broken_run(monkeypatch)
    monkeypatch.setenv("SRTBENCH_DEBUG", "1")
    result = CliRunner().invoke(main, ["threats"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.output and "RuntimeError: boom" in result.output
    assert not list((hostile / "traces").iterdir())


def test_usage_errors_and_interrupts_keep_their_own_form(hostile, monkeypatch):
    usage = CliRunner().invoke(main, ["evaluate"])
    assert usage.exit_code == 2 and "Usage:" in usage.output and "Missing argument" in usage.output
    import srtbench.neighborhoods

    def interrupt():
        raise KeyboardInterrupt

    monkeypatch.setattr(srtbench.neighborhoods.NEIGHBORHOODS, "names", interrupt)
    result = CliRunner().invoke(main, ["threats"])
    assert result.exit_code == 130 and result.output == "interrupted\n"


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """`srtbench reproduce table4 --dry-run | head -1`: the closed pipe is no error and leaves no traceback file.
    (`true` reads nothing and exits before srtbench has imported, so every write meets a closed pipe.)"""
    import subprocess

    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where a traceback file would go
    script = f"{sys.executable} -m srtbench reproduce table4 --dry-run | true; echo ${{PIPESTATUS[0]}}"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout == "141\n" and out.stderr == "", (out.stdout, out.stderr)
    assert not list(tmp_path.glob("srtbench-traceback-*"))


def test_model_module_in_the_current_folder_is_importable(hostile, monkeypatch):
    """`--model mod:fn` finds mod.py in the current folder without PYTHONPATH, as `python -m` would."""
    monkeypatch.setattr(evaluate_module, "run_attack", _real_run_attack)
    result = CliRunner().invoke(main, foreign(hostile))
    assert result.exit_code == 0, result.output
    assert (hostile / "out.csv").exists()


_real_run_attack = evaluate_module.run_attack
