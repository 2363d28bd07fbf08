"""Training under hostile conditions (issue 16): kill -9 at any moment, stale temporary files, shared
folders, a glob over the runs folder, a batch larger than the data, a long run on a CPU."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from srtbench import checkpoint, data, runtime, trainer
from srtbench.cli import main
from srtbench.data import DataConfig
from srtbench.defenses import DefenseParams
from srtbench.errors import SrtbenchError
from srtbench.models import create_model
from srtbench.neighborhoods import ThreatConfig
from srtbench.runtime import atomic_write_text
from srtbench.trainer import Run, TrainConfig, guards, train

ROOT = Path(__file__).resolve().parent.parent


def tiny_sets(fmnist_train=None):
    """96 training images (32 labeled): 6 batches of 16 per epoch."""
    fmnist_train = fmnist_train if fmnist_train is not None else data.load("fashion-mnist", train=True)
    return data.split(fmnist_train.subset(torch.arange(600)), 32, 64, seed=0)


def tiny_run(tmp, name="run", defense="srt", **train_kw):
    kw = dict(epochs=2, batch_size=16, lr=0.05, check_size=0, seed=3)
    kw.update(train_kw)
    return Run(defense, str(Path(tmp) / f"{name}.pt"), DefenseParams(steps=2, k=3), ThreatConfig(),
               DataConfig(n_labeled=32, n_unlabeled=64), TrainConfig(**kw))


@pytest.fixture(scope="module")
def sets(fmnist_train):
    return tiny_sets(fmnist_train)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, sets):
    labeled, unlabeled = sets
    result = train(tiny_run(tmp_path_factory.mktemp("full"), "full"), labeled=labeled, unlabeled=unlabeled,
                   progress=False)
    return checkpoint.load(result.path).state_dict


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- 1. kill -9 loses at most the save interval


class _Killed(Exception):
    pass


# a subprocess that trains the tiny run and SIGKILLs itself right after SGD step KILL_AT (nothing runs after it:
# no finally block, no atexit, no flush); its resume state is whatever the last periodic save wrote
KILL_SCRIPT = """
import os, signal, sys, torch
from srtbench.trainer import train
from tests.test_hostile_runs import tiny_run, tiny_sets
out, kill_at, every_steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]))  # as the resuming test process: float sums depend on the thread count
labeled, unlabeled = tiny_sets()
def on_step(step, stop):
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
train(tiny_run(out, "run", save_every=0, save_every_steps=every_steps), labeled=labeled, unlabeled=unlabeled,
      progress=False, on_step=on_step)
"""

# (case, save settings, how the run dies, after which SGD step, the step its resume state must hold);
# an epoch is 6 steps, so the kills at 5 fall inside the first epoch, where nothing used to be saved
KILLS = [
    ("every 2 steps, raise", {"save_every": 0, "save_every_steps": 2}, "raise", 5, 4),
    ("every 2 steps, SIGKILL", {"save_every": 0, "save_every_steps": 2}, "sigkill", 5, 4),
    ("every step by the clock", {"save_every": 1e-9}, "raise", 5, 4),
    ("every 4 steps, second epoch", {"save_every": 0, "save_every_steps": 4}, "raise", 11, 10),
    ("epoch ends only, second epoch", {"save_every": 0}, "raise", 8, 6),
    ("epoch ends only, first epoch", {"save_every": 0}, "raise", 5, None),
]


@pytest.mark.parametrize("case,saving,how,kill_at,saved_at", KILLS, ids=[k[0] for k in KILLS])
def test_a_killed_run_loses_at_most_the_save_interval_and_resumes_exactly(tmp_path, sets, uninterrupted, capsys,
                                                                           case, saving, how, kill_at, saved_at):
    labeled, unlabeled = sets
    run = tiny_run(tmp_path, **saving)
    if how == "sigkill":
        proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path), str(kill_at),
                               str(saving["save_every_steps"]), str(torch.get_num_threads())], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == -9, proc.stderr
    else:
        def die(step, stop):
            if step == kill_at:
                raise _Killed  # nothing in the trainer catches it: the state on disk is the last save's

        with pytest.raises(_Killed):
            train(run, labeled=labeled, unlabeled=unlabeled, progress=False, on_step=die)
    _, resume_file, _ = run.paths
    if saved_at is None:
        assert not resume_file.exists()
    else:
        saved = checkpoint.load(resume_file).resume
        lost = kill_at - saved["step"]
        interval = saving.get("save_every_steps") or (1 if saving["save_every"] else 6)  # 6: an epoch
        assert saved["step"] == saved_at and lost <= interval
    capsys.readouterr()
    done = train(run, labeled=labeled, unlabeled=unlabeled, progress=False, resume=True)
    err = capsys.readouterr().err
    if saved_at is None:
        assert "nothing to resume" in err and "starting afresh" in err
    assert same_weights(checkpoint.load(done.path).state_dict, uninterrupted)
    print(f"{case}: killed after step {kill_at}, resumed from step {saved_at or 0}")  # shown by pytest -rP


def test_resume_with_nothing_to_resume_never_overwrites_a_finished_run(tmp_path, sets):
    labeled, unlabeled = sets
    run = tiny_run(tmp_path, epochs=1)
    train(run, labeled=labeled, unlabeled=unlabeled, progress=False)
    run.paths[1].unlink()
    with pytest.raises(SrtbenchError, match="exists"):
        train(run, labeled=labeled, unlabeled=unlabeled, progress=False, resume=True)


def _killed_after_step_4(tmp_path, sets) -> Run:
    """The tiny run, saving every 3 steps, stopped by an exception after SGD step 4 (its resume state: step 3)."""
    labeled, unlabeled = sets
    run = tiny_run(tmp_path, save_every=0, save_every_steps=3)

    def die(step, stop):
        if step == 4:
            raise _Killed

    with pytest.raises(_Killed):
        train(run, labeled=labeled, unlabeled=unlabeled, progress=False, on_step=die)
    return run


def test_save_settings_are_not_part_of_what_resume_must_match(tmp_path, sets, uninterrupted):
    labeled, unlabeled = sets
    run = _killed_after_step_4(tmp_path, sets)
    run.train = TrainConfig(**{**vars(run.train), "save_every": 600.0, "save_every_steps": 0})
    done = train(run, labeled=labeled, unlabeled=unlabeled, progress=False, resume=True)
    assert same_weights(checkpoint.load(done.path).state_dict, uninterrupted)


def test_a_run_records_its_torch_threads_and_says_when_a_resume_changes_them(tmp_path, sets, capsys):
    labeled, unlabeled = sets
    now = torch.get_num_threads()
    other = 1 if now > 1 else 2
    run = _killed_after_step_4(tmp_path, sets)  # its first part at `now` threads
    assert checkpoint.load(run.paths[1]).meta["threads"] == [now]
    capsys.readouterr()

    def die(step, stop):
        if step == 8:
            raise _Killed

    torch.set_num_threads(other)  # a second part at the other count, stopped again
    try:
        with pytest.raises(_Killed):
            train(run, labeled=labeled, unlabeled=unlabeled, progress=False, resume=True, on_step=die)
    finally:
        torch.set_num_threads(now)
    assert f"trained so far with {now} torch threads, continued with {other}" in capsys.readouterr().err
    assert checkpoint.load(run.paths[1]).meta["threads"] == [now, other]
    # the last part back at the first count: the part just before it is the one a resume continues
    done = train(run, labeled=labeled, unlabeled=unlabeled, progress=False, resume=True)
    assert f"trained so far with {other} torch threads, continued with {now}" in capsys.readouterr().err
    meta = checkpoint.load(done.path).meta
    assert meta["threads"] == [other, now] and meta["torch_version"] == torch.__version__


def test_a_resume_state_with_unreadable_thread_counts_still_resumes(tmp_path, sets):
    labeled, unlabeled = sets
    run = _killed_after_step_4(tmp_path, sets)
    state = checkpoint.load(run.paths[1])
    checkpoint.save(run.paths[1], state.build_model(), {**state.meta, "threads": "4"}, resume=state.resume)
    done = train(run, labeled=labeled, unlabeled=unlabeled, progress=False, resume=True)
    assert checkpoint.load(done.path).meta["threads"] == [torch.get_num_threads()]


def test_save_every_is_a_command_line_option():
    out = CliRunner().invoke(main, ["train", "srt", "--help"]).output
    assert "--save-every " in out and "--save-every-steps" in out


# ---------------------------------------------------------------- 2. stale temporary files


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _tmp_name(target: str, writer: str) -> str:
    """A temporary file as atomic_path names it (the writer's host and pid), or as older versions did."""
    host = runtime._host()
    return {"dead": f".{target}.{host}-{_dead_pid()}.abc123.tmp",
            "alive": f".{target}.{host}-{os.getpid()}.abc123.tmp",
            "other host": f".{target}.elsewhere-{os.getpid()}.abc123.tmp",
            "legacy": f".{target}.k3j_x9q1.tmp"}[writer]


# (case, the target the temporary file belongs to, its writer, its age in minutes, removed by the next write?)
STALE = [
    ("dead writer", "m.csv", "dead", 0, True),
    ("live writer (a concurrent write)", "m.csv", "alive", 0, False),
    ("writer on another host, fresh", "m.csv", "other host", 0, False),
    ("writer on another host, old", "m.csv", "other host", 120, True),
    ("old, written by an earlier srtbench", "m.csv", "legacy", 120, True),
    ("fresh, written by an earlier srtbench", "m.csv", "legacy", 0, False),
    ("another target's", "other.csv", "dead", 120, False),
]


@pytest.mark.parametrize("case,target,writer,age_min,removed", STALE, ids=[s[0] for s in STALE])
def test_stale_temporary_files_beside_a_target_are_removed_on_its_next_write(tmp_path, case, target, writer,
                                                                             age_min, removed):
    stale = tmp_path / _tmp_name(target, writer)
    stale.write_text("partial")
    then = time.time() - age_min * 60
    os.utime(stale, (then, then))
    atomic_write_text(tmp_path / "m.csv", "a,b\n")
    assert stale.exists() != removed
    assert (tmp_path / "m.csv").read_text() == "a,b\n"


def test_a_killed_writer_leaves_a_temporary_file_that_the_next_write_removes(tmp_path):
    script = ("import os, sys\nfrom srtbench.runtime import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_text('half')\n    os._exit(9)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.csv")], cwd=ROOT)
    assert proc.returncode == 9
    assert [p.name.endswith(".tmp") for p in tmp_path.iterdir()] == [True]
    atomic_write_text(tmp_path / "m.csv", "ok\n")
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]


# ---------------------------------------------------------------- 3. the umask decides who can read


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _write_checkpoint(path):
    spec = data.DATASETS.get("fashion-mnist")
    checkpoint.save(path, create_model("small-cnn", spec.shape, 10), checkpoint.model_meta("small-cnn", spec))


WRITERS = {"text (CSV, metrics)": lambda p: atomic_write_text(p, "x\n"), "checkpoint": _write_checkpoint}


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o027, 0o640)],
                         ids=["umask 022", "umask 002", "umask 077", "umask 027"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_files_are_written_with_the_modes_the_umask_allows(tmp_path, umask, writer, mask, mode):
    umask(mask)
    path = tmp_path / "out.pt"
    WRITERS[writer](path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    WRITERS[writer](path)  # and again over an existing file
    assert stat.S_IMODE(path.stat().st_mode) == mode


# ---------------------------------------------------------------- 4. resume states are no checkpoints to a glob


def test_resume_state_does_not_match_a_checkpoint_glob(tmp_path, sets):
    labeled, unlabeled = sets
    run = tiny_run(tmp_path, epochs=1)
    train(run, labeled=labeled, unlabeled=unlabeled, progress=False)
    assert run.paths[1].exists() and run.paths[1].name == "run.resume"
    assert [p.name for p in tmp_path.glob("*.pt")] == ["run.pt"]


def test_an_old_style_last_pt_still_resumes_with_a_notice(tmp_path, sets, uninterrupted, capsys):
    labeled, unlabeled = sets
    run = tiny_run(tmp_path)

    def stop_at_3(step, stop):
        if step == 3:
            stop()

    train(run, labeled=labeled, unlabeled=unlabeled, progress=False, on_step=stop_at_3)
    legacy = tmp_path / "run.last.pt"
    run.paths[1].rename(legacy)  # as srtbench before this change named it
    capsys.readouterr()
    done = train(run, labeled=labeled, unlabeled=unlabeled, progress=False, resume=True)
    assert "run.last.pt" in capsys.readouterr().err
    assert same_weights(checkpoint.load(done.path).state_dict, uninterrupted)
    assert not legacy.exists() and run.paths[1].exists()  # replaced by the new name


def test_an_old_style_last_pt_still_asks_for_resume(tmp_path):
    (tmp_path / "x.last.pt").write_bytes(b"")
    result = CliRunner().invoke(main, ["train", "standard", "--out", str(tmp_path / "x.pt")])
    assert result.exit_code == 2 and "--resume" in result.output


def test_evaluate_skips_old_style_resume_files_beside_their_checkpoints(tmp_path, monkeypatch):
    for name in ("a.pt", "a.last.pt", "b.last.pt"):
        (tmp_path / name).write_bytes(b"")
    seen = []
    monkeypatch.setattr("srtbench.evaluate.evaluate", lambda paths, cfg: seen.extend(paths) or [])
    result = CliRunner().invoke(main, ["evaluate", *sorted(str(p) for p in tmp_path.glob("*.pt")),
                                       "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 0, result.output
    assert seen == [str(tmp_path / "a.pt"), str(tmp_path / "b.last.pt")]  # b's run never finished: its state is all
    assert "skipped" in result.output and "a.last.pt" in result.output


# ---------------------------------------------------------------- 5. a batch larger than the data, memory


def test_a_batch_larger_than_the_data_is_clamped_with_a_notice(tmp_path, fmnist_train, monkeypatch, capsys):
    labeled = fmnist_train.subset(torch.arange(64))
    run = Run("standard", str(tmp_path / "big.pt"), train=TrainConfig(iterations=2, batch_size=1000,
                                                                       check_size=0),
              data=DataConfig(n_labeled=64, n_unlabeled=0))
    sizes = []

    class Spy(data.ProportionalBatches):
        def epoch(self, *args, **kwargs):
            for batch in super().epoch(*args, **kwargs):
                sizes.append(len(batch.x_labeled))
                yield batch

    monkeypatch.setattr(data, "ProportionalBatches", Spy)
    result = train(run, labeled=labeled, progress=False)
    assert sizes == [64, 64]
    assert "--batch-size 1000 " in capsys.readouterr().err
    assert checkpoint.load(result.path).meta["train"]["batch_size"] == 64


def test_a_run_that_cannot_fit_in_memory_is_refused_before_it_starts(tmp_path, sets, monkeypatch):
    labeled, unlabeled = sets
    monkeypatch.setattr(guards, "available_memory", lambda device: 2**20)  # 1 MiB free
    started = []
    with pytest.raises(SrtbenchError, match=r"--batch-size") as err:
        train(tiny_run(tmp_path), labeled=labeled, unlabeled=unlabeled, progress=False,
              on_step=lambda step, stop: started.append(step))
    assert not started and "\n" not in str(err.value) and "MiB" in str(err.value)


def test_the_memory_estimate_of_smallcnn_is_in_a_plausible_range():
    spec = data.DATASETS.get("fashion-mnist")
    per_example = trainer.activation_bytes(create_model("small-cnn", spec.shape, 10), spec.shape)
    assert 50_000 < per_example < 5_000_000  # ~0.4 MB of fp32 activations per 28 × 28 image


# ---------------------------------------------------------------- 6. a long run on a CPU says so once


@pytest.mark.parametrize("long,preset,says", [(True, None, True), (False, None, False),
                                              (True, "fmnist-pixel-cpu", False)])
def test_a_long_cpu_run_names_the_cpu_preset_once(tmp_path, sets, monkeypatch, capsys, long, preset, says):
    labeled, unlabeled = sets
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if long:
        monkeypatch.setattr(guards, "LONG_CPU_RUN_S", 1e-6)
    run = tiny_run(tmp_path, epochs=2)
    run.preset = preset
    train(run, labeled=labeled, unlabeled=unlabeled, progress=False)
    err = capsys.readouterr().err
    assert err.count("--preset fmnist-pixel-cpu") == (1 if says else 0), err
    if says:
        line = next(ln for ln in err.splitlines() if "--preset" in ln)
        assert "no GPU" in line and "12 steps" in line
