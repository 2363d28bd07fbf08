"""Significance notes (`--versus`): McNemar per training seed on the same test images, Welch over the seeds."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from srtbench import recipes, results, tables
from srtbench.cli import main
from srtbench.tables import significance


def sha(checkpoint: str) -> str:
    return hashlib.sha256(checkpoint.encode()).hexdigest()


def measured(folder, label, checkpoint, attack, correct, train_seed=0, index=None, eval_seed=0, split="test",
             side_file=True):
    """A results row of `checkpoint` under `attack` whose per-example file says which test images stayed correct
    (`correct`, at `index`: 0, 1, ... unless given); written to folder/r.examples/."""
    idx = torch.arange(len(correct)) if index is None else torch.tensor(index)
    ok = torch.tensor(correct, dtype=torch.bool)
    name = f"{sha(checkpoint)[:12]}-{attack}-0-f1-n{len(correct)}-s{eval_seed}.pt"
    if side_file:
        results.write_per_example(folder / "r.examples" / name, {
            "index": idx, "clean_pred": idx, "adv_pred": torch.where(ok, idx, idx + 1), "label": idx,
            "clean_correct": torch.ones(len(idx), dtype=torch.bool), "adv_correct": ok,
            "distance": torch.zeros(len(idx))})
    return {"label": label, "checkpoint": checkpoint, "checkpoint_sha256": sha(checkpoint), "attack": attack,
            "fraction": 1.0, "dataset": "fashion-mnist", "clean_acc": 100.0,
            "robust_acc": 100.0 * sum(correct) / len(correct), "n": len(correct), "seed": eval_seed, "split": split,
            "train_seed": train_seed, "per_example": f"r.examples/{name}" if side_file else ""}


def table_of(folder, rows, versus="SRT", layout="auto"):
    results.append(folder / "r.csv", rows)
    return tables.build(results.collect([folder / "r.csv"]), layout, versus=versus)


def as_read(folder, row):
    """A row as `results.collect` gives it: with the CSV it came from (its side files lie beside it)."""
    return pd.Series({**row, "source": str(folder / "r.csv")})


def rival_line(table, rival):
    return next(n for n in table.notes if n.startswith(f"SRT vs {rival}"))


def one_way(n_discordant: int, n_agree: int = 20, n_wrong: int = 0) -> tuple[list[int], list[int]]:
    """Two rows' outcomes: both correct on `n_agree` images, only the first on `n_discordant` more, neither on
    `n_wrong`."""
    return ([1] * (n_agree + n_discordant) + [0] * n_wrong,
            [1] * n_agree + [0] * (n_discordant + n_wrong))


# ---------------------------------------------------------------- the tests themselves


def test_mcnemar_is_the_two_sided_binomial_test_of_the_discordant_pairs():
    first, second = (torch.tensor(o, dtype=torch.bool) for o in one_way(10))
    assert significance.mcnemar(first, second) == pytest.approx(2 * 0.5 ** 10)
    assert significance.mcnemar(second, first) == pytest.approx(2 * 0.5 ** 10)
    # 7 images only the first keeps, 2 only the second: p = 2 P(X <= 2), X ~ Binomial(9, 1/2)
    first = torch.tensor([1] * 7 + [0] * 2 + [1, 0], dtype=torch.bool)
    second = torch.tensor([0] * 7 + [1] * 2 + [1, 0], dtype=torch.bool)
    by_hand = 2 * sum(math.comb(9, k) for k in range(3)) / 2 ** 9
    assert significance.mcnemar(first, second) == pytest.approx(by_hand)


def test_rows_that_agree_on_every_image_give_p_one(tmp_path):
    correct = [1, 0, 1, 1, 0, 1]
    a = measured(tmp_path, "SRT", "runs/srt.pt", "pgd", correct)
    b = measured(tmp_path, "AT", "runs/at.pt", "pgd", correct)
    assert significance.paired_test(as_read(tmp_path, a), as_read(tmp_path, b)) == (1.0, "")


def test_welch_p_is_welchs_t_test_on_the_seed_accuracies():
    from scipy import stats

    first, second = [41.0, 43.5, 44.0], [47.0, 52.0]
    m1, m2 = sum(first) / 3, sum(second) / 2
    v1, v2 = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1) for xs, m in ((first, m1), (second, m2)))
    se2 = v1 / 3 + v2 / 2
    dof = se2 ** 2 / ((v1 / 3) ** 2 / 2 + (v2 / 2) ** 2 / 1)  # Welch-Satterthwaite
    by_hand = 2 * stats.t.sf(abs(m1 - m2) / math.sqrt(se2), dof)
    assert significance.welch(first, second) == pytest.approx(by_hand)
    assert significance.welch(first, second) == pytest.approx(
        stats.ttest_ind(first, second, equal_var=False).pvalue)
    assert significance.welch([41.0], second) is None  # one seed: no test


# ---------------------------------------------------------------- the notes under a table


def seed_family(folder, label, stem, attack, outcomes):
    """A run trained at seeds 0, 1, ...: stem.pt, stem-s1.pt, ..., one outcome list per seed."""
    return [measured(folder, label, f"runs/{stem}{f'-s{s}' if s else ''}.pt", attack, o, train_seed=s)
            for s, o in enumerate(outcomes)]


def test_each_seed_is_paired_with_the_same_seed_and_welch_runs_on_the_seed_means(tmp_path):
    from scipy import stats

    seeds = ((10, 0), (7, 2), (5, 6))  # seed s: k images only SRT keeps, w that neither does
    pairs = [one_way(k, n_wrong=w) for k, w in seeds]
    rows = (seed_family(tmp_path, "SRT", "srt", "pgd", [p[0] for p in pairs])
            + seed_family(tmp_path, "AT", "at", "pgd", [p[1] for p in pairs]))
    line = rival_line(table_of(tmp_path, rows), "AT")
    mine = [100 * (20 + k) / (20 + k + w) for k, w in seeds]
    theirs = [100 * 20 / (20 + k + w) for k, w in seeds]
    welch = stats.ttest_ind(mine, theirs, equal_var=False).pvalue
    expected = ", ".join(f"{2 * 0.5 ** k:.2g}" for k in (10, 7, 5))
    assert line == f"SRT vs AT (seeds 0, 1, 2): PGD: McNemar p = {expected}, Welch p = {welch:.2g}"


def test_a_lead_is_held_where_every_paired_seed_and_the_seed_means_support_it(tmp_path):
    """Three seeds that each favour SRT at p < 0.05 (10, 9, 8 discordant images, all one way) and seed means far
    apart: the note says the lead holds, and the header says the rule."""
    pairs = [one_way(k, n_wrong=w) for k, w in ((10, 0), (9, 1), (8, 2))]
    rows = (seed_family(tmp_path, "SRT", "srt", "pgd", [p[0] for p in pairs])
            + seed_family(tmp_path, "AT", "at", "pgd", [p[1] for p in pairs]))
    table = table_of(tmp_path, rows)
    assert rival_line(table, "AT").endswith(" (held: SRT ahead)"), rival_line(table, "AT")
    assert any("a lead is held where both support it" in note for note in table.notes)
    weaker = [one_way(k, n_wrong=w) for k, w in ((10, 0), (9, 1), (5, 2))]  # seed 2: p = 0.0625
    rows = (seed_family(tmp_path / "w", "SRT", "srt", "pgd", [p[0] for p in weaker])
            + seed_family(tmp_path / "w", "AT", "at", "pgd", [p[1] for p in weaker]))
    assert "held" not in rival_line(table_of(tmp_path / "w", rows), "AT")


def test_held_needs_two_paired_seeds_each_with_the_same_run_ahead_and_the_means():
    names = ("SRT", "AT")
    assert significance.held(names, [(72, 70), (71, 69)], [0.01, 0.02], 0.03, (71.5, 69.5)) == "SRT"
    assert significance.held(names, [(70, 72), (69, 71)], [0.01, 0.02], 0.03, (69.5, 71.5)) == "AT"
    assert significance.held(names, [(72, 70), (70, 71)], [0.01, 0.02], 0.03, (71, 70.5)) == ""  # seed 1 the other way
    assert significance.held(names, [(72, 70), (71, 69)], [0.01, 0.2], 0.03, (71.5, 69.5)) == ""  # seed 1 unresolved
    assert significance.held(names, [(72, 70), (71, 69)], [0.01, 0.02], 0.06, (71.5, 69.5)) == ""  # the means
    assert significance.held(names, [(72, 70), (71, 69)], [0.01, None], 0.03, (71.5, 69.5)) == ""  # no paired test
    assert significance.held(names, [(72, 70), None, (71, 69)], [0.01, None, 0.02], 0.03, (71.5, 69.5)) == "SRT"
    assert significance.held(names, [(72, 70), None], [0.01, None], 0.03, (71.5, 69.5)) == ""  # one paired seed


def test_a_seed_only_one_run_has_is_said_and_left_untested(tmp_path):
    pairs = [one_way(k) for k in (10, 7, 5)]

    def line(folder, at_seeds):
        rows = (seed_family(folder, "SRT", "srt", "pgd", [p[0] for p in pairs])
                + seed_family(folder, "AT", "at", "pgd", [p[1] for p in pairs[:at_seeds]]))
        return rival_line(table_of(folder, rows), "AT")

    two = line(tmp_path / "two", 2)
    assert f"McNemar p = {2 * 0.5 ** 10:.2g}, {2 * 0.5 ** 7:.2g}, – (seed 2: no AT run)" in two
    one = line(tmp_path / "one", 1)
    assert "PGD: McNemar p = 0.002, –, – (seeds 1, 2: no AT run)" in one and one.endswith("(AT has one seed)")


def test_runs_that_score_alike_at_every_seed_get_no_welch_test_not_p_zero(tmp_path):
    first, second = one_way(10)
    rows = (seed_family(tmp_path, "SRT", "srt", "pgd", [first] * 3)
            + seed_family(tmp_path, "AT", "at", "pgd", [second] * 3))
    line = rival_line(table_of(tmp_path, rows), "AT")
    assert line.endswith("; no Welch test over seeds (neither varies over its seeds)") and "Welch p" not in line


@pytest.mark.parametrize("theirs, why", [
    ({"index": list(range(10, 40))}, "different test images"),
    ({"eval_seed": 1}, "different evaluation seeds"),
    ({"split": "train"}, "different splits"),
    ({"side_file": False}, "no per-example file"),
])
def test_rows_not_on_the_same_images_get_no_paired_test_never_a_number(tmp_path, theirs, why):
    first, second = one_way(10)
    rows = [measured(tmp_path, "SRT", "runs/srt.pt", "pgd", first),
            measured(tmp_path, "AT", "runs/at.pt", "pgd", second, **theirs)]
    line = rival_line(table_of(tmp_path, rows), "AT")
    assert line == f"SRT vs AT (seed 0): PGD: no paired test ({why}); no Welch test over seeds (one seed each)"
    assert not re.search(r"\d", line.split(":", 1)[1].replace("seed 0", ""))  # no p anywhere


def test_a_column_a_row_lacks_is_said_once_for_every_such_column(tmp_path):
    first, second = one_way(4)
    rows = [measured(tmp_path, "SRT", "runs/srt.pt", a, first) for a in ("fgsm", "pgd", "mifgsm")]
    rows.append(measured(tmp_path, "AT", "runs/at.pt", "fgsm", second))
    line = rival_line(table_of(tmp_path, rows, layout="table4"), "AT")
    assert "no test under PGD, MI-FGSM (no result for AT)" in line and line.count("no result") == 1


# ---------------------------------------------------------------- formats, command line, recipe


def table4_rows(folder):
    """Table 4's rows as the steps recipe labels them: SRT (λ = 1) is the layout's SRT row, RT (λ = 1) one more."""
    first, second = one_way(10)
    return [measured(folder, "SRT (λ = 1)", "runs/srt-lam1.pt", "pgd", first),
            measured(folder, "AT", "runs/at.pt", "pgd", second),
            measured(folder, "RT (λ = 1)", "runs/rt-lam1.pt", "pgd", first)]


@pytest.mark.parametrize("fmt, wrap", [("markdown", "\n{}.\n"), ("html", '<p class="note">{}.</p>'),
                                       ("rich", "{}.")])
def test_the_notes_render_in_every_text_format(tmp_path, fmt, wrap):
    table = table_of(tmp_path, table4_rows(tmp_path), layout="table4")
    text = tables.render(table, fmt)
    note = f"SRT vs AT (seed 0): PGD: McNemar p = {2 * 0.5 ** 10:.2g}; no Welch test over seeds (one seed each)"
    assert wrap.format(note) in (text if fmt != "rich" else " ".join(text.split()))
    assert "SRT vs RT (λ = 1) (seed 0): PGD: McNemar p = 1" in text


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_the_table_command_prints_the_notes_for_a_row_named_as_shown_or_as_labelled(tmp_path):
    results.append(tmp_path / "r.csv", table4_rows(tmp_path))
    shown = run("table", str(tmp_path / "r.csv"), "--layout", "table4", "--versus", "SRT")
    assert shown.exit_code == 0, shown.output
    assert "SRT vs AT (seed 0): PGD: McNemar p = 0.002" in shown.output
    labelled = run("table", str(tmp_path / "r.csv"), "--layout", "table4", "--versus", "SRT (λ = 1.0)")
    assert labelled.exit_code == 0 and labelled.output == shown.output


def test_an_unknown_row_is_a_one_line_error_listing_the_rows(tmp_path):
    results.append(tmp_path / "r.csv", table4_rows(tmp_path))
    out = run("table", str(tmp_path / "r.csv"), "--layout", "table4", "--versus", "KLR")
    assert out.exit_code == 2 and out.output.count("\n") == 1, out.output
    assert "'KLR'" in out.output and "rows: AT, SRT, RT (λ = 1)" in out.output


def test_the_steps_table4_recipe_tests_the_rivals_against_srt_as_its_command_does(tmp_path):
    job = recipes.plan("table4", "cpu", protocol="steps")[-1].job
    assert job.kind == "table" and job.versus == "SRT" and job.argv()[-2:] == ["--versus", "SRT"]
    assert recipes.plan("table4", "cpu", "epochs")[-1].job.versus is None  # equal epochs: no paired tests
    results.append(tmp_path / "r.csv", table4_rows(tmp_path))
    job = dataclasses.replace(job, csvs=(str(tmp_path / "r.csv"),), out=None, compare=None)
    printed = []
    job.execute(printed.append)
    typed = run(*job.argv()[1:])
    assert typed.exit_code == 0 and typed.output == printed[0] + "\n" and "SRT vs AT" in typed.output
