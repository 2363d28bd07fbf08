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


def test_every_paper_experiment_has_a_recipe():
    wanted = {f"table{i}" for i in (1, 2, 3, 4, 5, 6, 8, 9)} | {f"figure{i}" for i in (1, 2, 3, 7, 9)} | {"quick"}
    assert set(recipes.RECIPES.names()) == wanted


@pytest.mark.parametrize("name, scale", ALL)
def test_recipe_trains_before_it_evaluates_and_ends_with_its_table_or_plot(name, scale):
    steps = recipes.plan(name, scale)
    trained = set()
    for step in steps[:-1]:
        verb = step.argv[1]
        if verb == "plot":  # a figure of checkpoints (decision surfaces) is drawn once they are trained
            assert name.startswith("figure") and all(p in trained for p in step.argv[3:] if p.endswith(".pt"))
            continue
        assert verb in ("train", "evaluate")
        if verb == "train":
            assert step.argv[2] in DEFENSES and option(step.argv, "--preset") in PRESETS
            assert step.output == option(step.argv, "--out") and step.output.endswith(".pt")
            trained.add(step.output)
        else:
            assert step.argv[2] in trained or step.argv[2] in recipes.QUICK_REFERENCE, \
                f"{step.command}: evaluates a checkpoint no earlier step trains"
            assert {spec.split("[")[0] for spec in split_specs(option(step.argv, "--attacks"))} <= ATTACKS
            assert not step.output.startswith("results/paper/")  # the paper's published numbers live there
    last = steps[-1].argv
    if name.startswith("table"):
        folder = "results/fmnist" if scale == "cpu" or name == "quick" else "results/paper-scale"
        if name == "quick":
            folder += "/quick"
        evaluated = [s.output for s in steps if s.argv[1] == "evaluate"]
        assert last[1] == "table" and list(last[2:last.index("--layout")]) == list(dict.fromkeys(evaluated))
        assert all(Path(csv).parent == Path(folder) for csv in evaluated)
        assert option(last, "--out") == f"{folder}/{name}/{name}.md" or name == "quick"
        assert option(last, "--layout") == name and tables.LAYOUTS.get(name)
        assert option(last, "--compare") == "paper"
    else:
        assert last[1] in ("plot", "table")


@pytest.mark.parametrize("scale", recipes.SCALES)
def test_table3_lists_the_papers_defenses_and_spatial_attacks(scale):
    steps = recipes.plan("table3", scale)
    trains = [s.argv for s in steps if s.argv[1] == "train"]
    datasets = 1 if scale == "cpu" else 2  # the CPU scale maps CIFAR-10 and MNIST to one Fashion-MNIST group
    assert sorted(a[2] for a in trains) == sorted(["standard", "at", "worst-of-k", "klr", "srt"] * datasets)
    assert all(option(a, "--lambda") == "0.2" for a in trains if a[2] == "srt")
    evals = [s.argv for s in steps if s.argv[1] == "evaluate"]
    assert {tuple(spec.split("[")[0] for spec in split_specs(option(a, "--attacks"))) for a in evals} == {
        ("randadv", "gridadv", "randadv.t", "gridadv.t", "randadv.r", "gridadv.r")}  # settings: the test below
    # AT is the pixel-wise defense: its preset is the pixel one, while the rest use the spatial one
    at = next(a for a in trains if a[2] == "at")
    assert "pixel" in option(at, "--preset")
    if scale == "cpu":
        expected = ("srtbench train srt --preset fmnist-spatial-cpu --lambda 0.2 --iterations 2400 --check-every 5"
                    " --no-amp --out runs/fmnist-spatial-cpu/srt-lam0.2.pt")
        assert expected in [s.command for s in steps]


def test_table4_attacks_slow_minimum_norm_attacks_on_fewer_images():
    evals = [s.argv for s in recipes.plan("table4", "cpu") if s.argv[1] == "evaluate"]
    by_attacks = {option(a, "--attacks"): option(a, "--n") for a in evals}
    # the cpu scale attacks at its presets' training budget, ε 0.1 (Table 6 / Appendix C), not Table 4's 0.3
    pgd = "epsilon=0.1,steps=40,step_size=0.005"
    # the ℓ∞ C&W costs a PGD (all images); the ℓ2 minimum-norm one is slow (after DDN, for its median ℓ2 distance)
    assert by_attacks == {f"fgsm[epsilon=0.1],pgd[{pgd}],mifgsm[{pgd}],cw[{pgd}]": "1000",
                          "jsma,pointwise,ddn,cw-l2,autoattack[epsilon=0.1]": "250"}
    paper = [s.argv for s in recipes.plan("table4", "paper") if s.argv[1] == "train"]
    assert {option(a, "--preset") for a in paper} == {"cifar10-pixel-table4", "mnist-pixel-table4"}
    assert [option(a, "--lambda") for a in paper if a[2] == "srt"] == ["1", "1"]


@pytest.mark.parametrize("name, lams", [("table1", ["0.15", "0.2", "0.25", "0.3"]),
                                        ("table6", ["0.2", "0.4", "0.6", "0.8"])])
def test_lambda_tables_train_rt_and_srt_at_each_lambda(name, lams):
    trains = [s.argv for s in recipes.plan(name, "paper") if s.argv[1] == "train"]
    for defense in ("rt", "srt"):
        assert [option(a, "--lambda") for a in trains if a[2] == defense] == lams
    assert {option(a, "--preset") for a in trains} == {"table1": {"cifar10-spatial-table1"},
                                                       "table6": {"mnist-pixel-table6"}}[name]


def test_figure2_sweeps_the_unlabeled_count_with_all_labeled_references():
    trains = [s.argv for s in recipes.plan("figure2", "cpu") if s.argv[1] == "train"]
    # the presets' own 50,000 is the tables' run (no --n-unlabeled): one run serves both
    srt = [int(option(a, "--n-unlabeled") or 50_000) for a in trains if a[2] == "srt"]
    assert srt == [0, 10_000, 20_000, 50_000] * 2  # pixel-wise, then spatial
    assert "runs/fmnist-pixel-cpu/srt-lam1.pt" in [option(a, "--out") for a in trains]
    refs = [a for a in trains if a[2] != "srt"]
    # the references have labels for all 10,000 + 50,000 images the largest SRT run sees
    assert [a[2] for a in refs] == ["at", "worst-of-k"] and all(option(a, "--n-labeled") == "60000" for a in refs)
    paper = [s.argv for s in recipes.plan("figure2", "paper") if s.argv[1] == "train" and s.argv[2] != "srt"]
    assert [option(a, "--n-labeled") for a in paper] == ["50000", "50000", "60000", "60000"]
    assert recipes.plan("figure2", "cpu")[-1].argv[1:3] == ("plot", "unlabeled")


def test_figures_1_and_7_attack_over_budget_fractions():
    for name in ("figure1", "figure7"):
        steps = recipes.plan(name, "cpu")
        evals = [s.argv for s in steps if s.argv[1] == "evaluate"]
        assert {option(a, "--fractions") for a in evals} == {"0.2,0.4,0.6,0.8,1"}
        assert steps[-1].argv[1:3] == ("plot", "budget")
    compound = [s.argv for s in recipes.plan("figure7", "cpu") if s.argv[1] == "train"]
    assert [a[2] for a in compound] == ["at", "srt", "at-avg", "at-max"]
    assert all(option(a, "--threat") == "compound" and option(a, "--preset") == "fmnist-compound-cpu"
               for a in compound)


def test_rst_is_taught_by_the_standard_model_of_its_setting():
    steps = recipes.plan("table4", "paper")
    for s in (s for s in steps if s.argv[1:3] == ("train", "rst")):
        teacher = option(s.argv, "--teacher")
        assert teacher == f"runs/{option(s.argv, '--preset')}/standard.pt"
        assert [t.output for t in steps].index(teacher) < steps.index(s)


def test_figure9_sweeps_lr_max_and_training_length():
    trains = [s.argv for s in recipes.plan("figure9", "paper") if s.argv[1] == "train"]
    assert all(a[2] == "fast-srt" for a in trains) and len(trains) == 2 * 3 + 2 * 5
    spatial = [a for a in trains if option(a, "--preset") == "cifar10-fast-table8"]
    assert {(option(a, "--lr-max"), option(a, "--iterations")) for a in spatial} == {
        (lr, it) for lr in ("0.1", "0.2") for it in ("15000", "30000", "45000")}
    assert len({option(a, "--label") for a in trains}) == len(trains)  # one table row per run


def test_quick_is_the_cpu_demo_at_any_scale():
    steps = recipes.plan("quick", "paper")
    assert [s.argv[2] for s in steps if s.argv[1] == "train"] == ["standard"]
    assert all(option(s.argv, "--preset") == "fmnist-pixel-cpu" and option(s.argv, "--iterations") == "400"
               for s in steps if s.argv[1] == "train")
    evaluated = [s.argv[2] for s in steps if s.argv[1] == "evaluate"]
    assert evaluated == ["runs/fmnist-pixel-cpu/standard.pt", *recipes.QUICK_REFERENCE]
    assert {option(s.argv, "--n") for s in steps if s.argv[1] == "evaluate"} == {"500"}


def fake_invoke(calls):
    """Stands in for running a step: writes what the real command would (a file; the CSV rows)."""
    def invoke(step):
        calls.append(step.command)
        if step.argv[1] == "train":
            from pathlib import Path

            Path(step.output).parent.mkdir(parents=True, exist_ok=True)
            Path(step.output).write_bytes(b"checkpoint")
        elif step.argv[1] == "evaluate":
            from srtbench.evaluate import sha256

            results.append(step.output, [{"checkpoint": c, "checkpoint_sha256": sha256(c), "attack": a, "fraction": f,
                                          "label": "x",
                                          "dataset": "fashion-mnist", "clean_acc": 1.0, "robust_acc": 1.0}
                                         for c, a, f in step.rows])
        return 0
    return invoke


def test_reproduce_resumes_by_skipping_finished_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps = recipes.plan("table4", "cpu")
    calls = []
    assert recipes.run(steps, echo=lambda s: None, invoke=fake_invoke(calls)) == len(steps)
    again = []
    assert recipes.run(steps, echo=lambda s: None, invoke=fake_invoke(again)) == 1
    assert again == [steps[-1].command]  # only the table is redrawn
    # an evaluate CSV lacking some of its rows (an interrupted run) is not finished
    partial = next(s for s in steps if s.argv[1] == "evaluate")
    frame = results.read(partial.output)
    frame[frame["attack"] != "pgd"].drop(columns=["source"]).to_csv(partial.output, index=False)
    assert not partial.done()
    out = run("reproduce", "table4", "--dry-run")
    lines = out.output.splitlines()
    assert out.exit_code == 0 and len(lines) == len(steps)
    assert sum(not ln.startswith("# done: ") for ln in lines) == 2  # the partial evaluate and the table
    assert f"{partial.command}" in lines


def test_an_evaluation_of_a_since_retrained_checkpoint_is_not_finished(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps = recipes.plan("table6", "cpu")
    recipes.run(steps, echo=lambda s: None, invoke=fake_invoke([]))
    evaluation = next(s for s in steps if s.argv[1] == "evaluate")
    assert evaluation.done()
    (tmp_path / evaluation.argv[2]).write_bytes(b"retrained")  # same name, new weights
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
    quick = {s.output for s in recipes.plan("quick") if s.argv[1] == "train"}
    assert quick <= {s.output for s in recipes.plan("table4", "cpu") if s.argv[1] == "train"}


def test_figure3_draws_surfaces_of_standard_and_srt_models():
    steps = recipes.plan("figure3", "cpu")
    surfaces = [s.argv for s in steps if s.argv[1:3] == ("plot", "surface")]
    assert {option(a, "--threat") for a in surfaces} == {"pixel", "spatial"}
    for a in surfaces:
        models = a[3:a.index("--threat")]
        assert [m.rsplit("/", 1)[1].removesuffix(".pt").split("-")[0] for m in models] == ["standard", "srt"]
        assert option(a, "--out").startswith("results/fmnist/figure3/")


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
        for step in (s for s in recipes.plan(name, scale) if s.argv[1] == "evaluate"):
            for spec in split_specs(option(step.argv, "--attacks")):
                for fraction in option(step.argv, "--fractions").split(","):
                    key = (step.output, step.argv[2], spec.split("[")[0], float(fraction))
                    what = (spec, option(step.argv, "--n"))
                    assert asked.setdefault(key, what) == what, f"{key}: {asked[key]} and {what} ({name})"


def test_cpu_runs_get_equal_epochs_so_semi_supervised_runs_take_more_steps():
    """Section 4: an epoch of SRT covers D_L ∪ D_U (batches split in proportion), so at equal epochs it takes
    (10,000 + 50,000) / 10,000 = 6 times the steps of a supervised run on D_L."""
    trains = {option(s.argv, "--out"): s.argv for s in recipes.plan("table4", "cpu") if s.argv[1] == "train"}
    steps = {out.rsplit("/", 1)[1]: int(option(a, "--iterations")) for out, a in trains.items()}
    assert steps == {"standard.pt": 400, "at.pt": 400, "trades.pt": 400, "uat.pt": 2400, "rst.pt": 2400,
                     "srt-lam1.pt": 2400, "at-steps2400.pt": 2400}  # the last: AT at SRT's step count (control)
    assert option(trains["runs/fmnist-pixel-cpu/at-steps2400.pt"], "--label") == "AT (2,400 steps)"
    sweep = {option(s.argv, "--out").rsplit("/", 1)[1]: int(option(s.argv, "--iterations"))
             for s in recipes.plan("figure2", "cpu") if s.argv[1] == "train" and "pixel" in s.output}
    assert sweep == {"srt-lam1-u0.pt": 400, "srt-lam1-u10000.pt": 800, "srt-lam1-u20000.pt": 1200,
                     "srt-lam1.pt": 2400, "at-u0-all-labeled.pt": 2400}  # 60,000 labeled: 6 epochs' worth
    fast = [s.argv for s in recipes.plan("table9", "cpu") if s.argv[1:3] == ("train", "fast-srt")]
    assert option(fast[0], "--iterations") == "1000"  # Table 9: 50 of SRT's 120 epochs
    assert all("--iterations" not in s.argv for s in recipes.plan("table4", "paper") if s.argv[1] == "train")
