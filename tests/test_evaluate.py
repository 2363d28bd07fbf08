"""`srtbench evaluate`: CSV rows and side files, resume/--force, risks and worst case, bad input."""

from __future__ import annotations

import json
import math
import sys
import textwrap

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from srtbench import checkpoint, data, evaluate, outcomes, results
from srtbench.attacks import ATTACKS
from srtbench.cli import main

FAST = "fgsm[epsilon=0.1],gridadv.t"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def ckpt(trained_cnn, tmp_path_factory):
    """A checkpoint as the trainer writes it (model meta + label/defense), from the shared trained model."""
    path = tmp_path_factory.mktemp("ckpt") / "std.pt"
    meta = {**checkpoint.model_meta("small-cnn", data.DATASETS.get("fashion-mnist")),
            "label": "Standard", "defense": "standard", "threat": {"threat": "pixel", "epsilon": 0.1}}
    checkpoint.save(path, trained_cnn, meta)
    return path


def evaluate_cli(ckpt, out, *extra):
    return run("evaluate", ckpt, "--attacks", FAST, "--n", 48, "--fractions", "0.5,1.0", "--device", "cpu",
               "--out", out, *extra)


def test_rows_follow_the_schema_with_per_example_side_files(ckpt, tmp_path, fmnist_test, monkeypatch):
    out = tmp_path / "r.csv"
    monkeypatch.setattr("srtbench.evaluate.flags.SQUARE_QUERIES", 100)  # the flag's machinery, not Square's strength
    # the row records the process's command line; make it the one a user would have typed
    monkeypatch.setattr("sys.argv", ["/usr/bin/srtbench", "evaluate", str(ckpt), "--attacks", FAST])
    res = evaluate_cli(ckpt, out)
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert list(df.columns) == list(results.COLUMNS) and len(df) == 4
    row = df[(df.attack == "fgsm") & (df.fraction == 1.0)].iloc[0]
    assert row.label == "Standard" and row.defense == "standard" and row.train_threat == "none"
    assert row.dataset == "fashion-mnist" and row.n == 48 and row.robust_ci_low <= row.robust_acc <= row.robust_ci_high
    assert json.loads(row.attack_params)["epsilon"] == 0.1 and json.loads(row.budget) == {"epsilon": 0.1}
    assert json.loads(row.budget_source) == {"epsilon": "command line"}
    grid = df[(df.attack == "gridadv.t") & (df.fraction == 1.0)].iloc[0]
    assert json.loads(grid.budget_source) == {"rotation": "dataset", "translation": "dataset"}  # standard-trained
    assert json.loads(df[(df.attack == "fgsm") & (df.fraction == 0.5)].iloc[0].budget) == {"epsilon": 0.05}
    assert row.checkpoint_sha256 == evaluate.sha256(ckpt)
    assert row.command == f"srtbench evaluate {ckpt} --attacks {FAST}"
    ex = results.read_per_example(out.parent / row.per_example)
    assert torch.equal(ex["index"], torch.arange(48)) and torch.equal(ex["label"], fmnist_test.labels[:48])
    assert row.robust_acc == pytest.approx(100 * ex["adv_correct"].float().mean().item(), abs=1e-3)
    assert row.clean_acc == pytest.approx(100 * ex["clean_correct"].float().mean().item(), abs=1e-3)
    flags = json.loads(row["flags"])
    sound = {"in_neighborhood", "reclassified", "zero_budget", "deterministic", "monotone_budget", "unbounded_pgd"}
    assert sound | {"gradient_masking"} <= set(flags)
    assert all(flags[name]["status"] == "PASS" for name in sound), flags
    assert "worst case per example" in res.output and "R_rob" in res.output


def test_a_row_records_the_training_behind_its_checkpoint(trained_cnn, tmp_path):
    """Tables and plots read training time, |D_L|, |D_U|, seed, preset and trained budget from the row alone."""
    path = tmp_path / "srt.pt"
    meta = {**checkpoint.model_meta("small-cnn", data.DATASETS.get("fashion-mnist")), "label": "SRT", "defense": "srt",
            "threat": {"threat": "pixel", "norm": "linf", "epsilon": 0.05, "rotation": 30.0, "translation": 3.0},
            "data": {"dataset": "fashion-mnist", "n_labeled": 1000, "n_unlabeled": None}, "seed": 3,
            "preset": "fmnist-pixel-cpu", "train_time_s": 12.5}
    checkpoint.save(path, trained_cnn, meta)
    res = run("evaluate", path, "--attacks", "fgsm", "--n", 8, "--no-sanity", "--device", "cpu", "--out",
              tmp_path / "r.csv")
    assert res.exit_code == 0, res.output
    path.unlink()  # the row alone
    row = results.read(tmp_path / "r.csv").iloc[0]
    assert (row.n_labeled, row.n_unlabeled, row.train_seed, row.preset) == (1000, 59000, 3, "fmnist-pixel-cpu")
    assert row.train_time_s == 12.5 and json.loads(row.train_budget) == {"norm": "linf", "epsilon": 0.05}


def test_a_checkpoint_is_attacked_at_the_budget_it_was_trained_against(trained_cnn, tmp_path):
    path = tmp_path / "at.pt"
    meta = {**checkpoint.model_meta("small-cnn", data.DATASETS.get("fashion-mnist")), "label": "AT", "defense": "at",
            "threat": {"threat": "pixel", "norm": "linf", "epsilon": 0.05, "rotation": 30.0, "translation": 3.0}}
    checkpoint.save(path, trained_cnn, meta)
    res = run("evaluate", path, "--attacks", "pgd[steps=5],randadv.t[k=2]", "--n", 16, "--no-sanity",
              "--out", tmp_path / "r.csv")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "r.csv").set_index("attack")
    assert json.loads(df.loc["pgd", "budget"]) == {"epsilon": 0.05}
    assert json.loads(df.loc["pgd", "budget_source"]) == {"epsilon": "checkpoint"}
    assert json.loads(df.loc["pgd", "attack_params"])["step_size"] == 0.0025  # Appendix C's ε/20
    assert json.loads(df.loc["randadv.t", "budget_source"])["translation"] == "dataset"  # a pixel-trained model
    assert "ε 0.05 (checkpoint)" in res.output  # the printed table says where the budget came from


def test_the_shipped_srt_model_keeps_its_robustness_under_the_default_battery(tmp_path):
    """models/fmnist-srt-pixel.pt was trained at ε 0.1; attacked at MNIST's 0.3 every pixel-wise column read ~0."""
    res = run("evaluate", "models/fmnist-srt-pixel.pt", "--attacks", "fgsm,pgd[steps=10,step_size=0.02],"
              "cw[steps=10,step_size=0.02]", "--n", 100, "--no-sanity", "--out", tmp_path / "r.csv")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "r.csv").set_index("attack")
    for attack in ("fgsm", "pgd", "cw"):
        assert json.loads(df.loc[attack, "budget"]) == {"epsilon": 0.1}
        assert json.loads(df.loc[attack, "budget_source"]) == {"epsilon": "checkpoint"}
        assert df.loc[attack, "robust_acc"] > 50, df.loc[attack, "robust_acc"]


def test_results_do_not_depend_on_the_batch_size(ckpt, tmp_path):
    """Random starts and draws are per example: batch 8 and batch 64 give the same outcome for every example."""
    outcomes = {}
    for batch in (8, 64):
        out = tmp_path / f"b{batch}.csv"
        res = run("evaluate", ckpt, "--attacks", "pgd[epsilon=0.1,steps=3,step_size=0.01],randadv[k=3]", "--n", 64,
                  "--batch-size", batch, "--no-sanity", "--out", out)
        assert res.exit_code == 0, res.output
        df = pd.read_csv(out).set_index("attack")
        outcomes[batch] = {a: results.read_per_example(tmp_path / df.loc[a, "per_example"])["adv_pred"]
                           for a in ("pgd", "randadv")}
    for attack in ("pgd", "randadv"):
        assert torch.equal(outcomes[8][attack], outcomes[64][attack]), attack


def test_draws_of_an_example_follow_it_into_any_batch():
    from srtbench.neighborhoods import ExampleRNG, PixelBall, rand

    x = torch.zeros(6, 1, 4, 4)
    whole = PixelBall(0.1, "linf").sample(x, ExampleRNG(0, range(6)))
    halves = [PixelBall(0.1, "linf").sample(x[:3], ExampleRNG(0, range(3))),
              PixelBall(0.1, "linf").sample(x[3:], ExampleRNG(0, range(3, 6)))]
    assert torch.equal(whole, torch.cat(halves)) and not torch.equal(whole[0], whole[1])
    rng = ExampleRNG(0, range(6))
    assert torch.equal(rand((2, 3), rng[torch.tensor([4, 5])]), rand((2, 3), ExampleRNG(0, range(4, 6))))


def test_library_attacks_that_draw_per_batch_record_the_batch_size(ckpt, tmp_path):
    out = tmp_path / "r.csv"
    for batch in (8, 16):
        res = run("evaluate", ckpt, "--attacks", "autoattack[epsilon=0.05,steps=2,n_queries=5]", "--n", 16,
                  "--batch-size", batch, "--no-sanity", "--out", out)
        assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert sorted(json.loads(p)["batch_size"] for p in df.attack_params) == [8, 16]  # two rows, not one reused


def test_attacks_are_ordered_only_at_one_budget(ckpt, tmp_path):
    """PGD at ε 0.02 leaves more than FGSM at ε 0.3: no order flag compares them; at one ε it does."""
    res = run("evaluate", ckpt, "--attacks", "pgd[epsilon=0.02,steps=2],fgsm[epsilon=0.3],fgsm[epsilon=0.02]",
              "--n", 16, "--no-sanity", "--out", tmp_path / "r.csv")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "r.csv")
    flags = {(r.attack, json.loads(r.budget)["epsilon"]): json.loads(r.flags) for r in df.itertuples()}
    assert "order_pgd_vs_fgsm" in flags[("pgd", 0.02)] and "order_pgd_vs_fgsm" in flags[("fgsm", 0.02)]
    assert "order_pgd_vs_fgsm" not in flags[("fgsm", 0.3)]
    acc = {(r.attack, json.loads(r.budget)["epsilon"]): r.robust_acc for r in df.itertuples()}
    # the flag compares PGD with FGSM at PGD's own ε (its detail names both numbers), whichever of the two is lower
    flag = flags[("pgd", 0.02)]["order_pgd_vs_fgsm"]
    assert flag["detail"].startswith(f"pgd {acc[('pgd', 0.02)]:.2f}% vs fgsm {acc[('fgsm', 0.02)]:.2f}%")
    assert (flag["status"] == "PASS") == (acc[("pgd", 0.02)] <= acc[("fgsm", 0.02)] + 100 / 16)


def test_rerun_adds_no_rows_and_force_recomputes(ckpt, tmp_path):
    out = tmp_path / "r.csv"
    assert evaluate_cli(ckpt, out, "--no-sanity").exit_code == 0
    first = pd.read_csv(out)
    assert evaluate_cli(ckpt, out, "--no-sanity").exit_code == 0
    again = pd.read_csv(out)
    assert len(again) == len(first) and list(again.timestamp) == list(first.timestamp)
    assert list(again.wall_time_s) == list(first.wall_time_s)
    res = evaluate_cli(ckpt, out, "--attacks", "fgsm[epsilon=0.1]", "--fractions", "1.0", "--force", "--no-sanity")
    assert res.exit_code == 0, res.output
    forced = pd.read_csv(out)
    assert len(forced) == len(first)
    assert set(forced.robust_acc) == set(first.robust_acc)  # same numbers: attacks are seeded
    assert (first.iloc[-1].attack, forced.iloc[-1].attack, forced.iloc[-1].fraction) == ("gridadv.t", "fgsm", 1.0)


def test_a_model_retrained_in_place_is_evaluated_anew_and_its_earlier_rows_are_kept_and_named(trained_cnn, tmp_path):
    path, out = tmp_path / "run.pt", tmp_path / "r.csv"
    meta = {**checkpoint.model_meta("small-cnn", data.DATASETS.get("fashion-mnist")), "label": "Run"}
    checkpoint.save(path, trained_cnn, meta)
    first_sha = evaluate.sha256(path)
    args = ("evaluate", path, "--attacks", "fgsm[epsilon=0.1]", "--n", 16, "--no-sanity", "--out", out)
    first = run(*args)
    assert first.exit_code == 0 and "earlier" not in first.output
    checkpoint.save(path, trained_cnn, {**meta, "train_time_s": 1.0})  # the same path, another file
    again = run(*args)
    assert again.exit_code == 0, again.output
    df = pd.read_csv(out)
    assert sorted(df.checkpoint_sha256) == sorted([first_sha, evaluate.sha256(path)])  # evaluated anew, nothing lost
    assert f"holds 1 rows of an earlier {path} (sha256 {first_sha[:12]}" in again.output
    third = run(*args)  # nothing left to attack, and the earlier rows are still there to name
    assert len(pd.read_csv(out)) == 2 and f"sha256 {first_sha[:12]}" in third.output
    from srtbench.recipes.jobs import EvaluateJob  # a recipe's evaluation step says so too

    said = []
    EvaluateJob((str(path),), evaluate.EvalConfig(attacks="fgsm[epsilon=0.1]", n=16, sanity=False, out=str(out),
                                                  device="cpu")).execute(said.append)
    assert any(f"earlier {path} (sha256 {first_sha[:12]}" in line for line in said)


def test_an_interrupted_evaluation_resumes_from_its_side_files_and_writes_the_csv_once(ckpt, tmp_path, monkeypatch):
    out = tmp_path / "r.csv"
    calls = {"n": 0, "append": 0}
    real, real_append = evaluate.run_attack, results.append

    def dies_on_second_attack(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the first attack has written its side file
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("srtbench.evaluate.one_checkpoint.run_attack", dies_on_second_attack)
    res = run("evaluate", ckpt, "--attacks", FAST, "--n", 16, "--device", "cpu", "--out", out, "--no-sanity")
    assert res.exit_code == 130
    assert not out.exists()  # no row without its cross-row flags
    assert len(list(tmp_path.rglob("*fgsm*.pt"))) == 1 and not [p for p in tmp_path.rglob(".*tmp")]

    def counted(*args, **kwargs):
        calls["append"] += 1
        return real_append(*args, **kwargs)

    monkeypatch.setattr(results, "append", counted)
    res = run("evaluate", ckpt, "--attacks", FAST, "--n", 16, "--device", "cpu", "--out", out, "--no-sanity")
    assert res.exit_code == 0, res.output
    assert calls["n"] == 3 and calls["append"] == 1  # fgsm came from its side file; one write for both rows
    df = results.read(out)
    assert list(df.attack) == ["fgsm", "gridadv.t"] and df.robust_acc.notna().all()


def _examples(clean, adv, label):
    n = len(label)
    return outcomes.Examples(torch.arange(n), torch.tensor(label), torch.tensor(clean), torch.tensor(adv),
                             torch.full((n,), math.nan))


def test_worst_case_is_taken_per_example_not_as_min_of_means():
    label = [0, 0, 0, 0]
    a = _examples([0, 0, 0, 1], [1, 0, 0, 1], label)  # breaks example 0
    b = _examples([0, 0, 0, 1], [0, 1, 0, 1], label)  # breaks example 1
    worst = outcomes.worst_case([a, b])
    assert outcomes.accuracy(a.adv_correct) == outcomes.accuracy(b.adv_correct) == 50.0
    assert outcomes.accuracy(worst.adv_correct) == 25.0  # only example 2 survives both


def test_risks_of_definition_2_satisfy_lemma_1():
    # example 3 is misclassified; the attack moves it away from its prediction, even onto the label
    ex = _examples([0, 1, 2, 5], [0, 7, 2, 3], [0, 1, 2, 3])
    r = outcomes.risks(ex)
    assert r == {"R_stand": 25.0, "R_rob": 50.0, "R_adv": 50.0}
    stand, rob = ~ex.clean_correct, ex.broken
    assert torch.equal(~ex.adv_correct, stand | (~stand & rob))  # Eq. (5) per example


def test_checkpoint_without_training_meta_uses_the_file_stem(trained_cnn, tmp_path):
    path = tmp_path / "foreign-run.pt"
    checkpoint.save(path, trained_cnn, checkpoint.model_meta("small-cnn", data.DATASETS.get("fashion-mnist")))
    target = evaluate.load_target(str(path), evaluate.EvalConfig())
    assert (target.label, target.defense, target.train_threat) == ("foreign-run", "unknown", "unknown")


def test_foreign_model_from_module_function_and_state_dict(trained_cnn, tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(textwrap.dedent("""
        from srtbench.models import create_model
        def build():
            return create_model("small-cnn", (1, 28, 28), 10)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mynets", None)
    torch.save(trained_cnn.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "r.csv"
    res = run("evaluate", tmp_path / "w.pt", "--model", "mynets:build", "--dataset", "fashion-mnist",
              "--attacks", "fgsm", "--n", 16, "--device", "cpu", "--out", out, "--no-sanity")
    assert res.exit_code == 0, res.output
    row = pd.read_csv(out).iloc[0]
    assert row.label == "w" and row.defense == "unknown" and row.model == "mynets:build"


@pytest.mark.parametrize("args, message", [
    (("--attacks", "nope"), "error: unknown attack 'nope'"),
    (("--attacks", "pgd[epsilon=-1]"), "error: pgd[epsilon=-1] must be >= 0"),
    (("--attacks", "pgd[epsilon=3]"), "error: epsilon must be in [0, 1]"),
    (("--fractions", "0.5,2"), "error: --fractions must lie in [0, 1]"),
    (("--dataset", "cifar10"), "checkpoint is for fashion-mnist, not cifar10"),
    (("--n", "0"), "error: --n must be >= 1"),
    (("--model", "nocolon"), "error: --model must be module:function"),
])
def test_bad_input_is_one_line_exit_2(ckpt, tmp_path, args, message):
    res = run("evaluate", ckpt, "--out", tmp_path / "r.csv", "--device", "cpu", *args)
    assert res.exit_code == 2 and res.output.count("\n") == 1 and message in res.output, res.output


def test_missing_checkpoint_is_one_line_exit_2(tmp_path):
    res = run("evaluate", tmp_path / "absent.pt", "--out", tmp_path / "r.csv")
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "no such checkpoint" in res.output


def test_attacks_command_lists_every_attack_with_its_defaults():
    res = run("attacks")
    assert res.exit_code == 0
    for name in ATTACKS.names():
        assert f"\n{name}  [" in "\n" + res.output
    assert "pgd[epsilon=0.3,steps=40,step_size=0.01,start=uniform]" in res.output
    assert "pgd[epsilon=0.031,steps=10,step_size=0.007,start=uniform]" in res.output
    fmnist = run("attacks", "--dataset", "fashion-mnist").output
    assert "fashion-mnist pgd[epsilon=0.1,steps=40,step_size=0.005,start=uniform]" in fmnist
    assert "fgsm[epsilon=0.1]" in fmnist and "\n    mnist " not in fmnist and "cifar10 " not in fmnist
    assert run("attacks", "--dataset", "svhn").exit_code == 2


@pytest.mark.slow
def test_torchrun_with_two_gloo_ranks_writes_the_same_rows_as_one_process(ckpt, tmp_path):
    import os
    import subprocess

    args = ["-m", "srtbench", "evaluate", str(ckpt), "--attacks", "pgd[epsilon=0.1,steps=5,step_size=0.03],randadv",
            "--n", "40", "--batch-size", "8", "--device", "cpu", "--no-sanity", "--out"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *args, str(tmp_path / "one.csv")], capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr[-2000:]
    # `--` keeps torchrun's own parser away from `--n` (an ambiguous prefix of its --nnodes, --nproc-per-node)
    ranks = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "srtbench", "--", *args[2:]]
    two = subprocess.run([*ranks, str(tmp_path / "two.csv")], capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = pd.read_csv(tmp_path / "one.csv"), pd.read_csv(tmp_path / "two.csv")
    cols = ["attack", "fraction", "clean_acc", "robust_acc", "attack_params", "n", "seed", "checkpoint_sha256"]
    assert a[cols].equals(b[cols])
    for pa, pb in zip(a.per_example, b.per_example):
        ea, eb = results.read_per_example(tmp_path / pa), results.read_per_example(tmp_path / pb)
        assert all(torch.equal(ea[k], eb[k]) for k in ("adv_pred", "clean_pred", "index"))


def _append_rows(path: str, worker: int, count: int, barrier) -> None:
    barrier.wait()
    for i in range(count):
        results.append(path, [{"checkpoint": f"w{worker}", "attack": f"a{i}", "fraction": 1.0, "n": 1, "seed": 0,
                               "label": "L", "dataset": "fashion-mnist", "clean_acc": 50.0, "robust_acc": 25.0}])


def test_appends_from_processes_side_by_side_lose_no_rows(tmp_path):
    """Two evaluations writing one checkpoint's CSV at once (recipes run side by side) keep every row."""
    import multiprocessing

    path = str(tmp_path / "shared.csv")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [ctx.Process(target=_append_rows, args=(path, w, 40, barrier)) for w in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    frame = results.read(path)
    assert len(frame) == 80 and set(frame["checkpoint"]) == {"w0", "w1"}
