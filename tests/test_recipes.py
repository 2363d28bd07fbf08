import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from srtbench import attacks, recipes, results, tables
from srtbench.attacks import split_specs
from srtbench.cli import main

DEFENSES = {"standard", "at", "trades", "uat", "rst", "rt", "srt", "fast-srt", "worst-of-k", "klr", "at-avg", "at-max"}
ATTACKS = set(attacks.ATTACKS.names())
PRESETS = {"fmnist-pixel-cpu", "fmnist-spatial-cpu", "fmnist-compound-cpu", "mnist-pixel-table6", "mnist-pixel-table4",
           "mnist-spatial-table5", "cifar10-pixel-table2", "cifar10-pixel-table4", "cifar10-spatial-table1",
           "cifar10-spatial-table3", "cifar10-fast-table8", "cifar10-fast-table9"}
ALL = [(name, scale) for name in recipes.RECIPES.names() for scale in recipes.SCALES]


def run(*args):
    return CliRunner().invoke(main, list(args))


def option(argv, flag):
    return argv[argv.index(flag) + 1] if flag in argv else None


def trains(steps):
    """The training jobs of a plan (defense, preset, out and options by field name)."""
    return [s.job for s in steps if s.kind == "train"]


def evaluations(steps):
    return [s for s in steps if s.kind == "evaluate"]


def test_every_paper_experiment_has_a_recipe():
    wanted = {f"table{i}" for i in (1, 2, 3, 4, 5, 6, 8, 9)} | {f"figure{i}" for i in (1, 2, 3, 7, 9)} | {"quick"}
    assert set(recipes.RECIPES.names()) == wanted


@pytest.mark.parametrize("name, scale", ALL)
def test_recipe_trains_before_it_evaluates_and_ends_with_its_table_or_plot(name, scale):
    steps = recipes.plan(name, scale)
    trained = set()
    for step in steps[:-1]:
        if step.kind == "plot":  # a figure of checkpoints (decision surfaces, held-out curves) once they are trained
            assert (name.startswith("figure") or step.job.kind_of_plot == "convergence") and all(
                p in trained for p in step.inputs if p.endswith(".pt"))
            continue
        assert step.kind in ("train", "evaluate")
        if step.kind == "train":
            assert step.job.defense in DEFENSES and step.job.preset in PRESETS
            assert step.output == step.job.out == option(step.argv, "--out") and step.output.endswith(".pt")
            trained.add(step.output)
        else:
            (checkpoint,) = step.job.checkpoints
            assert checkpoint in trained or checkpoint in recipes.QUICK_REFERENCE, \
                f"{step.command}: evaluates a checkpoint no earlier step trains"
            assert {spec.split("[")[0] for spec in split_specs(step.job.config.attacks)} <= ATTACKS
            assert step.output == step.job.config.out and not step.output.startswith("results/paper/")  # the
            # paper's published numbers live there
    last = steps[-1]
    if name.startswith("table"):
        folder = "results/fmnist" if scale == "cpu" or name == "quick" else "results/paper-scale"
        if name == "quick":
            folder += "/quick"
        # the cpu scale's default protocol is equal steps, whose tables go to EXPERIMENT-steps/
        suffix = "-steps" if scale == "cpu" and name != "quick" else ""
        evaluated = [s.output for s in evaluations(steps)]
        assert last.kind == "table" and list(last.job.csvs) == list(dict.fromkeys(evaluated))
        assert all(Path(csv).parent == Path(folder) for csv in evaluated)
        assert last.job.out == f"{folder}/{name}{suffix}/{name}.md" or name == "quick"
        assert last.job.layout == name and tables.LAYOUTS.get(name)
        assert last.job.compare == "paper"
    else:
        assert last.kind in ("plot", "table")


@pytest.mark.parametrize("scale", recipes.SCALES)
def test_table3_lists_the_papers_defenses_and_spatial_attacks(scale):
    steps = recipes.plan("table3", scale)
    jobs = trains(steps)
    datasets = 1 if scale == "cpu" else 2  # the CPU scale maps CIFAR-10 and MNIST to one Fashion-MNIST group
    assert sorted(j.defense for j in jobs) == sorted(["standard", "at", "worst-of-k", "klr", "srt"] * datasets)
    assert all(j.option("lam") == 0.2 for j in jobs if j.defense == "srt")
    assert {tuple(spec.split("[")[0] for spec in split_specs(s.job.config.attacks)) for s in evaluations(steps)} == {
        ("randadv", "gridadv", "randadv.t", "gridadv.t", "randadv.r", "gridadv.r")}  # settings: the test below
    # AT is the pixel-wise defense: its preset is the pixel one, while the rest use the spatial one
    at = next(j for j in jobs if j.defense == "at")
    assert "pixel" in at.preset
    if scale == "cpu":  # equal steps: every run 4,800, its file and row naming the count
        expected = ("srtbench train srt --preset fmnist-spatial-cpu --lambda 0.2 --label 'SRT (λ = 0.2, 4,800 steps)'"
                    " --check-every 1 --no-amp --iterations 4800 --out runs/fmnist-spatial-cpu-steps/"
                    "srt-lam0.2-steps4800.pt")
        assert expected in [s.command for s in steps]
        expected = ("srtbench train srt --preset fmnist-spatial-cpu --lambda 0.2 --iterations 2400 --check-every 1"
                    " --no-amp --out runs/fmnist-spatial-cpu/srt-lam0.2.pt")  # equal epochs: the committed run's
        assert expected in [s.command for s in recipes.plan("table3", scale, protocol="epochs")]


@pytest.mark.parametrize("protocol", ["epochs", "steps"])
def test_every_run_is_checked_on_held_out_images_about_as_often_in_sgd_steps(protocol):
    """`--check-every` counts epochs, and a semi-supervised epoch covers D_L ∪ D_U: its runs check every epoch
    (469 steps at the cpu scale), the supervised every 5 (5 × 79 = 395), never one check in 2,400 steps."""
    from srtbench.defenses import DEFENSES as REGISTERED
    from srtbench.presets import PRESETS

    for job in trains(recipes.plan("table4", "cpu", protocol=protocol)):
        data = PRESETS.get(job.preset).data
        unlabeled = data.get("n_unlabeled") or 0 if REGISTERED.get(job.defense).uses_unlabeled else 0
        per_epoch = (data["n_labeled"] + unlabeled) / job.option("batch_size", 128)  # RT on SRT's labeled share
        every = job.option("check_every") * per_epoch
        assert 350 <= every <= 500, (job.defense, job.option("check_every"), every)
    # a run with fewer unlabeled images than its preset's has shorter epochs, so it checks every more of them
    from srtbench.recipes.planning import check_cadence

    assert dict(check_cadence((("check_every", 5),), "srt", "fmnist-pixel-cpu", 10_000))["check_every"] == 2
    assert dict(check_cadence((("check_every", 5),), "srt", "fmnist-pixel-cpu"))["check_every"] == 1
    # smaller batches, longer epochs: RT on 21 images a step checks every epoch (476 steps)
    assert dict(check_cadence((("check_every", 5),), "rt", "fmnist-pixel-cpu", batch_size=21))["check_every"] == 1
    assert dict(check_cadence((("check_every", 5),), "rt", "fmnist-pixel-cpu"))["check_every"] == 5


def test_table4_attacks_slow_minimum_norm_attacks_on_fewer_images():
    by_attacks = {s.job.config.attacks: str(s.job.config.n) for s in evaluations(
        recipes.plan("table4", "cpu", "epochs"))}
    # the cpu scale attacks at its presets' training budget, ε 0.1 (Table 6 / Appendix C), not Table 4's 0.3
    pgd = "epsilon=0.1,steps=40,step_size=0.005"
    # the ℓ∞ C&W costs a PGD (all images); the ℓ2 minimum-norm one is slow (after DDN, for its median ℓ2 distance)
    assert by_attacks == {f"fgsm[epsilon=0.1],pgd[{pgd}],mifgsm[{pgd}],cw[{pgd}]": "1000",
                          "jsma,pointwise,ddn,cw-l2": "250", "autoattack[epsilon=0.1]": "250"}
    # the equal-steps protocol, whose verdicts rest on AutoAttack, runs it on more images, and adds RT beside SRT
    steps = recipes.plan("table4", "cpu", protocol="steps")
    assert {s.job.config.attacks: str(s.job.config.n) for s in evaluations(steps)}["autoattack[epsilon=0.1]"] == "500"
    assert {j.defense for j in trains(steps)} == {"standard", "at", "trades", "uat", "rst", "rt", "srt"}
    paper = trains(recipes.plan("table4", "paper"))
    assert {j.preset for j in paper} == {"cifar10-pixel-table4", "mnist-pixel-table4"}
    assert [j.option("lam") for j in paper if j.defense == "srt"] == [1.0, 1.0]


@pytest.mark.parametrize("name, lams", [("table1", ["0.15", "0.2", "0.25", "0.3"]),
                                        ("table6", ["0.2", "0.4", "0.6", "0.8"])])
def test_lambda_tables_train_rt_and_srt_at_each_lambda(name, lams):
    jobs = trains(recipes.plan(name, "paper"))
    for defense in ("rt", "srt"):
        assert [j.option("lam") for j in jobs if j.defense == defense] == [float(lam) for lam in lams]
    assert {j.preset for j in jobs} == {"table1": {"cifar10-spatial-table1"}, "table6": {"mnist-pixel-table6"}}[name]


def test_figure2_sweeps_the_unlabeled_count_with_all_labeled_references():
    jobs = trains(recipes.plan("figure2", "cpu", protocol="epochs"))
    # the presets' own 50,000 is the tables' run (no --n-unlabeled): one run serves both
    srt = [j.option("n_unlabeled", 50_000) for j in jobs if j.defense == "srt"]
    assert srt == [0, 10_000, 20_000, 50_000] * 2  # pixel-wise, then spatial
    assert "runs/fmnist-pixel-cpu/srt-lam1.pt" in [j.out for j in jobs]
    refs = [j for j in jobs if j.defense != "srt"]
    # the references have labels for all 10,000 + 50,000 images the largest SRT run sees
    assert [j.defense for j in refs] == ["at", "worst-of-k"] and all(j.option("n_labeled") == 60_000 for j in refs)
    paper = [j for j in trains(recipes.plan("figure2", "paper")) if j.defense != "srt"]
    assert [j.option("n_labeled") for j in paper] == [50_000, 50_000, 60_000, 60_000]
    last = recipes.plan("figure2", "cpu")[-1]
    assert (last.kind, last.job.kind_of_plot) == ("plot", "unlabeled")


def test_figures_1_and_7_attack_over_budget_fractions():
    for name in ("figure1", "figure7"):
        steps = recipes.plan(name, "cpu")
        assert {s.job.config.fractions for s in evaluations(steps)} == {(0.2, 0.4, 0.6, 0.8, 1.0)}
        assert {option(s.argv, "--fractions") for s in evaluations(steps)} == {"0.2,0.4,0.6,0.8,1"}
        assert (steps[-1].kind, steps[-1].job.kind_of_plot) == ("plot", "budget")
    compound = trains(recipes.plan("figure7", "cpu"))
    assert [j.defense for j in compound] == ["at", "srt", "at-avg", "at-max"]
    assert all(j.option("threat") == "compound" and j.preset == "fmnist-compound-cpu" for j in compound)


def test_rst_is_taught_by_the_standard_model_of_its_setting():
    steps = recipes.plan("table4", "paper")
    for s in (s for s in steps if s.kind == "train" and s.job.defense == "rst"):
        teacher = s.job.option("teacher")
        assert teacher == f"runs/{s.job.preset}/standard.pt" and s.inputs == (teacher,)
        assert [t.output for t in steps].index(teacher) < steps.index(s)


def test_figure9_sweeps_lr_max_and_training_length():
    jobs = trains(recipes.plan("figure9", "paper"))
    assert all(j.defense == "fast-srt" for j in jobs) and len(jobs) == 2 * 3 + 2 * 5
    spatial = [j for j in jobs if j.preset == "cifar10-fast-table8"]
    assert {(j.option("lr_max"), j.option("iterations")) for j in spatial} == {
        (lr, it) for lr in (0.1, 0.2) for it in (15_000, 30_000, 45_000)}
    assert len({j.option("label") for j in jobs}) == len(jobs)  # one table row per run


def test_quick_is_the_cpu_demo_at_any_scale():
    steps = recipes.plan("quick", "paper")
    assert [j.defense for j in trains(steps)] == ["standard"]
    assert all(j.preset == "fmnist-pixel-cpu" and j.option("iterations") == 400 for j in trains(steps))
    evaluated = [c for s in evaluations(steps) for c in s.job.checkpoints]
    assert evaluated == ["runs/fmnist-pixel-cpu/standard.pt", *recipes.QUICK_REFERENCE]
    assert {s.job.config.n for s in evaluations(steps)} == {500}


def fake_invoke(calls):
    """Stands in for running a step: writes what the real command would (a file; the CSV rows)."""
    def invoke(step):
        calls.append(step.command)
        if step.kind == "train":
            from pathlib import Path

            Path(step.output).parent.mkdir(parents=True, exist_ok=True)
            Path(step.output).write_bytes(b"checkpoint")
        elif step.kind == "evaluate":
            from srtbench.evaluate import sha256

            results.append(step.output, [{"checkpoint": c, "checkpoint_sha256": sha256(c), "attack": a, "fraction": f,
                                          "label": "x",
                                          "dataset": "fashion-mnist", "clean_acc": 1.0, "robust_acc": 1.0}
                                         for c, a, f in step.rows])
        return 0
    return invoke


def test_reproduce_resumes_by_skipping_finished_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps = recipes.plan("table4", "cpu")  # the default protocol, as the command below
    calls = []
    assert recipes.run(steps, echo=lambda s: None, invoke=fake_invoke(calls)) == len(steps)
    again = []
    assert recipes.run(steps, echo=lambda s: None, invoke=fake_invoke(again)) == 2
    assert again == [s.command for s in steps if s.kind in ("plot", "table")]  # only figures and table redrawn
    # an evaluate CSV lacking some of its rows (an interrupted run) is not finished
    partial = next(s for s in steps if s.kind == "evaluate")
    frame = results.read(partial.output)
    frame[frame["attack"] != "pgd"].drop(columns=["source"]).to_csv(partial.output, index=False)
    assert not partial.done()
    out = run("reproduce", "table4", "--dry-run")
    lines = out.output.splitlines()
    assert out.exit_code == 0 and len(lines) == len(steps)
    assert sum(not ln.startswith("# done: ") for ln in lines) == 3  # the partial evaluate, the figure, the table
    assert f"{partial.command}" in lines


def test_a_clone_with_the_results_but_not_the_checkpoints_trains_only_what_a_step_still_to_run_reads(
        tmp_path, monkeypatch):
    """runs/ is not committed: a training whose evaluations are in their CSVs and whose held-out checks the
    convergence figure kept is not run again; one with an evaluation still to do is, and so is a training whose
    checks no figure kept."""
    import shutil

    import pandas as pd

    monkeypatch.chdir(tmp_path)
    steps = recipes.plan("table4", "cpu")  # equal steps: a convergence figure of every training
    recipes.run(steps, echo=lambda s: None, invoke=fake_invoke([]))
    trainings = [s for s in steps if s.kind == "train"]
    figure = next(s for s in steps if s.kind == "plot")
    kept = pd.DataFrame([{"run": Path(t.output).stem, "step": 100, "clean_acc": 80.0, "robust_acc": 70.0}
                         for t in trainings[1:]])  # the figure kept every run's checks but the first's
    Path(figure.job.out).parent.mkdir(parents=True, exist_ok=True)
    kept.to_csv(f"{figure.job.out}.values.csv", index=False)
    shutil.rmtree("runs")
    partial = next(s for s in steps if s.kind == "evaluate" and s.job.checkpoints[0] == trainings[2].output)
    frame = results.read(partial.output)
    frame[frame["attack"] != "pgd"].drop(columns=["source"]).to_csv(partial.output, index=False)
    calls = []
    recipes.run(steps, echo=lambda s: None, invoke=fake_invoke(calls))
    assert [c for c in calls if " train " in f" {c} "] == [trainings[0].command, trainings[2].command]
    assert partial.command in calls
    why = recipes.skipped(steps)
    assert all(why[steps.index(t)] == "done" for t in (trainings[0], trainings[2]))
    out = run("reproduce", "table4", "--dry-run")
    assert sum(ln.startswith("# not needed: srtbench train") for ln in out.output.splitlines()) == len(trainings) - 2


def test_a_training_no_step_reads_still_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    alone = recipes.train_step("at", "runs/alone.pt", "fmnist-pixel-cpu")
    assert recipes.skipped([alone]) == [""]
    calls = []
    recipes.run([alone], echo=lambda s: None, invoke=fake_invoke(calls))
    assert calls == [alone.command]


def test_an_evaluation_of_a_since_retrained_checkpoint_is_not_finished(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps = recipes.plan("table6", "cpu")
    recipes.run(steps, echo=lambda s: None, invoke=fake_invoke([]))
    evaluation = next(s for s in steps if s.kind == "evaluate")
    assert evaluation.done()
    (tmp_path / evaluation.job.checkpoints[0]).write_bytes(b"retrained")  # same name, new weights
    assert not evaluation.done()


def test_an_interrupted_training_run_is_resumed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps = recipes.plan("quick")
    first = steps[0]
    (tmp_path / first.output).parent.mkdir(parents=True)
    for partial in (".resume", ".last.pt"):  # this version's resume state, and an older version's
        resume = tmp_path / first.output.replace(".pt", partial)
        resume.write_bytes(b"partial")
        calls = []
        recipes.run(steps[:1], echo=lambda s: None, invoke=fake_invoke(calls))
        assert calls == [first.command + " --resume"]
        resume.unlink()
        (tmp_path / first.output).unlink(missing_ok=True)  # the fake run wrote the checkpoint


def test_dry_run_prints_runnable_commands_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run("reproduce", "quick", "--dry-run")
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert [shlex.split(ln)[1] for ln in lines] == ["train", "evaluate", "evaluate", "evaluate", "table"]
    assert not list(tmp_path.iterdir())


def test_failed_step_stops_with_one_line_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(recipes.SrtbenchError, match=r"^step 1/\d+ failed with exit code 3: srtbench train"):
        recipes.run(recipes.plan("quick"), echo=lambda s: None, invoke=lambda step: 3)


@pytest.mark.parametrize("args, message", [
    (("table7",), "unknown experiment 'table7'"),
    (("table3", "--scale", "gpu"), "unknown scale 'gpu'"),
    ((), "name an experiment"),
])
def test_bad_inputs_are_one_line_errors(args, message):
    out = run("reproduce", *args, "--dry-run")
    assert out.exit_code == 2 and out.output.count("\n") == 1 and message in out.output, out.output


def test_list_names_every_experiment():
    out = run("reproduce", "--list")
    assert out.exit_code == 0 and [ln.split()[0] for ln in out.output.splitlines()] == recipes.RECIPES.names()


def resolve(argv):
    """The click command an argv names, and its remaining arguments (group subcommands followed)."""
    cmd, args = main, list(argv[1:])
    while isinstance(cmd, click.Group) and args:
        sub = cmd.get_command(click.Context(cmd), args[0])
        if sub is None:
            break
        cmd, args = sub, args[1:]
    return cmd, args


@pytest.mark.parametrize("name, scale", ALL)
def test_every_command_parses_with_the_real_cli(name, scale):
    for step in recipes.plan(name, scale):
        cmd, args = resolve(step.argv)
        assert cmd is not main and not isinstance(cmd, click.Group), f"{step.command}: no such srtbench command"
        # parsing only (no callback): every flag and value of the recipe is one the command accepts
        cmd.make_context(step.argv[1], args)


def test_quick_shares_its_runs_with_table4():
    # the demo keeps equal epochs (its recipe pins them): its standard run is Table 4's at equal epochs
    quick = {j.out for j in trains(recipes.plan("quick"))}
    assert quick <= {j.out for j in trains(recipes.plan("table4", "cpu", protocol="epochs"))}
    assert not quick & {j.out for j in trains(recipes.plan("table4", "cpu"))}  # equal steps: runs of its own
    assert {j.out for j in trains(recipes.plan("quick", protocol="steps"))} <= {
        j.out for j in trains(recipes.plan("table4", "cpu"))}  # a protocol named wins over the recipe's


def test_figure3_draws_surfaces_of_standard_and_srt_models():
    steps = recipes.plan("figure3", "cpu", protocol="epochs")
    surfaces = [s.job for s in steps if s.kind == "plot" and s.job.kind_of_plot == "surface"]
    assert {dict(p.options)["threat"] for p in surfaces} == {"pixel", "spatial"}
    for p in surfaces:
        assert [m.rsplit("/", 1)[1].removesuffix(".pt").split("-")[0] for m in p.inputs] == ["standard", "srt"]
        assert p.out.startswith("results/fmnist/figure3/")


def test_cpu_scale_gives_bare_attacks_its_budget_and_keeps_explicit_settings():
    cpu = recipes.SCALE_PRESETS["cpu"]
    assert cpu.attack("pgd") == "pgd[epsilon=0.1,steps=40,step_size=0.005]"
    assert cpu.attack("pgd[epsilon=0.2]") == "pgd[epsilon=0.2]"
    assert cpu.attack("gridadv") == "gridadv"  # spatial budgets are the paper's (30°, 3 px)


def test_paper_scale_settings_depend_on_the_table_and_a_missing_one_is_an_error():
    paper = recipes.SCALE_PRESETS["paper"]
    assert paper.attack("pgd", "table6", "mnist") == "pgd[epsilon=0.1,steps=40,step_size=0.005]"
    assert paper.attack("pgd", "table4", "mnist") == "pgd[epsilon=0.3,steps=40,step_size=0.01]"
    assert paper.attack("ddn", "table4", "mnist") == "ddn"  # no settings in the paper: the battery's
    for attack, experiment in (("mifgsm", "table6"), ("pgd", "table5")):  # never falls back to a default
        with pytest.raises(recipes.SrtbenchError, match=f"no paper-scale settings for {attack} in {experiment}"):
            paper.attack(attack, experiment, "mnist")


# The paper's attack settings, copied here from its appendices (not read from srtbench), per (experiment, dataset):
# every attack an experiment evaluates there, with every setting its spec must write (nothing else: where the paper
# gives no number the battery's default stays, so the spec leaves it out).
_GRID = dict(rotations=31, translations=5)  # Appendix B: "5 and 31 values equally spaced per direction"
SPATIAL = {  # Appendix B (D: Tables 3, 5, 8 as B-C): "maximum rotational perturbation ... 30°", "at most 3 pixels"
    "randadv": dict(rotation=30, translation=3), "gridadv": dict(rotation=30, translation=3, **_GRID),
    "randadv.t": dict(rotation=0, translation=3), "gridadv.t": dict(rotation=0, translation=3, **_GRID),
    "randadv.r": dict(rotation=30, translation=0), "gridadv.r": dict(rotation=30, translation=0, **_GRID),
}
# Appendix E: "On the CIFAR-10 dataset, we set perturbation size ε = 0.031 for FGSM, PGD and MI-FGSM, the step size
# α = 0.007, and the iteration step is set to 10. On the MNIST dataset, we apply PGD-40 and MI-FGSM-40 with step size
# 0.01 and FGSM under perturbation size 0.3." C&W (ℓ∞, no settings given) at PGD's; JSMA at advertorch's defaults
# ("implemented based on Advertorch"); point-wise, DDN and the ℓ2 C&W: no settings; AutoAttack (not the paper's) at ε.
TABLE4_CIFAR10 = {"fgsm": dict(epsilon=0.031), "pgd": dict(epsilon=0.031, steps=10, step_size=0.007),
                  "mifgsm": dict(epsilon=0.031, steps=10, step_size=0.007),
                  "cw": dict(epsilon=0.031, steps=10, step_size=0.007), "jsma": dict(theta=1, gamma=1),
                  "pointwise": {}, "ddn": {}, "cw-l2": {}, "autoattack": dict(epsilon=0.031)}
TABLE4_MNIST = {"fgsm": dict(epsilon=0.3), "pgd": dict(epsilon=0.3, steps=40, step_size=0.01),
                "mifgsm": dict(epsilon=0.3, steps=40, step_size=0.01),
                "cw": dict(epsilon=0.3, steps=40, step_size=0.01), "jsma": dict(theta=1, gamma=1),
                "pointwise": {}, "ddn": {}, "cw-l2": {}, "autoattack": dict(epsilon=0.3)}
# Appendix F / Figure 1: "The maximum perturbation size is the same as the one used in previous experiments"
COMPOUND_CIFAR10 = dict(epsilon=0.031, steps=10, step_size=0.007, rotation=30, translation=3, **_GRID)
COMPOUND_MNIST = dict(epsilon=0.3, steps=40, step_size=0.01, rotation=30, translation=3, **_GRID)
PAPER_SETTINGS = {
    ("table1", "cifar10"): {"randadv": SPATIAL["randadv"], "gridadv": SPATIAL["gridadv"]},  # Appendix B
    # Appendix B: "PGD-20 with step size 0.003 and FGSM under perturbation size 0.031"
    ("table2", "cifar10"): {"fgsm": dict(epsilon=0.031), "pgd": dict(epsilon=0.031, steps=20, step_size=0.003)},
    ("table3", "cifar10"): SPATIAL, ("table3", "mnist"): SPATIAL,  # Appendix D
    ("table4", "cifar10"): TABLE4_CIFAR10, ("table4", "mnist"): TABLE4_MNIST,  # Appendix E
    ("table5", "mnist"): {"randadv": SPATIAL["randadv"], "gridadv": SPATIAL["gridadv"]},  # Appendix C: as B
    # Appendix C: "PGD-40 with step size 0.005 and FGSM under perturbation size 0.1"
    ("table6", "mnist"): {"fgsm": dict(epsilon=0.1), "pgd": dict(epsilon=0.1, steps=40, step_size=0.005)},
    # Appendix J: "Other settings are the same as those used in Section 4.2-4.3" (Tables 3, 4)
    ("table8", "cifar10"): {a: SPATIAL[a] for a in ("gridadv", "gridadv.t", "gridadv.r")},
    ("table9", "cifar10"): {a: TABLE4_CIFAR10[a] for a in ("fgsm", "pgd", "mifgsm", "jsma", "cw", "ddn")},
    ("figure9", "cifar10"): {"pgd": TABLE4_CIFAR10["pgd"], "gridadv": SPATIAL["gridadv"]},
    # Appendix F
    ("figure1", "cifar10"): {"pgd+": COMPOUND_CIFAR10, "gridadv+": COMPOUND_CIFAR10, "pgd": TABLE4_CIFAR10["pgd"],
                             "gridadv": SPATIAL["gridadv"]},
    ("figure1", "mnist"): {"pgd+": COMPOUND_MNIST, "gridadv+": COMPOUND_MNIST, "pgd": TABLE4_MNIST["pgd"],
                           "gridadv": SPATIAL["gridadv"]},
    ("figure7", "cifar10"): {"pgd+": COMPOUND_CIFAR10, "gridadv+": COMPOUND_CIFAR10},
    ("figure7", "mnist"): {"pgd+": COMPOUND_MNIST, "gridadv+": COMPOUND_MNIST},
    # Section 4.5: "all settings are the same as those used in Section 4.2-4.3"
    ("figure2", "cifar10"): {"pgd": TABLE4_CIFAR10["pgd"], "gridadv": SPATIAL["gridadv"]},
    ("figure2", "mnist"): {"pgd": TABLE4_MNIST["pgd"], "gridadv": SPATIAL["gridadv"]},
}
# the cpu scale: Fashion-MNIST models trained at ℓ∞ 0.1, attacked at Appendix C's settings for that budget
CPU_PGD = dict(epsilon=0.1, steps=40, step_size=0.005)
CPU_SETTINGS = {"fgsm": dict(epsilon=0.1), "pgd": CPU_PGD, "mifgsm": CPU_PGD, "cw": CPU_PGD, "pgd+": CPU_PGD,
                "gridadv+": CPU_PGD, "autoattack": dict(epsilon=0.1)}


def written_settings(spec):
    """(name, {setting: value}) as the spec writes them (no defaults filled in)."""
    name, _, body = spec.partition("[")
    return name, {k: float(v) for k, v in (item.split("=") for item in body.removesuffix("]").split(",") if item)}


def planned_evaluations(name, scale):
    """(checkpoint, --attacks specs) of each evaluate command `srtbench reproduce NAME --scale S --dry-run` prints."""
    out = run("reproduce", name, "--scale", scale, "--dry-run")
    assert out.exit_code == 0, out.output
    argvs = [shlex.split(ln.removeprefix("# done: ")) for ln in out.output.splitlines()]
    return [(a[2], split_specs(option(a, "--attacks"))) for a in argvs if a[1] == "evaluate"]


@pytest.mark.parametrize("name", [n for n in recipes.RECIPES.names() if n != "quick"])  # quick: cpu at any scale
def test_paper_scale_evaluations_use_the_papers_attack_settings_of_each_table(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = {}
    for checkpoint, specs in planned_evaluations(name, "paper"):
        dataset = Path(checkpoint).parent.name.split("-")[0]  # runs/PRESET/...: the paper's presets name the dataset
        expected = PAPER_SETTINGS[(name, dataset)]
        for spec in specs:
            attacks.parse(spec, dataset)  # a setting the battery has
            attack, settings = written_settings(spec)
            assert attack in expected, f"{name} on {dataset}: {attack} is no attack of this table"
            assert settings == expected[attack], f"{name} on {dataset}, {checkpoint}: {spec}, paper: {expected[attack]}"
            seen.setdefault(dataset, set()).add(attack)
    assert {(name, d): names for d, names in seen.items()} == \
        {key: set(v) for key, v in PAPER_SETTINGS.items() if key[0] == name}  # every dataset and column evaluated


@pytest.mark.parametrize("name", recipes.RECIPES.names())
def test_cpu_scale_evaluations_attack_at_the_fashion_mnist_budget(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for checkpoint, specs in planned_evaluations(name, "cpu"):
        for spec in specs:
            attacks.parse(spec, "fashion-mnist")
            attack, settings = written_settings(spec)
            assert settings == CPU_SETTINGS.get(attack, {}), f"{name}, {checkpoint}: {spec}"


@pytest.mark.parametrize("scale", recipes.SCALES)
def test_a_checkpoint_shared_by_experiments_is_attacked_with_the_same_settings_in_each(scale):
    # a step is done when its CSV holds a row per (checkpoint, attack name, fraction), whatever the settings: an
    # experiment asking other settings (or images) of the same row would take another experiment's for its own
    asked = {}
    for name in recipes.RECIPES.names():
        for step in evaluations(recipes.plan(name, scale)):
            for spec in split_specs(step.job.config.attacks):
                for fraction in step.job.config.fractions:
                    key = (step.output, step.job.checkpoints[0], spec.split("[")[0], fraction)
                    what = (spec, step.job.config.n)
                    assert asked.setdefault(key, what) == what, f"{key}: {asked[key]} and {what} ({name})"


def test_cpu_runs_get_equal_epochs_so_semi_supervised_runs_take_more_steps():
    """Section 4: an epoch of SRT covers D_L ∪ D_U (batches split in proportion), so at equal epochs it takes
    (10,000 + 50,000) / 10,000 = 6 times the steps of a supervised run on D_L."""
    jobs = {j.out: j for j in trains(recipes.plan("table4", "cpu", protocol="epochs"))}
    steps = {out.rsplit("/", 1)[1]: j.option("iterations") for out, j in jobs.items()}
    assert steps == {"standard.pt": 400, "at.pt": 400, "trades.pt": 400, "uat.pt": 2400, "rst.pt": 2400,
                     "srt-lam1.pt": 2400, "at-steps2400.pt": 2400}  # the last: AT at SRT's step count (control)
    assert jobs["runs/fmnist-pixel-cpu/at-steps2400.pt"].option("label") == "AT (2,400 steps)"
    sweep = {j.out.rsplit("/", 1)[1]: j.option("iterations") for j in trains(recipes.plan("figure2", "cpu", "epochs"))
             if "pixel" in j.out}
    assert sweep == {"srt-lam1-u0.pt": 400, "srt-lam1-u10000.pt": 800, "srt-lam1-u20000.pt": 1200,
                     "srt-lam1.pt": 2400, "at-u0-all-labeled.pt": 2400}  # 60,000 labeled: 6 epochs' worth
    fast = [j for j in trains(recipes.plan("table9", "cpu", "epochs")) if j.defense == "fast-srt"]
    assert fast[0].option("iterations") == 1000  # Table 9: 50 of SRT's 120 epochs
    assert all(j.option("iterations") is None for j in trains(recipes.plan("table4", "paper")))


# ---------------------------------------------------------------- steps hold configs; seeds; the steps protocol


class _Trained:
    path, last, metrics, interrupted, train_time_s = "x.pt", "x.resume", [], False, 0.0


@pytest.mark.parametrize("name, scale", ALL)
def test_a_step_makes_the_library_call_its_printed_command_makes(name, scale, tmp_path, monkeypatch):
    """A step calls the library with its own configs; its command line, typed, must build the same ones."""
    monkeypatch.chdir(tmp_path)
    built = []
    monkeypatch.setattr("srtbench.trainer.train", lambda run, **kw: built.append(run) or _Trained())
    monkeypatch.setattr("srtbench.evaluate.evaluate", lambda paths, cfg: built.append((list(paths), cfg)) or [])
    for step in recipes.plan(name, scale):
        if step.kind not in ("train", "evaluate"):
            continue
        out = run(*step.argv[1:])
        assert out.exit_code == 0, f"{step.command}: {out.output}"
        expected = step.job.build() if step.kind == "train" else (list(step.job.checkpoints), step.job.config)
        assert built.pop() == expected, step.command


def test_seeds_train_and_evaluate_every_run_once_per_seed_and_seed_0_keeps_its_paths():
    one, two = recipes.plan("table4", "cpu", "epochs"), recipes.plan("table4", "cpu", "epochs", seeds=(0, 1))
    assert [s for s in two if s.kind != "table"][:len(one) - 1] == one[:-1]  # seed 0: today's steps and paths
    seed1 = [j for j in trains(two) if j.option("seed") == 1]
    assert {j.out for j in seed1} == {j.out.replace(".pt", "-s1.pt") for j in trains(one)}
    rst = next(j for j in seed1 if j.defense == "rst")
    assert rst.option("teacher") == "runs/fmnist-pixel-cpu/standard-s1.pt"  # taught by its own seed's teacher
    tables_ = [s for s in two if s.kind == "table"]
    assert len(tables_) == 1 and tables_[0] is two[-1]  # one table, after every seed's evaluations
    assert set(tables_[0].job.csvs) == {s.output for s in evaluations(two)}
    assert "--seed 1 --out runs/fmnist-pixel-cpu/at-s1.pt" in "\n".join(s.command for s in two)
    with pytest.raises(recipes.SrtbenchError, match="--seeds"):
        recipes.parse_seeds("0,x")


def test_a_counted_runs_row_name_is_the_trainers_name_for_it_with_its_count():
    """`counted` names a run as the trainer does, from the preset's resolved parameters (SRT without λ takes the
    preset's or the paper's default), then adds the count."""
    from srtbench.recipes.planning import counted

    assert counted("srt", "fmnist-pixel-cpu", None, None, 4800) == ("-steps4800", "SRT (λ = 1, 4,800 steps)")
    assert counted("srt", "fmnist-spatial-cpu", None, None, 960)[1] == "SRT (λ = 0.2, 960 steps)"
    assert counted("at", "fmnist-compound-cpu", None, None, 4800)[1] == "AT+ (4,800 steps)"
    assert counted("rt", "fmnist-pixel-cpu", 0.4, "RT (mine)", 4800)[1] == "RT (mine, 4,800 steps)"


def test_steps_protocol_gives_every_defense_the_same_sgd_steps_in_its_own_folders():
    steps = recipes.plan("table4", "cpu", protocol="steps")
    assert [s.command for s in steps] == [s.command for s in recipes.plan("table4", "cpu")]  # the cpu default
    jobs = trains(steps)
    lengths = {Path(j.out).stem: j.option("iterations") for j in jobs}
    labels = {Path(j.out).stem: j.option("label") for j in jobs}
    # every defense 4,800 steps, its file and row naming the count
    for name in ("standard", "at", "trades", "uat-beta1", "rst", "rt-lam1", "rt-lam1-b21-lr0.0082", "srt-lam1"):
        assert lengths.pop(f"{name}-steps4800") == 4800, name
        assert labels[f"{name}-steps4800"].endswith("4,800 steps)"), labels
    assert labels["srt-lam1-steps4800"] == "SRT (λ = 1, 4,800 steps)" and labels["at-steps4800"] == "AT (4,800 steps)"
    # UAT at β = 1 (its β = 6 run diverged at this count; the paper's own remedy where UAT "is hard to learn")
    uat = next(j for j in jobs if Path(j.out).stem == "uat-beta1-steps4800")
    assert uat.option("beta") == 1.0 and uat.option("label") == "UAT (β = 1, 4,800 steps)"
    assert not [j for j in trains(recipes.plan("table4", "cpu", "epochs")) if j.option("beta")]  # epochs: as before
    # RT twice: on whole batches of labeled images, and on SRT's labeled share of a batch (as the official code)
    # the latter at a learning rate shrunk with its batch (0.05 · 21/128; at 0.05 it collapsed)
    b21 = next(j for j in jobs if Path(j.out).stem == "rt-lam1-b21-lr0.0082-steps4800")
    assert b21.option("batch_size") == 21 and b21.option("lam") == 1.0 and b21.option("lr") == 0.0082
    assert b21.option("label") == "RT (λ = 1, 21 labeled a step, lr 0.0082, 4,800 steps)"
    # the convergence controls: SRT at twice the steps, and AT, TRADES, RT and SRT at half of them under the names
    # they had as the protocol's first count (2,400 steps)
    assert lengths.pop("srt-lam1-steps9600") == 9600 and labels["srt-lam1-steps9600"] == "SRT (λ = 1, 9,600 steps)"
    assert lengths == dict.fromkeys(["at", "trades", "rt-lam1", "srt-lam1"], 2400)
    assert not [label for stem, label in labels.items() if stem in lengths and label]  # their old names: no label
    names = {*lengths, "srt-lam1-steps9600"}
    controls = [s for s in evaluations(steps) if Path(s.output).stem.split("--")[-1] in names]
    assert controls and not [s for s in controls if "autoattack" in s.job.config.attacks or
                             "jsma" in s.job.config.attacks]  # the fast attacks only
    assert all(j.out.startswith("runs/fmnist-pixel-cpu-steps/") for j in jobs)
    outputs = {s.output or s.job.out for s in steps}
    assert not outputs & {s.output or s.job.out for s in recipes.plan("table4", "cpu", "epochs")}  # never mixed
    table = steps[-1].job
    assert "equal SGD steps" in table.title and table.out == "results/fmnist/table4-steps/table4.md"
    assert "--title" in steps[-1].argv and "--title" not in recipes.plan("table4", "cpu", "epochs")[-1].argv
    out = run("reproduce", "table4", "--protocol", "steps", "--scale", "paper", "--dry-run")
    assert out.exit_code == 2 and "--protocol steps needs" in out.output


def test_steps_wait_only_for_the_steps_writing_what_they_read():
    steps = recipes.plan("table4", "cpu")
    deps = recipes.dependencies(steps)
    index = {s.output: i for i, s in enumerate(steps) if s.kind == "train"}
    for i, step in enumerate(steps):
        if step.kind == "evaluate":
            assert deps[i] == {index[step.job.checkpoints[0]]}
        elif step.kind == "train":
            teacher = step.job.option("teacher")
            assert deps[i] == ({index[teacher]} if teacher else set())
    assert deps[-1] == {i for i, s in enumerate(steps) if s.kind == "evaluate"}  # the table, after every CSV


def test_several_experiments_share_their_common_steps():
    both = recipes.plan_all(["quick", "table4"], protocol="epochs")
    assert len(both) == len(recipes.plan("quick")) + len(recipes.plan("table4", protocol="epochs")) - 1  # standard's
    # training once
    out = run("reproduce", "quick", "table4", "--protocol", "epochs", "--dry-run")
    assert out.exit_code == 0 and len(out.output.splitlines()) == len(both)


def test_reproduce_without_jobs_never_imports_ray(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from srtbench.cli import main; "
            "r = CliRunner().invoke(main, ['reproduce', 'quick', '--dry-run']); "
            "assert r.exit_code == 0, r.output; assert 'ray' not in sys.modules, 'ray imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_jobs_without_ray_installed_is_a_one_line_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = run("reproduce", "quick", "--jobs", "2")
    assert out.exit_code == 2 and out.output.count("\n") == 1, out.output
    assert "pip install 'srtbench[cluster]'" in out.output
    out = run("reproduce", "quick", "--address", "auto")
    assert out.exit_code == 2 and "add --jobs N" in out.output


def test_a_step_in_its_worker_fails_as_a_command_would(tmp_path, monkeypatch, capsys):
    from srtbench import worker

    monkeypatch.chdir(tmp_path)
    missing = recipes.Step(recipes.TableJob(("results/none.csv",), "auto"))
    assert worker.run_step(missing) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1

    class Broken(recipes.TableJob):
        def execute(self, echo):
            raise ZeroDivisionError("a bug")

    assert worker.run_step(recipes.Step(Broken(("x.csv",)))) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected ZeroDivisionError: a bug (full traceback in ") and err.count("\n") == 1
