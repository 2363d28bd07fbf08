"""Tables over training seeds: runs that differ only in their seed are one row, mean ± standard deviation."""

from __future__ import annotations

import pandas as pd
import pytest

from srtbench import tables


def row(checkpoint, label, attack, robust, clean=80.0, seed=None, sha=None, **extra):
    r = {"checkpoint": checkpoint, "checkpoint_sha256": sha or f"sha-{checkpoint}", "label": label,
         "dataset": "fashion-mnist", "attack": attack, "attack_params": '{"steps": 3}', "fraction": 1.0, "n": 100,
         "clean_acc": clean, "robust_acc": robust, "per_example": "", "source": "r.csv", **extra}
    if seed is not None:
        r["train_seed"] = seed
    return r


def frame(*rows):
    return pd.DataFrame(list(rows))


def cell(table, label, header):
    return table.cell("fashion-mnist", label, header)


def test_two_seeds_of_a_run_are_one_row_with_mean_and_sample_std():
    df = frame(row("runs/at.pt", "AT", "pgd", 40.0, 80.0, seed=0),
               row("runs/at-s1.pt", "AT", "pgd", 44.0, 82.0, seed=1),
               row("runs/std.pt", "Standard", "pgd", 1.0, 90.0, seed=0))
    table = tables.build(df)
    assert [r.label for r in table.groups[0].rows] == ["AT", "Standard"]
    pgd = cell(table, "AT", "PGD")
    assert pgd.value == pytest.approx(42.0) and pgd.spread == pytest.approx(2 ** 0.5 * 2)
    assert cell(table, "AT", "Clean").spread == pytest.approx(2 ** 0.5)
    assert cell(table, "Standard", "PGD").spread is None  # one seed: as it was
    text = tables.render(table)
    assert "| AT | 81.00 ± 1.41 | **42.00 ± 2.83** |" in text and "mean ± standard deviation" in text
    assert "PGD ±" in tables.render(table, "csv").splitlines()[0]
    assert r"$\pm$" in tables.render(table, "latex")


def test_per_seed_shows_a_row_per_seed_named_by_its_seed():
    df = frame(row("runs/at.pt", "AT", "pgd", 40.0, seed=0), row("runs/at-s1.pt", "AT", "pgd", 44.0, seed=1))
    table = tables.build(df, per_seed=True)
    assert [r.label for r in table.groups[0].rows] == ["AT (seed 0)", "AT (seed 1)"]
    assert "±" not in tables.render(table)


def test_rows_without_a_train_seed_column_take_the_seed_their_path_names():
    df = frame(row("runs/at.pt", "AT", "pgd", 40.0), row("runs/at-s2.pt", "AT", "pgd", 50.0))
    assert "train_seed" not in df
    assert cell(tables.build(df), "AT", "PGD").value == pytest.approx(45.0)


def test_runs_that_differ_in_more_than_the_seed_stay_apart():
    df = frame(row("runs/a/at.pt", "AT", "pgd", 40.0, seed=0, preset="p1"),
               row("runs/b/at-s1.pt", "AT", "pgd", 44.0, seed=1, preset="p2"),  # another run, another seed
               row("runs/c/at.pt", "AT", "pgd", 30.0, seed=0, sha="old"),
               row("runs/c/at.pt", "AT", "pgd", 31.0, seed=0, sha="retrained"))  # one seed twice: a retrained file
    table = tables.build(df)
    assert len(table.groups[0].rows) == 4 and not any(c.spread for r in table.groups[0].rows for c in r.cells)


def test_a_teacher_trained_at_the_runs_own_seed_keeps_the_seeds_one_run():
    """RST's seed s reads the standard model of seed s (`standard-sS.pt`): its seeds are one row. A student of
    seed 1 that read seed 2's teacher is another run."""
    params = '{{"beta": 6.0, "teacher": "runs/standard{}.pt"}}'
    df = frame(row("runs/rst.pt", "RST", "pgd", 40.0, seed=0, defense_params=params.format("")),
               row("runs/rst-s1.pt", "RST", "pgd", 44.0, seed=1, defense_params=params.format("-s1")),
               row("runs/rst-s2.pt", "RST", "pgd", 42.0, seed=2, defense_params=params.format("-s2")))
    pgd = cell(tables.build(df), "RST", "PGD")
    assert pgd.value == pytest.approx(42.0) and pgd.spread == pytest.approx(2.0)
    crossed = df.assign(defense_params=[params.format(""), params.format("-s2"), params.format("-s2")])
    table = tables.build(crossed)
    assert len(table.groups[0].rows) == 2, [r.label for r in table.groups[0].rows]


def test_training_time_of_a_run_over_seeds_is_their_mean():
    df = frame(row("runs/at.pt", "AT", "gridadv", 40.0, seed=0, train_time_s=60.0),
               row("runs/at-s1.pt", "AT", "gridadv", 44.0, seed=1, train_time_s=180.0))
    assert cell(tables.build(df, "table8"), "AT", "Time (mins)").value == pytest.approx(2.0)
