"""`srtbench sweep FILE.toml`: defenses × threats × grid × seeds as recipe steps, run on an embedded Ray."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from srtbench import recipes, results, sweep
from srtbench.cli import main
from srtbench.errors import SrtbenchError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "sweeps"


def trains(steps):
    return [s.job for s in steps if s.kind == "train"]


def test_the_tiny_example_trains_each_defense_once_per_seed_then_draws_one_table():
    steps = sweep.plan(sweep.load(EXAMPLES / "tiny.toml"))
    assert [(j.defense, j.option("seed", 0)) for j in trains(steps)] == [
        ("standard", 0), ("at", 0), ("standard", 1), ("at", 1)]
    assert [j.out for j in trains(steps)][:2] == ["runs/sweeps/tiny/standard.pt", "runs/sweeps/tiny/at.pt"]
    assert all(j.option("iterations") == 8 and j.option("n_labeled") == 1000 for j in trains(steps))
    table = steps[-1]
    assert table.kind == "table" and set(table.job.csvs) == {s.output for s in steps if s.kind == "evaluate"}


def test_a_grid_value_multiplies_only_the_defenses_that_read_it():
    steps = sweep.plan(sweep.load(EXAMPLES / "lambda.toml"), seeds=(0,))
    jobs = trains(steps)
    assert [(j.defense, j.option("lam")) for j in jobs] == [
        ("at", None), ("trades", None), ("srt", 0.25), ("srt", 0.5), ("srt", 1.0), ("srt", 2.0)]
    assert len({j.out for j in jobs}) == len(jobs) and all(j.option("label") is None for j in jobs)  # λ names rows
    assert len(sweep.plan(sweep.load(EXAMPLES / "lambda.toml"))) == 3 * 2 * len(jobs) + 1  # three seeds


def test_runs_that_differ_beyond_lambda_get_labels_that_say_how(tmp_path):
    spec = tmp_path / "steps.toml"
    spec.write_text('name = "k"\npreset = "fmnist-pixel-cpu"\ndefenses = ["at"]\n[grid]\nsteps = [3, 5]\n'
                    '[evaluate]\nattacks = "fgsm"\n')
    labels = [j.option("label") for j in trains(sweep.plan(sweep.load(spec)))]
    assert labels == ["AT [steps 3]", "AT [steps 5]"]


def test_threats_cross_the_defenses_that_train_against_them(tmp_path, capsys):
    spec = tmp_path / "threats.toml"
    spec.write_text('name = "t"\ndefenses = ["at", "worst-of-k"]\nthreats = ["pixel", "spatial"]\n'
                    '[evaluate]\nattacks = ["pgd", "gridadv"]\n')
    jobs = trains(sweep.plan(sweep.load(spec)))
    assert [(j.defense, j.option("threat"), Path(j.out).stem) for j in jobs] == [
        ("at", "pixel", "at-pixel"), ("worst-of-k", "spatial", "worst-of-k-spatial")]
    assert [j.option("label") for j in jobs] == ["AT [pixel]", "Worst-of-k [spatial]"]
    assert "skipped what the defenses do not train: at against spatial, worst-of-k against pixel" in \
        capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ('defenses = ["at"]\nbogus = 1\n[evaluate]\nattacks = "fgsm"\n', "unknown keys bogus"),
    ('defenses = ["nope"]\n[evaluate]\nattacks = "fgsm"\n', "unknown defense 'nope'"),
    ('defenses = ["at"]\n[train]\nlearning_rat = 0.1\n[evaluate]\nattacks = "fgsm"\n', "no option learning_rat"),
    ('defenses = ["at"]\n', "needs attacks"),
    ('defenses = ["at"\n', "not valid TOML"),
])
def test_a_bad_sweep_file_is_a_one_line_error(tmp_path, text, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    out = CliRunner().invoke(main, ["sweep", str(spec), "--dry-run"])
    assert out.exit_code == 2 and out.output.count("\n") == 1 and message in out.output, out.output



@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # on the worker that runs test_scheduler's Ray, never at once
def test_the_tiny_sweep_runs_on_ray_gives_the_sequential_numbers_and_shows_mean_and_std(embedded_ray, tmp_path,
                                                                                           monkeypatch):
    """Ray's workers and one step after another in this process (one thread, as each Ray step has) write the same
    numbers; the Ray run's table shows each defense's two seeds as one row."""
    (tmp_path / "one-by-one").mkdir()
    monkeypatch.chdir(tmp_path / "one-by-one")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipes.run(sweep.plan(sweep.load(EXAMPLES / "tiny.toml")), echo=lambda s: None,
                    invoke=lambda step: step.execute(lambda s: None) or 0)
    finally:
        torch.set_num_threads(threads)
    (tmp_path / "ray").mkdir()
    monkeypatch.chdir(tmp_path / "ray")
    shutil.copy(EXAMPLES / "tiny.toml", "tiny.toml")
    out = CliRunner().invoke(main, ["sweep", "tiny.toml", "--jobs", "2"])
    assert out.exit_code == 0, out.output
    sequential, parallel = _numbers(tmp_path / "one-by-one"), _numbers(tmp_path / "ray")
    assert len(sequential) == 8 and parallel == sequential
    log = Path("runs/sweeps/tiny/standard-s1.log").read_text()
    assert "--seed 1" in log.splitlines()[0] and "standard pixel | 8/8 (100%) | done in" in log  # plain progress
    rows = {ln.split(" | ")[0].strip("| "): ln for ln in out.output.splitlines() if ln.startswith("| AT")
            or ln.startswith("| Standard")}
    assert set(rows) == {"AT", "Standard"}  # one row per defense: its two seeds together
    assert len(re.findall(r"\d+\.\d\d ± \d+\.\d\d", rows["AT"])) >= 3  # clean, FGSM, PGD (and worst case)
    per_seed = CliRunner().invoke(main, ["table", "results/sweeps/tiny", "--per-seed"])
    assert per_seed.exit_code == 0 and "±" not in per_seed.output
    assert len([ln for ln in per_seed.output.splitlines() if ln.startswith("| AT")]) == 2
    again = CliRunner().invoke(main, ["sweep", "tiny.toml"])  # one after another: everything is done already
    assert again.exit_code == 0 and again.output.count("done already") == 8, again.output


def _numbers(folder: Path) -> dict:
    frame = results.collect([folder / "results" / "sweeps" / "tiny"])
    return {(Path(str(c)).name, a): (float(cl), float(r))
            for c, a, cl, r in zip(frame["checkpoint"], frame["attack"], frame["clean_acc"], frame["robust_acc"])}


def test_seeds_on_the_command_line_replace_the_files():
    steps = sweep.plan(sweep.load(EXAMPLES / "tiny.toml"), recipes.parse_seeds("3"))
    assert {j.option("seed") for j in trains(steps)} == {3}
    with pytest.raises(SrtbenchError, match="--seeds"):
        recipes.parse_seeds("-1")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_sweep_plans_a_train_and_evaluate_per_run_and_one_table(path):
    steps = sweep.plan(sweep.load(path))
    kinds = [s.kind for s in steps]
    assert kinds.count("train") == kinds.count("evaluate") >= 2 and kinds[-1] == "table"
    assert len({s.output for s in steps if s.kind == "train"}) == kinds.count("train")
