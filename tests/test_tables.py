import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from srtbench import results, tables
from srtbench.cli import main

PAPER_TEXT = Path("/work/shared/paper/srt-paper.txt")


def write_rows(path, rows):
    """Result rows with only what tables read; the rest of the schema stays empty."""
    full = [{"n": 100, "seed": 0, "fraction": 1.0, "dataset": "fashion-mnist", **r} for r in rows]
    results.append(path, full)
    return path


def known_value(i, j):
    return round((10 + 7.123456 * i + 1.987654 * j) % 97, 6)  # distinct enough, and a percentage


def run(*args):
    return CliRunner().invoke(main, list(args))


SHA = "c" * 64


def side(attack: str) -> str:
    """A per-example file's name as evaluate writes it: the checkpoint's hash, the attack, the run."""
    return f"{SHA[:12]}-{attack}-0-f1-n4-s0.pt"


@pytest.mark.parametrize("name", [n for n in tables.LAYOUTS.names() if tables.LAYOUTS.get(n).rows])
def test_every_layout_renders_its_cells_exactly_rounded_to_two_decimals(tmp_path, name):
    """Every layout of the paper's rows (auto and the threat profile take theirs from the results)."""
    layout = tables.LAYOUTS.get(name)
    rows = [{"label": label, "attack": attack, "clean_acc": known_value(i, 99), "robust_acc": known_value(i, j),
             "checkpoint": f"ck{i}.pt"}
            for i, label in enumerate(layout.rows) for j, attack in enumerate(layout.attacks)]
    df = results.collect([write_rows(tmp_path / "r.csv", rows)])
    table = tables.build(df, name)
    assert [c.header for c in table.columns][0] == "Clean"
    assert [c.attack for c in table.columns if c.kind == "attack"] == list(layout.attacks)
    md = tables.render(table, "markdown")
    for i, label in enumerate(layout.rows):
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {label} |"))
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")][1:]
        expected = [f"{known_value(i, 99):.2f}"] + [f"{known_value(i, j):.2f}" for j in range(len(layout.attacks))]
        assert cells[: len(expected)] == expected
        if layout.time:
            assert cells[-1] == "–"  # no checkpoint on disk: the time is missing, not zero


def test_missing_cells_are_a_dash_never_zero(tmp_path):
    df = results.collect([write_rows(tmp_path / "r.csv", [
        {"label": "SRT (λ = 0.2)", "attack": "gridadv", "clean_acc": 90.0, "robust_acc": 60.0},
    ])])
    table = tables.build(df, "table3")
    assert table.cell("fashion-mnist", "SRT", "GridAdv").value == 60.0
    assert table.cell("fashion-mnist", "SRT", "RandAdv").value is None
    assert table.cell("fashion-mnist", "KLR", "Clean").value is None
    md = tables.render(table, "markdown")
    assert "| KLR | – | – | – | – | – | – | – |" in md
    assert "| 0.00 |" not in md and " 0 |" not in md


def test_best_value_per_column_and_dataset_is_bold(tmp_path):
    df = results.collect([write_rows(tmp_path / "r.csv", [
        {"label": "AT", "attack": "fgsm", "clean_acc": 80.0, "robust_acc": 50.0},
        {"label": "SRT (λ = 1)", "attack": "fgsm", "clean_acc": 79.0, "robust_acc": 55.555},
        {"label": "AT", "attack": "fgsm", "clean_acc": 99.0, "robust_acc": 97.0, "dataset": "mnist"},
        {"label": "SRT (λ = 1)", "attack": "fgsm", "clean_acc": 98.0, "robust_acc": 96.0, "dataset": "mnist"},
    ])])
    table = tables.build(df, "table4")
    assert [g.dataset for g in table.groups] == ["mnist", "fashion-mnist"]  # the paper's order first
    md = tables.render(table, "markdown")
    assert "| AT | **99.00** | **97.00** |" in md
    assert "| AT | **80.00** | 50.00 |" in md and "| SRT | 79.00 | **55.56** |" in md
    tex = tables.render(table, "latex")
    assert r"SRT & 79.00 & \textbf{55.56}" in tex and r"\multicolumn{9}{c}{MNIST}" in tex


def test_worst_case_is_taken_per_example_over_attacks(tmp_path):
    folder = tmp_path / "res"
    idx = torch.arange(4)
    for attack, robust in (("fgsm", [1, 1, 0, 0]), ("pgd", [0, 1, 1, 0])):
        ok = torch.tensor(robust, dtype=torch.bool)
        results.write_per_example(folder / "r.examples" / side(attack), {
            "index": idx, "clean_pred": idx, "adv_pred": torch.where(ok, idx, (idx + 1) % 4), "label": idx,
            "clean_correct": torch.ones(4, dtype=torch.bool), "adv_correct": ok, "distance": torch.zeros(4)})
    df = results.collect([write_rows(folder / "r.csv", [
        {"label": "AT", "attack": a, "clean_acc": 100.0, "robust_acc": 50.0, "per_example": f"r.examples/{side(a)}",
         "checkpoint_sha256": SHA}
        for a in ("fgsm", "pgd")])])
    table = tables.build(df, "table2")
    # each attack alone leaves 50%, but only example 1 survives both: 25%, below the column minimum
    assert table.cell("fashion-mnist", "AT", "Worst case").value == pytest.approx(25.0)
    assert "| AT | 100.00 | 50.00 | 50.00 | 25.00 |" in tables.render(table, "markdown").replace("**", "")


def test_worst_case_column_is_absent_without_per_example_files():
    table = tables.build(tables.reference_results("paper"), "table4")
    assert "Worst case" not in [c.header for c in table.columns]


def test_conflicting_duplicates_are_one_error_naming_both_files(tmp_path):
    a = write_rows(tmp_path / "a.csv", [{"label": "AT", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 40.0}])
    b = write_rows(tmp_path / "b.csv", [{"label": "AT", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 41.0}])
    out = run("table", str(a), str(b))
    assert out.exit_code == 2 and out.output.count("\n") == 1
    assert str(a) in out.output and str(b) in out.output
    same = write_rows(tmp_path / "c.csv", [{"label": "AT", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 40.0}])
    assert run("table", str(a), str(same)).exit_code == 0  # identical duplicates are fine


def test_one_model_measured_on_different_example_sets_shows_the_most_examples_and_says_so(tmp_path):
    """`make demo` attacks a shipped model on 500 images beside the reproduction's 1,000: two measurements, no
    conflict. The cell shows the larger one; a note under the table names the file left out."""
    model = {"label": "AT", "checkpoint": "models/at.pt", "checkpoint_sha256": "a" * 64, "clean_acc": 72.0}
    big = write_rows(tmp_path / "big.csv", [dict(model, attack="fgsm", robust_acc=63.4, n=1000)])
    small = write_rows(tmp_path / "quick" / "small.csv", [dict(model, attack=a, robust_acc=r, n=500)
                                                          for a, r in (("fgsm", 66.0), ("pgd", 61.0))])
    for order in ((small, big), (big, small)):
        out = run("table", *map(str, order), "--format", "markdown")
        assert out.exit_code == 0, out.output
        line = next(ln for ln in out.output.splitlines() if ln.startswith("| AT |"))
        assert "63.40" in line and "66.00" not in line
        assert "61.00" in line  # PGD was measured only on the 500: that one is shown
        note = next(ln for ln in out.output.splitlines() if "not shown" in ln)
        assert "small.csv" in note and "500 examples" in note and "fgsm" in note and "big.csv" in note
        assert "pgd" not in note
    # the same measurement (same n and seed) with another number is still a conflict
    clash = write_rows(tmp_path / "clash.csv", [dict(model, attack="fgsm", robust_acc=63.5, n=1000)])
    out = run("table", str(big), str(clash))
    assert out.exit_code == 2 and "big.csv" in out.output and "clash.csv" in out.output


def test_equal_example_counts_prefer_the_test_split_then_the_lowest_seed(tmp_path):
    model = {"label": "AT", "attack": "pgd", "checkpoint": "at.pt", "checkpoint_sha256": "a" * 64, "clean_acc": 70.0}
    rows = [dict(model, robust_acc=50.0, seed=3, split="test"), dict(model, robust_acc=51.0, seed=1, split="test"),
            dict(model, robust_acc=52.0, seed=0, split="train")]
    table = tables.build(results.collect([write_rows(tmp_path / "r.csv", rows)]), "table4")
    assert table.cell("fashion-mnist", "AT", "PGD").value == 51.0
    assert any("seed 3" in n and "train split" in n for n in table.notes)


def test_budget_plot_picks_the_measurement_the_table_shows(tmp_path, capsys):
    from srtbench import plots

    model = {"label": "AT", "attack": "pgd", "checkpoint": "at.pt", "checkpoint_sha256": "a" * 64, "clean_acc": 70.0}
    rows = [dict(model, robust_acc=50.0, n=1000), dict(model, robust_acc=55.0, n=200),
            dict(model, robust_acc=30.0, n=200, fraction=2.0)]
    data = plots.budget(results.collect([write_rows(tmp_path / "r.csv", rows)]), tmp_path / "fig")
    assert data[("fashion-mnist", "pgd")]["AT"] == ([0.0, 1.0, 2.0], [70.0, 50.0, 30.0])
    assert "not shown" in capsys.readouterr().err


def test_different_checkpoints_sharing_a_label_are_separate_rows(tmp_path):
    rows = [{"label": "SRT (λ = 0.2)", "attack": "gridadv", "clean_acc": 80.0, "robust_acc": acc,
             "checkpoint": f"runs/srt-u{n}.pt", "checkpoint_sha256": f"{n:064d}"} for n, acc in ((0, 14.5), (1, 22.9))]
    rows.append(dict(rows[0], robust_acc=14.5))  # the same checkpoint twice, same numbers: still one row
    table = tables.build(results.collect([write_rows(tmp_path / "r.csv", rows)]))
    assert table.cell("fashion-mnist", "SRT (λ = 0.2) (srt-u0)", "GridAdv").value == 14.5
    assert table.cell("fashion-mnist", "SRT (λ = 0.2) (srt-u1)", "GridAdv").value == 22.9
    assert len(table.groups[0].rows) == 2


def test_runs_of_one_name_in_two_presets_are_named_by_preset(tmp_path):
    """Pixel and spatial SRT at λ 0.2 share a label and a file stem: the rows say which preset each is."""
    rows = [{"label": "SRT (λ = 0.2)", "attack": "pgd", "clean_acc": 80.0, "robust_acc": acc,
             "checkpoint": f"runs/fmnist-{kind}-cpu/srt-lam0.2.pt", "checkpoint_sha256": f"{i:064d}"}
            for i, (kind, acc) in enumerate((("pixel", 62.2), ("spatial", 0.5)))]
    table = tables.build(results.collect([write_rows(tmp_path / "r.csv", rows)]))
    assert table.cell("fashion-mnist", "SRT (λ = 0.2) (fmnist-pixel-cpu/srt-lam0.2)", "PGD").value == 62.2
    assert table.cell("fashion-mnist", "SRT (λ = 0.2) (fmnist-spatial-cpu/srt-lam0.2)", "PGD").value == 0.5


def test_one_checkpoint_retrained_at_one_path_is_told_apart_by_hash(tmp_path):
    rows = [{"label": "AT", "attack": "pgd", "clean_acc": 80.0, "robust_acc": acc, "checkpoint": "runs/at.pt",
             "checkpoint_sha256": sha * 64} for sha, acc in (("a", 40.0), ("b", 45.0))]
    table = tables.build(results.collect([write_rows(tmp_path / "r.csv", rows)]))
    assert {r.label for r in table.groups[0].rows} == {"AT (at aaaaaaaa)", "AT (at bbbbbbbb)"}


def test_one_model_at_two_settings_of_an_attack_gets_two_columns(tmp_path):
    rows = [{"label": "SRT", "attack": "jsma", "clean_acc": 80.0, "robust_acc": acc, "checkpoint": "srt.pt",
             "checkpoint_sha256": "c" * 64, "attack_params": results.dumps({"theta": 1.0, "gamma": gamma})}
            for gamma, acc in ((0.1, 50.0), (1.0, 20.0))]
    table = tables.build(results.collect([write_rows(tmp_path / "r.csv", rows)]))
    assert table.cell("fashion-mnist", "SRT", "JSMA [gamma=0.1]").value == 50.0
    assert table.cell("fashion-mnist", "SRT", "JSMA [gamma=1.0]").value == 20.0
    # the same settings twice with different numbers is a real conflict, named by both files
    clash = write_rows(tmp_path / "clash.csv", [dict(rows[1], robust_acc=21.0)])
    out = run("table", str(tmp_path / "r.csv"), str(clash))
    assert out.exit_code == 2 and "clash.csv" in out.output and "r.csv" in out.output


def test_the_papers_numbers_render_per_source_table():
    """The paper prints Standard's CIFAR-10 FGSM as 6.65 in Table 2 and 7.26 in Table 4: two rows, no error."""
    out = run("table", str(tables.PAPER_DIR), "--format", "csv")
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(__import__("io").StringIO(out.output))
    cifar = frame[frame["dataset"] == "cifar10"].set_index("label")
    assert cifar.loc["Standard (paper Table 2)", "FGSM"] == 6.65
    assert cifar.loc["Standard (paper Table 4)", "FGSM"] == 7.26


def test_lambda_spelling_does_not_split_rows(tmp_path):
    df = results.collect([write_rows(tmp_path / "r.csv", [
        {"label": "RT (λ = 0.2)", "attack": "randadv", "clean_acc": 85.0, "robust_acc": 60.0}])])
    table = tables.build(df, "table1")
    assert table.cell("fashion-mnist", "RT (λ = 0.20)", "RandAdv").value == 60.0
    assert [r.label for r in table.groups[0].rows] == list(tables.LAYOUTS.get("table1").rows)


def test_a_runs_notes_place_it_on_its_defenses_row_unless_a_label_has_that_name(tmp_path):
    """The steps protocol names each run's count ("AT (4,800 steps)"): it fills the layout's row "AT", unless a
    result is labeled "AT" itself, whatever the order the files come in."""
    rows = [{"label": "AT (2,400 steps)", "checkpoint": "a2400.pt", "attack": "pgd", "robust_acc": 40.0},
            {"label": "AT", "checkpoint": "a.pt", "attack": "pgd", "robust_acc": 30.0},
            {"label": "SRT (λ = 1, 4,800 steps)", "checkpoint": "s.pt", "attack": "pgd", "robust_acc": 50.0},
            {"label": "UAT (β = 1, 4,800 steps)", "checkpoint": "u.pt", "attack": "pgd", "robust_acc": 45.0},
            {"label": "RT (λ = 1, 21 labeled a step, 4,800 steps)", "checkpoint": "r.pt", "attack": "pgd",
             "robust_acc": 20.0}]
    table = tables.build(results.collect([write_rows(tmp_path / "r.csv", [{"clean_acc": 80.0, **r} for r in rows])]),
                         "table4")
    assert [table.cell("fashion-mnist", name, "PGD").value for name in ("AT", "SRT", "UAT", "AT (2,400 steps)")] == [
        30.0, 50.0, 45.0, 40.0]
    assert table.cell("fashion-mnist", "RT (λ = 1, 21 labeled a step, 4,800 steps)", "PGD").value == 20.0
    two = [{"label": "RT (λ = 0.2)", "checkpoint": "a.pt", "attack": "gridadv", "robust_acc": 10.0},
           {"label": "RT (λ=0.2)", "checkpoint": "b.pt", "attack": "gridadv", "robust_acc": 20.0}]
    table = tables.build(results.collect([write_rows(tmp_path / "two.csv", [{"clean_acc": 80.0, **r} for r in two])]),
                         "table1")  # one row's name spelt twice, two models: each named by its file, neither lost
    assert [table.cell("fashion-mnist", name, "GridAdv").value for name in ("RT (λ = 0.2) (a)", "RT (λ=0.2) (b)")] == [
        10.0, 20.0]


def test_unknown_labels_become_extra_rows_after_the_papers(tmp_path):
    df = results.collect([write_rows(tmp_path / "r.csv", [
        {"label": "My defense", "attack": "pgd", "clean_acc": 85.0, "robust_acc": 60.0}])])
    labels = [r.label for r in tables.build(df, "table2").groups[0].rows]
    assert labels[-1] == "My defense" and labels[:-1] == list(tables.LAYOUTS.get("table2").rows)


def test_compare_paper_lines_up_row_column_and_stand_in_dataset(tmp_path):
    csv = write_rows(tmp_path / "r.csv", [
        {"label": "SRT (λ = 0.2)", "attack": "gridadv", "clean_acc": 90.0, "robust_acc": 80.0},
        {"label": "Standard", "attack": "randadv.r", "clean_acc": 91.0, "robust_acc": 50.0},
    ])
    table = tables.build(results.collect([csv]), "table3", tables.reference_results("paper"))
    srt = table.cell("fashion-mnist", "SRT", "GridAdv")
    assert (srt.value, srt.reference) == (80.0, 92.12)  # Fashion-MNIST is compared with MNIST
    assert table.cell("fashion-mnist", "Standard", "RandAdv.R").reference == 65.06
    assert table.cell("fashion-mnist", "KLR", "Clean").reference == 98.43
    out = run("table", str(csv), "--layout", "table3", "--compare", "paper")
    assert out.exit_code == 0, out.output
    assert "80.00 / 92.12 (−12.12)" in out.output and "– / 98.43 (–)" in out.output
    assert "compared with the paper's MNIST numbers" in out.output


def test_compare_paper_without_a_paper_layout_is_one_line_error(tmp_path):
    csv = write_rows(tmp_path / "r.csv", [{"label": "AT", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 40.0}])
    out = run("table", str(csv), "--compare", "paper")
    assert out.exit_code == 2 and out.output.count("\n") == 1 and "--layout" in out.output


def test_time_comes_from_the_row_not_the_checkpoint(tmp_path):
    df = results.collect([write_rows(tmp_path / "r.csv", [
        {"label": "fast SRT", "attack": "gridadv", "clean_acc": 90.0, "robust_acc": 60.0, "checkpoint": "gone.pt",
         "train_time_s": 90.0}])])
    table = tables.build(df, "table8")
    assert table.cell("fashion-mnist", "fast SRT", "Time (mins)").value == pytest.approx(1.5)


def test_table9_time_keeps_the_printed_10_94():
    table = tables.build(tables.reference_results("paper"), "table9")
    assert table.cell("cifar10", "TRADES", "Time (mins)").value == "10,94"
    assert table.cell("cifar10", "SRT", "Time (mins)").value == 2916.0
    assert "| fast SRT | **82.27** | 58.27 | 44.93 | 44.45 | 12.27 | 40.85 | 26.12 | **257** |" in tables.render(table)


def test_csv_and_rich_formats_hold_the_same_numbers(tmp_path):
    csv = write_rows(tmp_path / "r.csv", [{"label": "AT", "attack": "pgd", "clean_acc": 80.004, "robust_acc": 40.0}])
    out = run("table", str(csv), "--format", "csv", "--out", str(tmp_path / "t.csv"))
    assert out.exit_code == 0
    frame = pd.read_csv(tmp_path / "t.csv")
    assert frame.loc[0, "Clean"] == 80.0 and frame.loc[0, "PGD"] == 40.0 and frame.loc[0, "label"] == "AT"
    rich = run("table", str(csv), "--format", "rich")
    assert "80.00" in rich.output and "40.00" in rich.output


@pytest.mark.parametrize("args, message", [
    (("EMPTY",), "no results CSV found"),
    (("OTHER",), "not an srtbench results CSV"),
    (("GOOD", "--layout", "table7"), "unknown layout 'table7'"),
    (("GOOD", "--format", "docx"), "unknown table format 'docx'"),
    (("GOOD", "--layout", "table3"), "no results for layout table3"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other.csv").write_text("epoch,loss\n1,0.5\n")
    good = write_rows(tmp_path / "good.csv", [{"label": "AT", "attack": "pgd", "clean_acc": 80.0, "robust_acc": 40.0}])
    paths = {"EMPTY": str(tmp_path / "empty"), "OTHER": str(tmp_path / "other.csv"), "GOOD": str(good)}
    out = run("table", *[paths.get(a, a) for a in args])
    assert out.exit_code == 2 and out.output.count("\n") == 1 and message in out.output, out.output


# ---------------------------------------------------------------- the paper's numbers

# verbatim lines of srt-paper.txt: a sample that must hold even where the paper's text is absent
PAPER_SAMPLE = {
    ("table1", "cifar10"): "SRT (λ = 0.20) 88.87 78.99 64.83",
    ("table2", "cifar10"): "Standard 87.69 6.65 0",
    ("table3", "cifar10"): "KLR 85.40 72.77 56.28 77.43 72.71 74.80 71.04",
    ("table3", "mnist"): "AT 97.96 29.84 0.01 51.83 10.72 71.66 57.71",
    ("table4", "cifar10"): "RST 79.99 59.55 48.38 47.97 13.78 42.99 13.42 27.73",
    ("table4", "mnist"): "SRT 99.28 97.77 96.60 95.79 26.79 96.19 5.81 96.10",
    ("table5", "mnist"): "RT (λ = 0.25) 98.29 93.91 78.00",
    ("table6", "mnist"): "SRT (λ = 0.8) 99.35 98.53 97.86",
    ("table8", "cifar10"): "fast SRT 89.21 64.81 78.57 77.24 855",
    ("table9", "cifar10"): "TRADES 76.72 51.98 40.20 39.79 11.90 36.09 22.37 10,94",
}


def paper_line(name, dataset, label):
    """The row as the paper prints it, rebuilt from results/paper (the reverse of the transcription)."""
    table = tables.build(tables.reference_results("paper"), name)
    group = next(g for g in table.groups if g.dataset == dataset)
    row = next(r for r in group.rows if r.label == label)
    return label, [c.value for c in row.cells]


def numbers(text):
    return [v if "," in v and not re.fullmatch(r"\d{1,3}(,\d{3})+", v) else float(v.replace(",", ""))
            for v in text.split()]


@pytest.mark.parametrize("key", list(PAPER_SAMPLE))
def test_paper_csvs_hold_the_printed_numbers(key):
    line = PAPER_SAMPLE[key]
    label = re.match(r"^(.*?)(?: [\d.,]+)+$", line).group(1)
    assert paper_line(*key, label) == (label, numbers(line[len(label):]))


def test_every_paper_row_appears_verbatim_in_the_paper_text():
    if not PAPER_TEXT.exists():
        pytest.skip("the paper's text is not on this machine")
    lines = {ln.strip() for ln in PAPER_TEXT.read_text().splitlines()}
    checked = 0
    for name in tables.LAYOUTS.names():
        layout = tables.LAYOUTS.get(name)
        if layout.paper is None:
            continue
        for group in tables.build(tables.reference_results("paper"), name).groups:
            for row in group.rows:
                found = [ln for ln in lines if re.fullmatch(re.escape(row.label) + r"(?: [\d.,]+)+", ln)
                         and numbers(ln[len(row.label):]) == [c.value for c in row.cells]]
                assert found, f"{name} {group.dataset} {row.label}: no such line in the paper"
                checked += 1
    assert checked == 9 + 9 + 10 + 12 + 9 + 9 + 4 + 4


def test_flags_view_lists_every_rows_passes_and_warnings(tmp_path):
    ok = {"in_neighborhood": {"status": "PASS", "detail": "0 outside"}, "zero_budget": {"status": "PASS", "detail": ""}}
    bad = {**ok, "gradient_masking": {"status": "WARN", "detail": "pgd 40% vs Square 30%"}}
    path = write_rows(tmp_path / "r.csv", [
        {"label": "AT", "attack": "pgd", "clean_acc": 70.0, "robust_acc": 50.0, "checkpoint": "a.pt", "flags": ok},
        {"label": "SRT", "attack": "pgd", "clean_acc": 70.0, "robust_acc": 40.0, "checkpoint": "s.pt", "flags": bad}])
    out = run("table", str(path), "--flags")
    assert out.exit_code == 0, out.output
    lines = {ln.split("|")[1].strip(): ln for ln in out.output.splitlines() if ln.startswith("| ") and "pgd" in ln}
    assert "2 PASS" in lines["AT (a.pt)"] and "WARN" not in lines["AT (a.pt)"]
    assert "2 PASS; WARN gradient_masking: pgd 40% vs Square 30%" in lines["SRT (s.pt)"]
    assert "paper" in run("table", "results/paper/table3.csv", "--flags").output  # the paper's numbers: no flags


def test_attacks_option_picks_the_columns(tmp_path):
    path = write_rows(tmp_path / "r.csv", [
        {"label": "AT", "attack": a, "clean_acc": 70.0, "robust_acc": v, "checkpoint": "a.pt"}
        for a, v in (("pgd", 50.0), ("gridadv", 1.25), ("autoattack", 48.5))])
    out = run("table", str(path), "--attacks", "pgd,autoattack")
    assert out.exit_code == 0, out.output
    assert "| AT | 70.00 | 50.00 | 48.50 |" in out.output and "GridAdv" not in out.output


def test_worst_case_pairs_examples_by_index_over_the_examples_every_attack_saw(tmp_path):
    """Files in different orders and of different lengths: each example meets itself, the others are left out."""
    folder = tmp_path / "res"
    files = {"fgsm": (torch.tensor([3, 2, 1, 0]), [1, 0, 1, 1]), "pgd": (torch.tensor([0, 1, 2]), [1, 1, 0])}
    for attack, (idx, robust) in files.items():
        ok = torch.tensor(robust, dtype=torch.bool)
        results.write_per_example(folder / "r.examples" / side(attack), {
            "index": idx, "clean_pred": idx, "adv_pred": torch.where(ok, idx, (idx + 1) % 4), "label": idx,
            "clean_correct": torch.ones(len(idx), dtype=torch.bool), "adv_correct": ok,
            "distance": torch.zeros(len(idx))})
    df = results.collect([write_rows(folder / "r.csv", [
        {"label": "AT", "attack": a, "clean_acc": 100.0, "robust_acc": 50.0, "per_example": f"r.examples/{side(a)}",
         "checkpoint_sha256": SHA}
        for a in files])])
    # over examples 0-2: fgsm breaks 2, pgd breaks 2; 0 and 1 survive both (pairing by position would give 1 of 3)
    assert tables.build(df, "table2").cell("fashion-mnist", "AT", "Worst case").value == pytest.approx(200 / 3)
