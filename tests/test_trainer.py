"""The trainer: schedules, exact resume, signals, checkpoints and metrics, bad options, presets, and one
integration test per threat on real Fashion-MNIST."""

import csv
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from srtbench import checkpoint, data
from srtbench.cli import main
from srtbench.data import DataConfig
from srtbench.defenses import DEFENSES, DefenseParams
from srtbench.errors import SrtbenchError
from srtbench.maximizers import GridSearch, cross_entropy, misclassified
from srtbench.neighborhoods import PixelBall, Spatial, ThreatConfig
from srtbench.outcomes import unpack
from srtbench.presets import PRESETS
from srtbench.trainer import METRICS_COLUMNS, Run, TrainConfig, held_out_check, held_out_outcomes, learning_rate, train
from tests.fitting import fit


def cli(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def sets(fmnist_train, fmnist_test):
    labeled, unlabeled = data.split(fmnist_train.subset(torch.arange(1200)), 128, 256, seed=0)
    return labeled, unlabeled, fmnist_test.subset(torch.arange(32))


def tiny(tmp, defense="srt", name="run", threat=None, **train_kw):
    kw = dict(epochs=2, batch_size=64, lr=0.05, check_size=32, check_steps=2, seed=3)
    kw.update(train_kw)
    return Run(defense, str(tmp / f"{name}.pt"), DefenseParams(steps=2, k=3), threat or ThreatConfig(),
               DataConfig(n_labeled=128, n_unlabeled=256), TrainConfig(**kw))


def test_piecewise_schedule_decays_at_milestones():
    cfg = TrainConfig(lr=0.1, milestones=(0.5, 0.75), gamma=0.1)
    assert [learning_rate(cfg, "piecewise", s, 100) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_cyclic_schedule_is_triangular():
    cfg = TrainConfig(lr_max=0.2, cycle_peak=0.4)
    lrs = [learning_rate(cfg, "cyclic", s, 100) for s in range(100)]
    assert lrs[39] == pytest.approx(0.2) and max(lrs) == pytest.approx(0.2)
    assert lrs[0] < 0.01 and lrs[-1] == pytest.approx(0.0)
    assert all(a < b for a, b in zip(lrs[:39], lrs[1:40])) and all(a > b for a, b in zip(lrs[39:-1], lrs[40:]))


def test_resume_after_a_stop_mid_epoch_equals_uninterrupted(tmp_path, sets):
    labeled, unlabeled, check = sets
    full = train(tiny(tmp_path, name="full"), labeled=labeled, unlabeled=unlabeled, check=check, progress=False)

    def stop_at_3(step, stop):
        if step == 3:  # an epoch has 384 / 64 = 6 batches: this is mid-epoch 1
            stop()

    run = tiny(tmp_path, name="cut")
    cut = train(run, labeled=labeled, unlabeled=unlabeled, check=check, progress=False, on_step=stop_at_3)
    assert cut.interrupted and cut.path is None and not run.paths[0].exists()
    saved = checkpoint.load(run.paths[1])
    assert (saved.resume["epoch"], saved.resume["batch"], saved.resume["step"]) == (0, 3, 3)
    saved.build_model()
    done = train(run, labeled=labeled, unlabeled=unlabeled, check=check, progress=False, resume=True)
    a, b = checkpoint.load(full.path).state_dict, checkpoint.load(done.path).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in full.metrics]
    assert strip == [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in done.metrics]


def test_how_often_the_held_out_check_runs_never_changes_the_weights(tmp_path, sets):
    """Recipes set `check_every` per run so that every run is checked about as often in SGD steps: the check draws
    from its own generator in eval mode, so the weights are those of a run checked only at its end."""
    labeled, unlabeled, check = sets
    often, once = (train(tiny(tmp_path, name=name, check_every=every), labeled=labeled, unlabeled=unlabeled,
                         check=check, progress=False) for name, every in (("often", 1), ("once", 2)))
    assert sum(r["robust_acc"] == r["robust_acc"] for r in often.metrics) == 2  # checked each epoch
    assert sum(r["robust_acc"] == r["robust_acc"] for r in once.metrics) == 1  # NaN but the last
    a, b = checkpoint.load(often.path).state_dict, checkpoint.load(once.path).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("scripted, stops", [
    ([(80.0, 40.0), (9.6, 9.6), (9.6, 9.6)], True),  # learned, then chance: seed 0's UAT at β = 6
    ([(9.0, 1.0), (12.0, 2.0), (11.0, 1.0)], False),  # never learned (a short run at chance) is not a collapse
    ([(80.0, 40.0), (70.0, 30.0), (75.0, 35.0)], False)])  # a dip above chance is not one either
def test_a_run_that_learned_and_fell_to_chance_stops_with_one_line(tmp_path, sets, monkeypatch, scripted, stops):
    """The held-out check's clean accuracy back at chance after the run had learned stops the run (its weights are
    finite, its loss stuck at ln 10, and no later step repairs it), keeping the resume state from before the fall."""
    import srtbench.trainer.loop as loop

    def outcomes(clean, robust, n=1000):  # per-image results at these percentages
        return tuple(torch.arange(n) < round(p * n / 100) for p in (clean, robust))

    checks = iter(scripted)
    monkeypatch.setattr(loop, "held_out_outcomes", lambda *a, **k: outcomes(*next(checks)))
    labeled, unlabeled, check = sets
    run = tiny(tmp_path, defense="standard", epochs=3)
    if not stops:
        assert len(train(run, labeled=labeled, unlabeled=unlabeled, check=check, progress=False).metrics) == 3
        return
    with pytest.raises(SrtbenchError, match=r"collapsed by step \d+: held-out clean accuracy fell from 80.0% \(step "
                                            r"\d+\) to 9.6% \(chance: 10%\)"):
        train(run, labeled=labeled, unlabeled=unlabeled, check=check, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run.metrics.csv")))
    assert [float(r["clean_acc"]) for r in rows] == [80.0, 9.6]  # the fall is on record
    assert not (tmp_path / "run.pt").exists() and (tmp_path / "run.resume").exists()
    assert checkpoint.load(tmp_path / "run.resume").meta["epoch"] == 1  # the state before the fall


def test_checkpoint_meta_and_metrics_csv(tmp_path, sets):
    labeled, unlabeled, check = sets
    run = tiny(tmp_path, epochs=1)
    result = train(run, labeled=labeled, unlabeled=unlabeled, check=check, progress=False)
    ckpt = checkpoint.load(result.path)
    for key in ("label", "defense", "defense_params", "threat", "train", "data", "seed", "epoch", "metrics",
                "train_time_s", "preset"):
        assert key in ckpt.meta, key
    assert ckpt.meta["label"] == "SRT (λ = 1)" and ckpt.meta["defense_params"]["lam"] == 1.0
    assert ckpt.meta["defense_params"]["lambda_warmup"] == 0.0  # recorded, and the paper's (no ramp) by default
    assert ckpt.meta["defense_params"]["step_size"] == pytest.approx(0.125)  # resolved 2.5·ε/K
    assert set(ckpt.meta["metrics"]) == {"clean_acc", "robust_acc"} and ckpt.meta["train_time_s"] > 0
    with open(run.paths[2]) as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == METRICS_COLUMNS and len(rows) == 1 and rows[0]["step"] == "6"
    assert float(rows[0]["robust_loss"]) > 0 and float(rows[0]["natural_loss"]) > 0
    # the check's per-image outcomes: one per held-out image, as many correct as its robust accuracy says, the same
    # as a check of the saved model (its own generator)
    robust = unpack(rows[0]["robust_correct"])
    assert len(robust) == len(check) == 32
    assert float(rows[0]["robust_acc"]) == pytest.approx(100 * robust.float().mean().item())
    again = held_out_outcomes(ckpt.build_model(), check, run.threat.build(), run.train.check_steps, run.train.seed,
                              torch.device("cpu"))[1]
    assert torch.equal(again, robust)
    assert ckpt.build_model()(check.batch(torch.arange(4))[0]).shape == (4, 10)


def test_unlabeled_labels_are_never_read(tmp_path, fmnist_train, sets):
    """Poison the labels of every image that lands in D_U: the trained weights do not change."""
    _, _, check = sets
    base = fmnist_train.subset(torch.arange(1200))
    perm = torch.randperm(len(base), generator=torch.Generator().manual_seed(0))  # split()'s permutation
    poisoned_labels = base.labels.clone()
    poisoned_labels[perm[128:]] = (poisoned_labels[perm[128:]] + 1 + torch.arange(len(base) - 128) % 9) % 10
    poisoned = data.ImageSet(base.images, poisoned_labels)
    weights = []
    for i, source in enumerate((base, poisoned)):
        labeled, unlabeled = data.split(source, 128, 256, seed=0)
        result = train(tiny(tmp_path, name=f"p{i}", epochs=1), labeled=labeled, unlabeled=unlabeled, check=check,
                       progress=False)
        weights.append(checkpoint.load(result.path).state_dict)
    assert (poisoned_labels != base.labels).sum() > 900
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_rst_trains_with_a_teacher_checkpoint(tmp_path, sets):
    labeled, unlabeled, check = sets
    teacher = train(tiny(tmp_path, "standard", name="teacher", epochs=1), labeled=labeled, check=check,
                    progress=False)
    run = tiny(tmp_path, "rst", name="rst", epochs=1)
    run.params = DefenseParams(steps=2, teacher=str(teacher.path))
    result = train(run, labeled=labeled, unlabeled=unlabeled, check=check, progress=False)
    assert checkpoint.load(result.path).meta["defense_params"]["teacher"] == str(teacher.path)
    assert result.metrics[-1]["step"] == 384 // 64  # half of each batch pseudo-labeled: 6 batches of 32 + 32


def test_sigint_saves_a_loadable_checkpoint_and_exits(tmp_path, fmnist_train):
    out = tmp_path / "killed.pt"
    cmd = [sys.executable, "-m", "srtbench", "train", "standard", "--n-labeled", "3000", "--batch-size", "64",
           "--epochs", "20", "--check-size", "0", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while not (tmp_path / "killed.metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.2)  # one epoch done: the loop is surely inside the next one
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and not out.exists()
    saved = checkpoint.load(tmp_path / "killed.resume")
    assert saved.resume["step"] > saved.resume["epoch"] * (3000 // 64)
    saved.build_model()


@pytest.mark.parametrize("args,message", [
    (["srt", "--lambda", "-1"], "--lambda must be >= 0"),
    (["no-such-defense"], "unknown defense 'no-such-defense'"),
    (["trades", "--threat", "spatial"], "not defined for the spatial threat"),
    (["rst"], "rst needs a teacher"),
    (["srt", "--epochs", "0"], "--epochs must be >= 1"),
])
def test_bad_options_are_one_line_errors_with_exit_2(tmp_path, args, message):
    result = cli("train", *args, "--out", str(tmp_path / "x.pt"))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1 and message in result.output


def test_existing_resume_file_needs_resume_flag(tmp_path):
    (tmp_path / "x.resume").write_bytes(b"")
    result = cli("train", "standard", "--out", str(tmp_path / "x.pt"))
    assert result.exit_code == 2 and "--resume" in result.output


def test_help_lists_defenses_and_paper_defaults():
    out = cli("train", "--help").output
    assert all(name in out for name in DEFENSES.names())
    srt = cli("train", "srt", "--help").output
    assert "--lambda" in srt and "0.2 spatial" in srt and "--beta" not in srt
    assert "--beta" in cli("train", "trades", "--help").output


def preset_run(monkeypatch, tmp_path, defense: str, preset: str) -> Run:
    """The Run that `srtbench train DEFENSE --preset PRESET` hands the trainer (which is replaced: no training)."""
    runs = []

    def capture(run, **kwargs):
        runs.append(run)
        return SimpleNamespace(interrupted=False, metrics=[], path=run.out, last=None, train_time_s=0.0)

    monkeypatch.setattr("srtbench.trainer.train", capture)
    result = cli("train", defense, "--preset", preset, "--out", str(tmp_path / f"{defense}.pt"))
    assert result.exit_code == 0 and len(runs) == 1, (defense, preset, result.output)
    return runs[0]


# The paper's settings, read off Appendices B-E (and J), for the presets that follow them: what the
# preset must hand to the trainer.  threat/params/train/data are the sections of a Run.
PAPER = {
    # Appendix B: WRN-34-10, ε1 0.031, α1 0.007, K1 10, η1 0.1, m1 128, 100 epochs
    "cifar10-pixel-table2": {"threat": {"threat": "pixel", "epsilon": 0.031},
                             "params": {"steps": 10, "step_size": 0.007},
                             "train": {"model": "wrn-34-10", "lr": 0.1, "batch_size": 128, "epochs": 100},
                             "data": {"dataset": "cifar10"}},
    # Appendix E: as B-C, 120 epochs, initial η 0.05, SRT λ 1
    "cifar10-pixel-table4": {"threat": {"threat": "pixel", "epsilon": 0.031},
                             "params": {"steps": 10, "step_size": 0.007, "lam": 1.0},
                             "train": {"model": "wrn-34-10", "lr": 0.05, "batch_size": 128, "epochs": 120},
                             "data": {"dataset": "cifar10"}},
    # Appendix C: SmallCNN, ε 0.1, α 0.01, K 20, η3 0.01, m3 128, 50 epochs
    "mnist-pixel-table6": {"threat": {"threat": "pixel", "epsilon": 0.1}, "params": {"steps": 20, "step_size": 0.01},
                           "train": {"model": "small-cnn", "lr": 0.01, "batch_size": 128, "epochs": 50},
                           "data": {"dataset": "mnist"}},
    # Appendix E: K 40 and ε 0.3 on MNIST, 120 epochs, η 0.05, α as in C (0.01), SRT λ 1
    "mnist-pixel-table4": {"threat": {"threat": "pixel", "epsilon": 0.3},
                           "params": {"steps": 40, "step_size": 0.01, "lam": 1.0},
                           "train": {"model": "small-cnn", "lr": 0.05, "batch_size": 128, "epochs": 120},
                           "data": {"dataset": "mnist"}},
    # Appendix B (spatial), C ("the other settings are the same"), D (λ 0.2): 30°, 3 px, η 0.1, m 128, 80,000 it.
    "mnist-spatial-table5": {"threat": {"threat": "spatial", "rotation": 30.0, "translation": 3.0},
                             "params": {"lam": 0.2, "k": 10},
                             "train": {"model": "small-cnn", "lr": 0.1, "batch_size": 128, "iterations": 80_000},
                             "data": {"dataset": "mnist"}},
    "cifar10-spatial-table1": {"threat": {"threat": "spatial", "rotation": 30.0, "translation": 3.0},
                               "train": {"model": "resnet-spatial", "lr": 0.1, "batch_size": 128,
                                         "iterations": 80_000},
                               "data": {"dataset": "cifar10"}},
    "cifar10-spatial-table3": {"threat": {"threat": "spatial", "rotation": 30.0, "translation": 3.0},
                               "params": {"lam": 0.2},
                               "train": {"model": "resnet-spatial", "lr": 0.1, "batch_size": 128,
                                         "iterations": 80_000},
                               "data": {"dataset": "cifar10"}},
    # Appendix J: fast SRT, cyclic η, 45,000 iterations (spatial) / 50 epochs with FGSM-RS α = 1.25ε (pixel)
    "cifar10-fast-table8": {"threat": {"threat": "spatial", "rotation": 30.0, "translation": 3.0},
                            "train": {"schedule": "cyclic", "iterations": 45_000, "batch_size": 128}},
    "cifar10-fast-table9": {"threat": {"threat": "pixel", "epsilon": 0.031}, "params": {"fgsm_alpha": 1.25},
                            "train": {"schedule": "cyclic", "epochs": 50, "batch_size": 128}},
}


def test_every_preset_builds_and_fits_its_defenses(monkeypatch, tmp_path):
    """`train DEFENSE --preset NAME` builds valid configs for every defense the preset lists, and hands the
    trainer exactly the preset's values (SRT's λ and ramp only to the SRT family)."""
    for name in PRESETS.names():
        p = PRESETS.get(name)
        assert p.source and p.defenses, name
        for d in p.defenses:
            run = preset_run(monkeypatch, tmp_path, d, name)
            defense = DEFENSES.get(d)
            sections = {"threat": run.threat, "data": run.data, "train": run.train, "params": run.params}
            for section, values in p.overrides(d).items():
                for key, value in values.items():
                    if section == "params" and key not in defense.params:
                        continue  # a setting this defense does not read is not on its command line
                    assert getattr(sections[section], key) == value, (name, d, section, key)
            if d not in ("rt", "srt", "fast-srt"):
                assert run.params.lambda_warmup == 0 and "lam" not in p.overrides(d)["params"], (name, d)
            defense.resolve(run.params, run.threat.threat, run.data.dataset, run.threat.epsilon)
        # deviations from the paper are set only by the CPU presets, and said in their source text
        if p.params.get("lambda_warmup"):
            assert name.endswith("-cpu") and "NOT in the paper" in p.source, name
    assert PRESETS.get("fmnist-pixel-cpu").params["lambda_warmup"] > 0
    listing = cli("presets").output
    assert all(name in listing for name in PRESETS.names()) and "source:" in listing


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_presets_set_the_appendix_numbers(monkeypatch, tmp_path, name):
    p = PRESETS.get(name)
    srt = next(d for d in ("srt", "fast-srt") if d in p.defenses)
    run = preset_run(monkeypatch, tmp_path, srt, name)
    sections = {"threat": run.threat, "data": run.data, "train": run.train, "params": run.params}
    for section, values in PAPER[name].items():
        for key, value in values.items():
            assert getattr(sections[section], key) == pytest.approx(value), (name, section, key)
    if run.train.iterations is None:
        assert "iterations" not in PAPER[name]["train"]  # counted in epochs, as the paper counts them
    assert run.params.lambda_warmup == 0  # no ramp in the paper's runs


def test_presets_give_the_baselines_their_papers_settings(monkeypatch, tmp_path):
    """Appendix E: TRADES 1/λ (β) = 1 on MNIST and 6 on CIFAR-10; UAT β 6, changed to 1 on CIFAR-10."""
    for name, dataset in (("mnist-pixel-table4", "mnist"), ("cifar10-pixel-table4", "cifar10")):
        for d, beta in (("trades", {"mnist": 1.0, "cifar10": 6.0}), ("uat", {"mnist": 6.0, "cifar10": 1.0})):
            run = preset_run(monkeypatch, tmp_path, d, name)
            resolved = DEFENSES.get(d).resolve(run.params, run.threat.threat, run.data.dataset, run.threat.epsilon)
            assert run.data.dataset == dataset and resolved.beta == beta[dataset], (name, d)
            assert (resolved.steps, resolved.step_size) == (PAPER[name]["params"]["steps"],
                                                           PAPER[name]["params"]["step_size"])


# ---------------------------------------------------------------- integration on real Fashion-MNIST
# (tests/fitting.py; the sets and the standard model are session fixtures in conftest.py, shared with test_threats)

# half the paper's spatial budget (15°, 2 px, where it has 30°, 3 px): a few hundred steps of Worst-of-k do not
# make a small net invariant to the full one (SmallCNN measured: 6% vs standard's 4% under GridAdv); a coarser
# GridAdv (11 × 3 × 3 = 99 transforms) keeps the check quick
SPATIAL = ThreatConfig(threat="spatial", rotation=15.0, translation=2.0)
SPATIAL_GRID = Spatial(15.0, 2.0, grid_points=(11, 3, 3))


def _pgd_accuracy(model, check):
    return held_out_check(model, check, PixelBall(0.1), 10, 0, torch.device("cpu"))  # PGD-10, uniform start


def _gridadv_accuracy(model, check):
    x, y = check.batch(torch.arange(len(check)))
    theta = GridSearch()(model, SPATIAL_GRID, x, y, cross_entropy, done=misclassified)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item() * 100
        return clean, (model(SPATIAL_GRID.apply(x, theta)).argmax(1) == y).float().mean().item() * 100


@pytest.mark.slow
@pytest.mark.xdist_group("standard-model")  # one standard model per test process: share it
def test_pixel_at_beats_standard_under_pgd(tmp_path, fmnist_sets, standard_model):
    check = fmnist_sets[2]
    pixel = ThreatConfig(threat="pixel", epsilon=0.1)
    accs = {"standard": _pgd_accuracy(standard_model, check),
            "at": _pgd_accuracy(fit(tmp_path, fmnist_sets, "at", pixel, steps=3, step_size=0.04), check)}
    print("pixel (clean %, PGD %)", accs)
    assert all(clean > 50 for clean, _ in accs.values())  # both learned the task (chance: 10%)
    assert accs["standard"][1] < 25  # what a broken defense gets (measured 12%)
    assert accs["at"][1] > accs["standard"][1] + 25  # measured 59% vs 12%


@pytest.mark.slow
@pytest.mark.xdist_group("standard-model")  # one standard model per test process: share it
def test_spatial_worst_of_k_beats_standard_under_gridadv(tmp_path, fmnist_sets, standard_model):
    check = fmnist_sets[2]
    accs = {"standard": _gridadv_accuracy(standard_model, check),
            "worst-of-k": _gridadv_accuracy(fit(tmp_path, fmnist_sets, "worst-of-k", SPATIAL, k=5),
                                            check)}
    print("spatial (clean %, GridAdv %)", accs)
    assert accs["standard"][0] > 55 and accs["worst-of-k"][0] > 50
    assert accs["worst-of-k"][1] > accs["standard"][1] + 15  # measured 56% vs 5%


def test_preset_lambda_is_srt_s_not_the_baselines():
    from srtbench.presets import PRESETS

    spatial = PRESETS.get("fmnist-spatial-cpu")
    assert spatial.overrides("srt")["params"].get("lam") == spatial.params["lam"]
    # KLR keeps its own paper's λ (Yang et al.), not the 0.2 the paper chose for spatial SRT
    assert "lam" not in spatial.overrides("klr")["params"]


def test_train_without_out_writes_runs_defense_threat_and_never_overwrites(tmp_path, monkeypatch):
    """`srtbench train srt --threat pixel`, as the README types it, from an empty folder."""
    monkeypatch.chdir(tmp_path)
    args = ("train", "standard", "--threat", "pixel", "--iterations", "1", "--n-labeled", "64", "--check-size", "16")
    first = cli(*args)
    assert first.exit_code == 0, first.output
    assert (tmp_path / "runs" / "standard-pixel.pt").is_file() and "saved runs/standard-pixel.pt" in first.output
    before = (tmp_path / "runs" / "standard-pixel.pt").stat().st_mtime_ns
    again = cli(*args)
    assert again.exit_code == 2 and again.output.count("\n") == 1 and "--force" in again.output
    assert (tmp_path / "runs" / "standard-pixel.pt").stat().st_mtime_ns == before  # nothing lost
    forced = cli(*args, "--force")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "runs" / "standard-pixel.pt").stat().st_mtime_ns != before
