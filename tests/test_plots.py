import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from srtbench import checkpoint, plots, results, surfaces
from srtbench.cli import main
from srtbench.data import DATASETS


def run(*args):
    return CliRunner().invoke(main, list(args))


def written(out):
    return all(out.with_suffix(f".{fmt}").stat().st_size > 1000 for fmt in ("png", "pdf"))


def fixture_rows(path, rows):
    results.append(path, [{"n": 100, "seed": 0, "dataset": "fashion-mnist", "fraction": 1.0, **r} for r in rows])
    return results.collect([path])


def save_checkpoint(path, model, **meta):
    spec = DATASETS.get("fashion-mnist")
    checkpoint.save(path, model, {**checkpoint.model_meta("small-cnn", spec), **meta})
    return str(path)


def test_budget_draws_one_curve_per_defense_and_panel_per_attack(tmp_path):
    rows = [{"label": label, "attack": attack, "fraction": f, "clean_acc": clean, "robust_acc": clean * (1 - f) / 2}
            for label, clean in (("AT+", 80.0), ("SRT+", 90.0))
            for attack in ("gridadv+", "pgd+") for f in (1.0, 0.5)]
    df = fixture_rows(tmp_path / "r.csv", rows)
    data = plots.budget(df, tmp_path / "fig1")
    assert set(data) == {("fashion-mnist", "gridadv+"), ("fashion-mnist", "pgd+")}
    for curves in data.values():
        assert set(curves) == {"AT+", "SRT+"}
    # fraction 0 is the clean accuracy; fractions ascend
    assert data[("fashion-mnist", "pgd+")]["SRT+"] == ([0.0, 0.5, 1.0], [90.0, 22.5, 0.0])
    assert written(tmp_path / "fig1")


def test_budget_filters_attacks(tmp_path):
    df = fixture_rows(tmp_path / "r.csv", [{"label": "AT", "attack": a, "clean_acc": 80.0, "robust_acc": 40.0}
                                            for a in ("pgd", "fgsm")])
    assert list(plots.budget(df, tmp_path / "f", attacks=["pgd"])) == [("fashion-mnist", "pgd")]


def test_unlabeled_sweep_is_a_curve_and_single_runs_are_references(tmp_path):
    rows = [{"label": "SRT (λ = 0.2)", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 30.0 + n / 1000}
            for n in (5000, 0, 20000)]
    rows.append({"label": "AT", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 41.0})
    path = tmp_path / "r.csv"
    fixture_rows(path, rows)
    frame = pd.read_csv(path)
    frame["n_unlabeled"] = [5000, 0, 20000, 0]
    frame.to_csv(path, index=False)
    data = plots.unlabeled(results.collect([path]), tmp_path / "fig2")
    panel = data[("fashion-mnist", "pgd")]
    assert panel["curves"] == {"SRT (λ = 0.2)": ([0, 5000, 20000], [30.0, 35.0, 50.0])}
    assert panel["references"] == {"AT": 41.0}
    assert written(tmp_path / "fig2")


def test_unlabeled_panels_show_the_runs_of_the_neighborhood_the_attack_probes(tmp_path):
    """Figure 1 attacks the spatial SRT sweep's largest run with PGD too: that row must not become a
    reference line on Figure 2's PGD panel, nor the pixel sweep's GridAdv rows one on the GridAdv panel."""
    rows = [{"label": label, "train_threat": threat, "attack": attack, "clean_acc": 80.0, "robust_acc": acc + n / 1000,
             "n_unlabeled": n}
            for label, threat, attack, acc in (("SRT (λ = 1)", "pixel", "pgd", 60.0),
                                               ("SRT (λ = 0.2)", "spatial", "gridadv", 20.0))
            for n in (0, 10000)]
    rows += [{"label": "SRT (λ = 0.2)", "train_threat": "spatial", "attack": "pgd", "clean_acc": 80.0,
              "robust_acc": 5.0, "n_unlabeled": 50000},
             {"label": "SRT (λ = 1)", "train_threat": "pixel", "attack": "gridadv", "clean_acc": 80.0,
              "robust_acc": 3.0, "n_unlabeled": 50000},
             {"label": "Standard", "train_threat": "none", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 9.0,
              "n_unlabeled": 0},
             {"label": "SRT (λ = 1)", "train_threat": "pixel", "attack": "fgsm", "clean_acc": 80.0,
              "robust_acc": 70.0, "n_unlabeled": 50000}]
    path = tmp_path / "r.csv"
    fixture_rows(path, [{k: v for k, v in r.items() if k != "n_unlabeled"} for r in rows])
    frame = pd.read_csv(path)
    frame["n_unlabeled"] = [r["n_unlabeled"] for r in rows]
    frame.to_csv(path, index=False)
    data = plots.unlabeled(results.collect([path]), tmp_path / "fig2", attacks=["pgd", "gridadv"])
    assert set(data) == {("fashion-mnist", "pgd"), ("fashion-mnist", "gridadv")}
    assert data[("fashion-mnist", "pgd")]["curves"] == {"SRT (λ = 1)": ([0, 10000], [60.0, 70.0])}
    assert data[("fashion-mnist", "pgd")]["references"] == {"Standard": 9.0}
    assert data[("fashion-mnist", "gridadv")]["curves"] == {"SRT (λ = 0.2)": ([0, 10000], [20.0, 30.0])}
    assert data[("fashion-mnist", "gridadv")]["references"] == {}


def test_unlabeled_reads_the_count_from_the_row_not_the_checkpoint(tmp_path):
    """Evaluation records |D_U| in the row (evaluate.training_columns), so the figure needs no checkpoint."""
    df = fixture_rows(tmp_path / "r.csv", [
        {"label": "SRT", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 30.0, "checkpoint": "gone-a.pt",
         "n_unlabeled": 3000},
        {"label": "SRT", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 40.0, "checkpoint": "gone-b.pt",
         "n_unlabeled": 50000}])
    curve = plots.unlabeled(df, tmp_path / "f")[("fashion-mnist", "pgd")]["curves"]["SRT"]
    assert curve == ([3000, 50000], [30.0, 40.0])


def test_unlabeled_without_any_source_of_the_count_is_one_line_error(tmp_path):
    path = tmp_path / "r.csv"
    fixture_rows(path, [{"label": "SRT", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 30.0,
                         "checkpoint": "gone.pt"}])
    out = run("plot", "unlabeled", str(path), "--out", str(tmp_path / "f"))
    assert out.exit_code == 2 and out.output.count("\n") == 1 and "unlabeled" in out.output


def test_decision_value_sign_is_correctness():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0]])
    d = surfaces.decision_value(logits, torch.tensor([0, 0]))
    p = logits.softmax(1)
    assert d[0] == pytest.approx((p[0, 0] - p[0, 1]).item()) and d[0] > 0
    assert d[1] == pytest.approx((p[1, 0] - p[1, 1]).item()) and d[1] < 0


@pytest.mark.parametrize("threat", ["pixel", "spatial"])
def test_surface_is_centred_on_the_clean_example(trained_cnn, test_batch, threat):
    x, y = test_batch[0][:1], test_batch[1][:1]
    grid = surfaces.surface_grid(trained_cnn, x, y, threat, "decision", steps=5, epsilon=0.2)
    assert grid["z"].shape == (5, 5)
    with torch.no_grad():
        clean = surfaces.decision_value(trained_cnn(x), y).item()
    assert grid["z"][2, 2] == pytest.approx(clean, abs=1e-4)
    assert grid["axes_values"][0][0] == pytest.approx(-(0.2 if threat == "pixel" else 30.0))


def test_pixel_loss_surface_rises_along_the_adversarial_direction(trained_cnn, test_batch):
    x, y = test_batch[0][:1], test_batch[1][:1]
    z = surfaces.surface_grid(trained_cnn, x, y, "pixel", "loss", steps=5, epsilon=0.05)["z"]
    assert z[4, 2] > z[2, 2] > z[0, 2]  # loss rises with u·sign(∇x loss), falls against it


def test_surface_plots_two_checkpoints_side_by_side(tmp_path, trained_cnn, tiny_cnn):
    a = save_checkpoint(tmp_path / "std.pt", trained_cnn, label="Standard")
    b = save_checkpoint(tmp_path / "srt.pt", tiny_cnn, label="SRT")
    out = run("plot", "surface", a, b, "--threat", "spatial", "--steps", "5", "--out", str(tmp_path / "fig3.png"))
    assert out.exit_code == 0, out.output
    assert written(tmp_path / "fig3")
    data = surfaces.surface([a, b], tmp_path / "fig5", value="loss", steps=3, index=7)
    assert list(data) == ["Standard", "SRT"] and data["SRT"]["value"] == "loss"
    assert not (data["Standard"]["z"] == data["SRT"]["z"]).all()
    # the numbers behind the figure: a row per model and grid point, the values the figure drew
    values = pd.read_csv(tmp_path / "fig5.values.csv")
    assert list(values.columns) == ["model", *data["SRT"]["axes"], "loss"] and len(values) == 2 * 3 * 3
    for label, grid in data.items():
        np.testing.assert_allclose(values[values.model == label]["loss"], grid["z"].ravel(), rtol=1e-5)
    assert len(pd.read_csv(tmp_path / "fig3.values.csv")) == 2 * 5 * 5
    assert not results._folder_csvs(tmp_path)  # not a results CSV: a results folder holding it still renders


def write_metrics(path, lrs):
    n = len(lrs)
    pd.DataFrame({"epoch": range(1, n + 1), "step": [100 * (i + 1) for i in range(n)], "lr": lrs,
                  "loss": [1.0 / (i + 1) for i in range(n)], "natural_loss": [0.5] * n, "robust_loss": [0.4] * n,
                  "train_acc": [60.0] * n, "clean_acc": [70.0 + i for i in range(n)], "robust_acc": [30.0] * n,
                  "epoch_time_s": [1.0] * n, "total_time_s": [float(i + 1) for i in range(n)]}
                 ).to_csv(path, index=False)
    return str(path)


def test_schedule_draws_each_run_learning_rate_by_step(tmp_path):
    cyclic = write_metrics(tmp_path / "fast.metrics.csv", [0.0, 0.1, 0.2, 0.1, 0.0])
    steps = write_metrics(tmp_path / "srt.metrics.csv", [0.1, 0.1, 0.01])
    data = plots.schedule([cyclic, steps], tmp_path / "fig8")
    assert data == {"fast": ([100, 200, 300, 400, 500], [0.0, 0.1, 0.2, 0.1, 0.0]),
                    "srt": ([100, 200, 300], [0.1, 0.1, 0.01])}
    assert written(tmp_path / "fig8")


def test_training_draws_loss_terms_and_accuracies(tmp_path):
    data = plots.training(write_metrics(tmp_path / "m.csv", [0.1] * 4), tmp_path / "t")
    assert list(data["loss"]) == ["loss", "natural_loss", "robust_loss"]
    assert data["accuracy (%)"]["clean_acc"] == ([1, 2, 3, 4], [70.0, 71.0, 72.0, 73.0])
    assert written(tmp_path / "t")


@pytest.mark.parametrize("args, message", [
    (("training", "RESULTS"), "not a trainer metrics CSV"),
    (("schedule", "MISSING"), "not a readable metrics CSV"),
    (("budget", "EMPTY"), "no results CSV found"),
    (("surface", "MISSING"), "no such checkpoint"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    fixture_rows(tmp_path / "r.csv", [{"label": "AT", "attack": "pgd", "clean_acc": 1.0, "robust_acc": 1.0}])
    paths = {"RESULTS": str(tmp_path / "r.csv"), "MISSING": str(tmp_path / "nope.csv"),
             "EMPTY": str(tmp_path / "empty")}
    out = run("plot", *[paths.get(a, a) for a in args], "--out", str(tmp_path / "f"))
    assert out.exit_code == 2 and out.output.count("\n") == 1 and message in out.output, out.output
