"""Hostile input, round two (issue 26): nothing written outside its folder, no code run from a data file, no device
or FIFO replaced or read, no diverged model saved, every value of a sweep checked before anything trains.

Each case is one `error: ...` line and exit 2; the table holds a substring of the line.  Cases that could hang a
plain open() (a FIFO) run in a child process with a time limit."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from srtbench import checkpoint, data, sweep
from srtbench.cli import main
from srtbench.models import create_model
from tests.test_hostile_inputs import fmnist, hostile  # noqa: F401  (fixture)

TINY_SWEEP = """
name = "hostile"
defenses = ["standard"]
[train]
iterations = 1
[evaluate]
attacks = ["fgsm"]
"""


def sweep_file(root: Path, text: str = TINY_SWEEP, **replace: str) -> str:
    for old, new in replace.items():
        text = text.replace(old, new)
    (root / "s.toml").write_text(text)
    return str(root / "s.toml")


def dry(root: Path, text: str = TINY_SWEEP, *extra: str, **replace: str) -> list[str]:
    return ["sweep", sweep_file(root, text, **replace), "--dry-run", *extra]


def train(root: Path, *extra: str, defense: str = "standard") -> list[str]:
    folder = fmnist(root, train=True)
    return ["train", defense, "--data-dir", str(folder), "--n-labeled", "8", "--iterations", "3", "--batch-size", "4",
            "--check-size", "4", "--device", "cpu", "--out", str(root / "run.pt"), *extra]


def small_cnn(root: Path, classes: int) -> str:
    """An untrained SmallCNN checkpoint predicting `classes` classes (an RST teacher, a model to plot)."""
    torch.manual_seed(0)
    meta = {**checkpoint.model_meta("small-cnn", data.DATASETS.get("fashion-mnist")), "num_classes": classes}
    checkpoint.save(root / "teacher.pt", create_model("small-cnn", (1, 28, 28), classes), meta)
    return str(root / "teacher.pt")


def results_csv(root: Path) -> Path:
    shipped = Path(__file__).resolve().parent.parent / "results" / "paper" / "table4.csv"
    folder = root / "res"
    folder.mkdir(exist_ok=True)
    (folder / "table4.csv").write_bytes(shipped.read_bytes())
    return folder


@dataclass
class Case:
    id: str
    setup: Callable[[Path], list[str]]
    message: str


def then(*steps):
    return steps[-1]


CASES = [
    # outputs that are not regular files are never replaced
    Case("table-out-device", lambda r: ["table", str(results_csv(r)), "--out", "/dev/null"],
         "--out /dev/null is a character device, not a regular file"),
    Case("plot-out-device", lambda r: ["plot", "budget", str(results_csv(r)), "--out", "/dev/null"],
         "--out /dev/null is a character device, not a regular file"),
    Case("train-out-fifo", lambda r: then(os.mkfifo(r / "dev.pt"), train(r)[:-2] + ["--out", str(r / "dev.pt"),
                                                                                     "--force"]),
         "dev.pt is a FIFO, not a regular file"),
    Case("evaluate-out-device", lambda r: ["evaluate", "x.pt", "--out", "/dev/null"],
         "--out /dev/null is a character device, not a regular file"),
    Case("table-reads-a-device-through-a-link", lambda r: then(os.symlink("/dev/zero", r / "zz.csv"),
                                                             ["table", str(r / "zz.csv")]),
         "zz.csv: it is a character device, not a regular file"),
    Case("table-folder-links-a-device", lambda r: then(results_csv(r), os.symlink("/dev/zero", r / "res" / "zz.csv"),
                                                       ["table", str(r / "res")]),
         "zz.csv lies outside"),
    Case("table-reads-a-link-leaving-its-folder", lambda r: then(results_csv(r), (r / "outside.csv").write_text("x"),
                                                                 os.symlink(r / "outside.csv", r / "res" / "o.csv"),
                                                                 ["table", str(r / "res")]),
         "o.csv lies outside"),
    # a sweep file is data: no code, no paths, every value checked at plan time
    Case("sweep-names-code", lambda r: dry(r, TINY_SWEEP + 'model = "tempfile:mkdtemp"\n'),
         "[evaluate] model names code to import and run; a sweep file may not, unless the command line says "
         "--allow-code"),
    Case("sweep-names-a-preprocess", lambda r: dry(r, TINY_SWEEP + 'preprocess = "tempfile:mkdtemp"\n'),
         "[evaluate] preprocess names code to import and run"),
    Case("sweep-names-bpda-code", lambda r: dry(r, TINY_SWEEP.replace('"fgsm"', '"pgd[bpda=tempfile:mkdtemp]"')),
         "[evaluate] attacks (bpda=module:function) names code to import and run"),
    Case("sweep-seed-negative", lambda r: dry(r, 'seeds = [-1]\n' + TINY_SWEEP), "seeds must be whole numbers"),
    Case("sweep-seed-fraction", lambda r: dry(r, 'seeds = [1.7]\n' + TINY_SWEEP), "seeds must be a list of whole"),
    Case("sweep-seed-empty", lambda r: dry(r, 'seeds = []\n' + TINY_SWEEP), "at least one"),
    Case("sweep-seed-huge", lambda r: dry(r, 'seeds = [1e30]\n' + TINY_SWEEP), "seeds must be a list of whole"),
    Case("sweep-seed-twice", lambda r: dry(r, 'seeds = [1, 1]\n' + TINY_SWEEP), "seeds must be distinct"),
    Case("sweep-seed-in-train", lambda r: dry(r, iterations="seed = 3\niterations"), "[train] cannot set seed"),
    Case("sweep-seed-in-grid", lambda r: dry(r, TINY_SWEEP + "[grid]\nseed = [1, 2]\n"), "[grid] cannot set seed"),
    Case("sweep-defense-twice", lambda r: dry(r, **{'["standard"]': '["standard", "standard"]'}),
         "defenses lists standard twice"),
    Case("sweep-threats-not-a-list", lambda r: dry(r, 'threats = "pixel"\n' + TINY_SWEEP),
         "threats must be a list of names"),
    Case("sweep-layout-bogus", lambda r: dry(r, TINY_SWEEP + '[table]\nlayout = "bogus"\n'), "bogus"),
    Case("sweep-attack-malformed", lambda r: dry(r, **{'["fgsm"]': '["pgd[steps=abc]"]'}), "steps"),
    Case("sweep-iterations-text", lambda r: dry(r, **{"iterations = 1": 'iterations = "abc"'}),
         "--iterations must be a whole number, got 'abc'"),
    Case("sweep-lambda-nan", lambda r: dry(r, TINY_SWEEP + "[grid]\nlambda = [nan]\n",
                                           **{'["standard"]': '["srt"]'}),
         "--lambda must be a finite number, got nan"),
    Case("sweep-lr-bool", lambda r: dry(r, TINY_SWEEP + "[grid]\nlr = [true]\n"), "--lr must be a finite number"),
    Case("sweep-huge-grid", lambda r: dry(r, TINY_SWEEP + "[grid]\n" + "".join(
        f"{k} = [{', '.join(str(i + 1) for i in range(40))}]\n"
        for k in ("iterations", "batch-size", "check-size", "n-labeled", "check-every"))),
         "plans up to 102,400,000 training runs (more than 1,000): add --yes if you mean it"),
    # training refuses what cannot give a model, and a diverged run is never saved
    Case("train-lr-huge-diverges", lambda r: train(r, "--lr", "1e30"), "training diverged by step"),
    Case("train-lr-negative", lambda r: train(r, "--lr", "-1"), "learning rates must be > 0"),
    Case("train-gamma-nan", lambda r: train(r, "--gamma", "nan"), "--gamma must be a finite number, got nan"),
    Case("train-momentum-inf", lambda r: train(r, "--momentum", "inf"), "--momentum must be a finite number"),
    Case("train-weight-decay-inf", lambda r: train(r, "--weight-decay", "inf"), "--weight-decay must be a finite"),
    Case("train-lr-max-inf", lambda r: train(r, "--lr-max", "inf"), "--lr-max must be a finite number"),
    Case("train-lambda-inf", lambda r: train(r, "--lambda", "inf", defense="srt"), "--lambda must be a finite"),
    Case("train-translation-inf", lambda r: train(r, "--threat", "spatial", "--translation", "inf"),
         "--translation must be a finite number"),
    Case("train-seed-too-large", lambda r: train(r, "--seed", str(2**64 + 1)), "--seed must be in [0, 2**32)"),
    Case("train-teacher-five-classes", lambda r: train(r, "--teacher", small_cnn(r, 5), defense="rst"),
         "teacher predicts 5 classes, fashion-mnist has 10"),
    # options given twice, values out of range, environment variables mistyped
    Case("evaluate-attack-twice", lambda r: ["evaluate", "x.pt", "--attacks", "fgsm,fgsm"],
         "--attacks lists fgsm twice"),
    Case("evaluate-fraction-twice", lambda r: ["evaluate", "x.pt", "--fractions", "1,1.0"],
         "--fractions lists a value twice: 1,1"),
    Case("attack-setting-twice", lambda r: ["evaluate", small_cnn(r, 10), "--attacks", "pgd[epsilon=0.1,epsilon=0.3]",
                                            "--out", str(r / "out.csv")],
         "pgd[...] sets epsilon twice"),
    Case("reproduce-gpus-nan", lambda r: ["reproduce", "quick", "--jobs", "1", "--gpus-per-step", "nan"],
         "--gpus-per-step must be a finite number, got nan"),
    Case("reproduce-no-cluster", lambda r: ["reproduce", "quick", "--jobs", "1", "--address", "127.0.0.1:1"],
         "no Ray cluster answers at 127.0.0.1:1"),
    Case("surface-one-step", lambda r: ["plot", "surface", small_cnn(r, 10), "--steps", "1", "--out", str(r / "s")],
         "--steps must be 2 to 401 grid points per direction, got 1"),
    Case("surface-five-classes", lambda r: ["plot", "surface", small_cnn(r, 5), "--out", str(r / "s")],
         "predicts 5 classes, fashion-mnist has 10"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_exit_2(case, hostile):  # noqa: F811
    argv = case.setup(hostile)
    result = CliRunner().invoke(main, argv)
    out = result.output
    assert "Traceback" not in out, out
    assert out.startswith("error: ") and out.count("\n") == 1, out
    assert case.message in out, out
    assert result.exit_code == 2, (result.exit_code, out)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and not os.path.exists("/dev/null.png")
    assert not (hostile / "run.pt").exists()  # no model saved


def test_a_diverged_run_keeps_the_last_finite_resume_state(hostile):  # noqa: F811
    """Two epochs of two steps; the rate jumps to 1e30 at the second epoch: the first epoch's state stays."""
    argv = train(hostile, "--iterations", "4", "--milestones", "0.5", "--gamma", "1e32")
    diverged = CliRunner().invoke(main, argv)
    assert diverged.exit_code == 2 and "run.resume keeps the last finite state" in diverged.output, diverged.output
    kept = checkpoint.load(hostile / "run.resume")
    assert kept.resume["step"] == 2 and all(v.isfinite().all() for v in kept.state_dict.values()
                                            if v.is_floating_point())
    assert not (hostile / "run.pt").exists()


@pytest.mark.parametrize("argv", [["table", "{fifo}"], ["sweep", "{fifo}", "--dry-run"],
                                  ["evaluate", "x.pt", "--out", "{fifo}"], ["table", "{folder}"]],
                         ids=["table-file", "sweep-file", "evaluate-out", "table-folder"])
def test_a_fifo_is_refused_not_waited_on(argv, tmp_path):
    folder = tmp_path / "res"
    folder.mkdir()
    fifo = folder / "x.csv"
    os.mkfifo(fifo)
    args = [a.format(fifo=fifo, folder=folder) for a in argv]
    done = subprocess.run([sys.executable, "-m", "srtbench", *args], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 2 and "is a FIFO, not a regular file" in done.stderr, done.stderr


def test_sweep_values_never_leave_the_sweeps_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(TINY_SWEEP + '[grid]\nlabel = ["/../../../../../X", "../Y", "a/b"]\n')
    steps = sweep.plan(sweep.load(tmp_path / "s.toml"))
    outputs = [Path(s.output).resolve() for s in steps if s.output]
    assert all(tmp_path / "runs" / "sweeps" / "hostile" in p.parents or tmp_path / "results" / "sweeps" / "hostile"
               in p.parents for p in outputs), outputs
    assert len({p.name for p in outputs}) == len(outputs)


def test_a_sweep_names_code_only_when_the_command_line_allows_it(tmp_path):
    (tmp_path / "s.toml").write_text(TINY_SWEEP + 'model = "mypkg.nets:build"\ndataset = "fashion-mnist"\n')
    allowed = sweep.load(tmp_path / "s.toml", allow_code=True)
    assert dict(allowed.evaluate)["model"] == "mypkg.nets:build"
    out = CliRunner().invoke(main, ["sweep", str(tmp_path / "s.toml"), "--dry-run", "--allow-code"])
    assert out.exit_code == 0 and "--model mypkg.nets:build" in out.output, out.output


def test_a_linked_folder_is_named_not_skipped_silently(tmp_path):
    folder = results_csv(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", folder / "linked")
    out = CliRunner().invoke(main, ["table", str(folder)])
    assert out.exit_code == 0 and f"note: skipped {folder / 'linked'}: a linked folder" in out.output


# ---------------------------------------------------------------- checkpoints as data, and what evaluate writes


def hostile_checkpoint(root: Path, payload_change: dict | None = None, **meta_change) -> str:
    """An untrained SmallCNN checkpoint whose metadata (or payload) a hostile author changed."""
    torch.manual_seed(0)
    model = create_model("small-cnn", (1, 28, 28), 10)
    meta = {**checkpoint.model_meta("small-cnn", data.DATASETS.get("fashion-mnist")), "label": "AT", "seed": 0,
            **meta_change}
    checkpoint.save(root / "h.pt", model, meta)
    if payload_change:
        payload = torch.load(root / "h.pt", weights_only=True)
        torch.save({**payload, **payload_change}, root / "h.pt")
    return str(root / "h.pt")


def evaluate_hostile(root: Path, *extra: str, **meta_change) -> list[str]:
    fmnist(root)
    return ["evaluate", hostile_checkpoint(root, **meta_change), "--data-dir", str(root / "data"), "--n", "4",
            "--no-sanity", "--attacks", "fgsm", "--device", "cpu", "--out", str(root / "out.csv"), *extra]


META_CASES = [
    ("seed-text", {"seed": "abc"}, "metadata seed must be a non-negative whole number, got 'abc'"),
    ("seed-fraction", {"seed": 1.5}, "metadata seed must be a non-negative whole number, got 1.5"),
    ("label-huge", {"label": "x" * 200_000}, "metadata label must be text of at most 200 characters"),
    ("num-classes-text", {"num_classes": "10"}, "metadata num_classes must be a whole number"),
    ("num-classes-huge", {"num_classes": 10**12}, "metadata num_classes must be a whole number"),
    ("in-shape-text", {"in_shape": "abc"}, "metadata in_shape must be [channels, height, width]"),
    ("std-text", {"std": "abc"}, "metadata std must be a list of positive finite numbers"),
    ("defense-params-list", {"defense_params": [1, 2]}, "metadata defense_params must be a table of settings"),
]


@pytest.mark.parametrize("change,message", [(c, m) for _, c, m in META_CASES], ids=[i for i, _, _ in META_CASES])
def test_hostile_checkpoint_metadata_is_one_line(change, message, hostile):  # noqa: F811
    out = CliRunner().invoke(main, evaluate_hostile(hostile, **change))
    assert out.exit_code == 2 and out.output.startswith("error: ") and out.output.count("\n") == 1, out.output
    assert message in out.output and not (hostile / "out.csv").exists()


def test_a_format_version_of_the_wrong_type_is_one_line(hostile):  # noqa: F811
    path = hostile_checkpoint(hostile, payload_change={"format_version": "2"})
    out = CliRunner().invoke(main, ["evaluate", path, "--out", str(hostile / "out.csv")])
    assert out.exit_code == 2 and "format_version must be a whole number, got '2'" in out.output


@pytest.mark.parametrize("label", ["=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0", "@SUM(1+1)", "-1+1"])
def test_what_evaluate_writes_is_spreadsheet_safe_and_reads_back(label, tmp_path):
    out = CliRunner().invoke(main, evaluate_hostile(tmp_path, label=label))
    assert out.exit_code == 0, out.output
    import csv

    with open(tmp_path / "out.csv", newline="") as handle:
        assert next(csv.DictReader(handle))["label"] == "'" + label  # the cell a spreadsheet opens: text
    from srtbench import results

    assert results.read(tmp_path / "out.csv")["label"].tolist() == [label]  # and read back as it was
    table = CliRunner().invoke(main, ["table", str(tmp_path / "out.csv"), "--format", "csv"])
    assert table.exit_code == 0
    assert next(csv.DictReader(table.output.splitlines()))["label"] == "'" + label


def test_columns_a_user_added_survive_the_next_evaluation(tmp_path):
    import pandas as pd

    argv = evaluate_hostile(tmp_path)
    assert CliRunner().invoke(main, argv).exit_code == 0
    frame = pd.read_csv(tmp_path / "out.csv")
    frame["my_notes"] = ["checked by hand"]
    frame.to_csv(tmp_path / "out.csv", index=False)
    again = [*argv[:argv.index("--attacks") + 1], "fgsm,pgd[steps=2]", *argv[argv.index("--attacks") + 2:]]
    assert CliRunner().invoke(main, again).exit_code == 0
    after = pd.read_csv(tmp_path / "out.csv")
    assert after["attack"].tolist() == ["fgsm", "pgd"] and after["my_notes"].tolist()[0] == "checked by hand"


@pytest.mark.parametrize("pointer,message", [
    ("../../../../../../etc/passwd", "lies outside"),
    ("{other}", "is not the file of its row"),
], ids=["outside-the-side-folder", "another-models-file"])
def test_a_row_reads_only_its_own_per_example_file(pointer, message, tmp_path):
    """Worst cases come from per-example files: a row may not point at another model's, nor at any other file."""
    from srtbench import results

    shipped = Path(__file__).resolve().parent.parent / "results" / "fmnist"
    folder = tmp_path / "res"
    folder.mkdir()
    for stem in ("fmnist-pixel-cpu--at", "fmnist-pixel-cpu--standard"):
        (folder / f"{stem}.csv").write_bytes((shipped / f"{stem}.csv").read_bytes())
        os.symlink(shipped / f"{stem}.examples", folder / f"{stem}.examples")
    at = folder / "fmnist-pixel-cpu--at.csv"
    frame = results.read(at)
    other = results.read(folder / "fmnist-pixel-cpu--standard.csv")
    pgd = frame.index[(frame["attack"] == "pgd") & (frame["fraction"] == 1.0)][0]
    stolen = other.loc[(other["attack"] == "pgd") & (other["fraction"] == 1.0), "per_example"].iloc[0]
    frame.loc[pgd, "per_example"] = pointer.format(other=stolen.replace("fmnist-pixel-cpu--standard",
                                                                        "fmnist-pixel-cpu--at"))
    at.unlink()
    results.append(at, frame.to_dict("records"))
    out = CliRunner().invoke(main, ["table", str(at), "--layout", "table4"])
    assert out.exit_code == 2 and message in out.output, out.output


def test_plots_draw_any_label_attack_and_file_name(tmp_path):
    """Mathtext (`$\\undefinedcmd$`), a byte-order mark and terminal escapes in labels, attack and file names: drawn
    as text, never a crash."""
    from srtbench import results

    rows = [{"label": f"\ufeffAT {i} $\\undefinedcmd$ \x1b]0;x\x07", "attack": "$\\undefinedcmd$", "clean_acc": 70.0,
             "robust_acc": 50.0 - i, "fraction": f, "n": 10, "seed": 0, "dataset": "fashion-mnist",
             "checkpoint": f"c{i}.pt", "checkpoint_sha256": str(i) * 64}
            for i in range(2) for f in (0.5, 1.0)]
    results.append(tmp_path / "r.csv", rows)
    out = CliRunner().invoke(main, ["plot", "budget", str(tmp_path / "r.csv"), "--out", str(tmp_path / "b")])
    assert out.exit_code == 0 and (tmp_path / "b.png").stat().st_size > 0, out.output
    metrics = tmp_path / "$\\undefinedcmd$.metrics.csv"
    metrics.write_text("epoch,step,lr,loss,train_acc\n1,10,0.1,2.0,30\n2,20,0.01,1.0,60\n")
    for kind in ("schedule", "training"):
        out = CliRunner().invoke(main, ["plot", kind, str(metrics), "--out", str(tmp_path / kind)])
        assert out.exit_code == 0 and (tmp_path / f"{kind}.png").stat().st_size > 0, out.output


@pytest.mark.parametrize("name,value,message", [
    ("SRTBENCH_PROGRESS", "bogus", "SRTBENCH_PROGRESS must be plain or off (or unset), got 'bogus'"),
    ("SRTBENCH_PROGRESS_SECONDS", "abc", "SRTBENCH_PROGRESS_SECONDS must be a positive number of seconds"),
    ("SRTBENCH_DATA", "/nonexistent", "SRTBENCH_DATA=/nonexistent: no such folder"),
])
def test_a_mistyped_environment_variable_is_one_line(name, value, message, hostile, monkeypatch):  # noqa: F811
    monkeypatch.setenv(name, value)
    out = CliRunner().invoke(main, train(hostile)[:2] + ["--iterations", "1", "--out", str(hostile / "run.pt")])
    assert out.exit_code == 2 and message in out.output and out.output.count("\n") == 1, out.output


def test_more_threads_than_cores_are_capped_with_a_notice(monkeypatch, capsys):
    from srtbench import runtime

    monkeypatch.setenv("SRTBENCH_THREADS", "2000")
    assert runtime.set_threads() == runtime.usable_cores()
    assert "SRTBENCH_THREADS=2000 exceeds" in capsys.readouterr().err


def test_a_row_missing_a_required_value_is_one_line(tmp_path):
    from tests.test_hostile_results import csv_text

    (tmp_path / "r.csv").write_text(csv_text({"fraction": "nan"}))
    out = CliRunner().invoke(main, ["table", str(tmp_path / "r.csv")])
    assert out.exit_code == 2 and out.output == f"error: {tmp_path / 'r.csv'}, line 2: fraction is missing\n"


@pytest.mark.parametrize("native_checkpoint", [True, False], ids=["checkpoint", "foreign-state-dict"])
def test_integer_weights_are_refused_not_cast(native_checkpoint, hostile):  # noqa: F811
    from tests.test_hostile_inputs import foreign

    if native_checkpoint:
        path = small_cnn(hostile, 10)
        payload = torch.load(path, weights_only=True)
        key = next(iter(payload["state_dict"]))
        payload["state_dict"][key] = payload["state_dict"][key].to(torch.int8)
        torch.save(payload, path)
        argv = ["evaluate", path, "--out", str(hostile / "out.csv")]
    else:
        argv = foreign(hostile)
        torch.save({k: v.to(torch.int8) for k, v in torch.load(hostile / "w.pt").items()}, hostile / "w.pt")
    out = CliRunner().invoke(main, argv)
    assert out.exit_code == 2 and "is int8, the model's is float32 (srtbench casts no integer weights)" in out.output, \
        out.output


def test_a_file_name_with_terminal_escapes_is_printed_inert(hostile):  # noqa: F811
    """`saved PATH` and every other line that names a file: an OSC sequence in a name cannot retitle the terminal."""
    name = hostile / "a\x1b]0;pwned\x07\u202e.pt"
    out = CliRunner().invoke(main, train(hostile, "--iterations", "1")[:-2] + ["--out", str(name)])
    assert out.exit_code == 0 and name.is_file(), out.output
    assert "\x1b" not in out.output and "\x07" not in out.output and "\u202e" not in out.output
    assert "saved " in out.output and "<U+202E>" in out.output
