"""The threat profile: `srtbench table --layout threats` (srtbench/tables/profile.py) and `srtbench plot threats`."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from srtbench import attacks, plots, results, tables
from srtbench.cli import main
from srtbench.tables import profile
from tests import shipped
from tests.test_hostile_results import PARSERS, _expected_labels, _hostile_rows, write_raw

PIXEL = {"epsilon": 0.1}
SPATIAL = {"rotation": 30.0, "translation": 3.0}
BLUR = {"sigma": 2.0}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def model_rows(folder, label: str, sha: str, attacked: dict[str, tuple[list[int], dict]], side_files: bool = True,
               clean: float = 100.0) -> list[dict]:
    """One model's rows at fraction 1: per attack, which examples survived it (1) and its budget; with `side_files`,
    per-example files as evaluate writes them (every example classified correctly before the attack)."""
    rows = []
    for attack, (survived, budget) in attacked.items():
        name = f"{sha[:12]}-{attack}-0-f1-n{len(survived)}-s0.pt"
        ok, idx = torch.tensor(survived, dtype=torch.bool), torch.arange(len(survived))
        if side_files:
            results.write_per_example(folder / "r.examples" / name, {
                "index": idx, "label": idx, "clean_pred": idx, "adv_pred": torch.where(ok, idx, (idx + 1) % 10),
                "clean_correct": torch.ones(len(idx), dtype=torch.bool), "adv_correct": ok,
                "distance": torch.zeros(len(idx))})
        rows.append({"label": label, "checkpoint": f"runs/{sha[:4]}.pt", "checkpoint_sha256": sha, "attack": attack,
                     "clean_acc": clean, "robust_acc": 100.0 * sum(survived) / len(survived), "budget": budget,
                     "per_example": f"r.examples/{name}" if side_files else "", "n": len(survived), "seed": 0,
                     "fraction": 1.0, "dataset": "fashion-mnist"})
    return rows


def collect(folder, *models: list[dict]):
    results.append(folder / "r.csv", [r for m in models for r in m])
    return results.collect([folder / "r.csv"])


# two models, each attacked by two attacks of each of three threat groups; examples survive different attacks
AT = {"fgsm": ([1, 1, 1, 0, 1, 0, 1, 1], PIXEL), "pgd": ([1, 0, 1, 1, 1, 0, 1, 1], PIXEL),
      "randadv": ([1, 1, 0, 1, 1, 1, 1, 0], SPATIAL), "gridadv": ([1, 1, 1, 1, 0, 1, 0, 0], SPATIAL),
      "blur-pgd": ([1, 1, 1, 1, 1, 1, 0, 1], BLUR), "blur-grid": ([0, 1, 1, 1, 1, 1, 1, 1], BLUR)}
SRT = {"fgsm": ([1, 1, 1, 1, 1, 1, 1, 0], PIXEL), "pgd": ([0, 1, 1, 1, 1, 1, 1, 1], PIXEL),
       "randadv": ([1, 1, 1, 1, 0, 0, 1, 1], SPATIAL), "gridadv": ([1, 0, 1, 1, 1, 1, 1, 1], SPATIAL),
       "blur-pgd": ([1, 1, 0, 1, 1, 1, 1, 1], BLUR), "blur-grid": ([1, 1, 1, 1, 1, 0, 1, 1], BLUR)}


def by_hand(attacked: dict[str, tuple[list[int], dict]], names: list[str]) -> float:
    """Percent of examples that survived every one of `names`."""
    survived = [attacked[a][0] for a in names]
    return 100.0 * sum(all(s[i] for s in survived) for i in range(len(survived[0]))) / len(survived[0])


@pytest.fixture
def two_models(tmp_path):
    return collect(tmp_path, model_rows(tmp_path, "AT", "a" * 64, AT), model_rows(tmp_path, "SRT", "b" * 64, SRT))


def threat_headers(table) -> list[str]:
    return [c.header for c in table.columns if c.kind == "threat"]


def test_each_threat_cell_is_the_per_example_worst_case_over_its_groups_attacks(two_models):
    table = tables.build(two_models, "threats")
    groups = {"pixel ℓ∞ ε 0.1": ["fgsm", "pgd"], "spatial 30°, 3 px": ["randadv", "gridadv"],
              "blur σ ≤ 2": ["blur-pgd", "blur-grid"]}
    assert set(threat_headers(table)) == set(groups)
    for label, attacked in (("AT", AT), ("SRT", SRT)):
        for header, names in groups.items():
            value = table.cell("fashion-mnist", label, header).value
            assert value == pytest.approx(by_hand(attacked, names))
            # per example, not the lowest of the attacks' accuracies (each attack alone leaves more)
            assert value < min(100.0 * sum(attacked[a][0]) / 8 for a in names)
    assert not any("lowest accuracy" in n for n in table.notes)


def test_mean_and_min_are_those_of_the_shown_threat_columns(two_models):
    table = tables.build(two_models, "threats")
    headers = threat_headers(table)
    for label in ("AT", "SRT"):
        values = [table.cell("fashion-mnist", label, h).value for h in headers]
        assert table.cell("fashion-mnist", label, profile.MEAN).value == pytest.approx(sum(values) / len(values))
        assert table.cell("fashion-mnist", label, profile.MIN).value == min(values)
    assert [c.kind for c in table.columns] == ["clean", *["threat"] * len(headers), "mean", "min"]


def test_headers_state_the_budget_the_groups_attacks_cover_together(tmp_path):
    """GridAdv.T's (0°, 3 px) and GridAdv.R's (30°, 0 px) lie inside GridAdv's 30°, 3 px: one spatial column."""
    attacked = {"pgd": ([1, 0], PIXEL), "gridadv.t": ([1, 0], {"rotation": 0.0, "translation": 3.0}),
                "gridadv.r": ([0, 1], {"rotation": 30.0, "translation": 0.0}), "blur-grid": ([1, 1], BLUR)}
    table = tables.build(collect(tmp_path, model_rows(tmp_path, "AT", "a" * 64, attacked)), "threats")
    assert threat_headers(table) == ["pixel ℓ∞ ε 0.1", "spatial 30°, 3 px", "blur σ ≤ 2"]
    assert table.cell("fashion-mnist", "AT", "spatial 30°, 3 px").value == 0.0  # neither example survives both


def test_columns_follow_the_registry_order_of_each_groups_first_attack(tmp_path):
    names = list(reversed([a for a in attacks.ATTACKS.names() if a in ("fgsm", "randadv", "blur-pgd", "color-pgd",
                                                                        "gridadv+")]))
    attacked = {a: ([1, 0], PIXEL) for a in names}  # budgets are not what orders the columns
    table = tables.build(collect(tmp_path, model_rows(tmp_path, "AT", "a" * 64, attacked)), "threats")
    groups = [c.group for c in table.columns if c.kind == "threat"]
    first = {g: min(attacks.rank(a) for a in attacks.ATTACKS.names() if attacks.attack_info(a).group == g)
             for g in groups}
    assert groups == sorted(groups, key=first.get) and len(groups) == len(names)


def test_a_group_attacked_at_two_budgets_is_two_columns_and_a_note(tmp_path):
    weak = model_rows(tmp_path, "AT", "a" * 64, {"pgd": ([1, 1, 0, 0], PIXEL), "gridadv": ([1, 0, 1, 0], SPATIAL)})
    strong = model_rows(tmp_path, "SRT", "b" * 64, {"pgd": ([1, 0, 0, 0], {"epsilon": 0.2}),
                                                    "gridadv": ([1, 1, 1, 0], SPATIAL)})
    table = tables.build(collect(tmp_path, weak, strong), "threats")
    assert threat_headers(table) == ["pixel ℓ∞ ε 0.1", "pixel ℓ∞ ε 0.2", "spatial 30°, 3 px"]
    assert table.cell("fashion-mnist", "AT", "pixel ℓ∞ ε 0.2").value is None
    assert table.cell("fashion-mnist", "SRT", "pixel ℓ∞ ε 0.1").value is None
    assert any("several budgets" in n and "ε 0.1 (1 model)" in n and "ε 0.2 (1 model)" in n for n in table.notes)
    # each model's mean is over its own pixel-wise column and the spatial one
    assert table.cell("fashion-mnist", "SRT", profile.MEAN).value == pytest.approx((25.0 + 75.0) / 2)
    assert table.cell("fashion-mnist", "AT", profile.MIN).value == 50.0


def test_without_side_files_a_cell_is_the_lowest_row_and_a_note_says_so(tmp_path):
    bare = model_rows(tmp_path, "AT", "a" * 64, AT, side_files=False)
    table = tables.build(collect(tmp_path, bare), "threats")
    assert table.cell("fashion-mnist", "AT", "pixel ℓ∞ ε 0.1").value == 75.0  # min(fgsm 75, pgd 75)
    assert table.cell("fashion-mnist", "AT", "spatial 30°, 3 px").value == 62.5
    fallbacks = [n for n in table.notes if "lowest accuracy" in n]
    assert len(fallbacks) == 3 and all(n.startswith("AT: ") for n in fallbacks)


def test_a_model_missing_a_threat_has_no_mean_and_a_note_says_why(tmp_path):
    pixel_only = model_rows(tmp_path, "AT", "a" * 64, {"pgd": ([1, 0], PIXEL)})
    both = model_rows(tmp_path, "SRT", "b" * 64, {"pgd": ([1, 1], PIXEL), "gridadv": ([1, 0], SPATIAL)})
    table = tables.build(collect(tmp_path, pixel_only, both), "threats")
    assert table.cell("fashion-mnist", "AT", profile.MEAN).value is None
    assert table.cell("fashion-mnist", "SRT", profile.MEAN).value == 75.0
    assert profile.INCOMPLETE in table.notes


def test_published_numbers_and_unregistered_attacks_are_left_out_with_a_note(two_models):
    published = results.collect([tables.PAPER_DIR / "table4.csv"])
    mine = two_models.head(1).assign(attack="my-attack")
    table = tables.build(pd.concat([two_models, published, mine], ignore_index=True), "threats")
    assert [r.label for g in table.groups for r in g.rows] == ["AT", "SRT"]
    assert any("published numbers" in n for n in table.notes)
    assert any("my-attack" in n and "registry" in n for n in table.notes)


# ---------------------------------------------------------------- every format, hostile labels


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The figures the plots save, kept open to read what they draw (saved as ever)."""
    figures: list = []
    save = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, out: (figures.append(fig), save(fig, out))[1])
    return figures


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return write_raw(folder / "ours.csv", _hostile_rows())


@pytest.mark.parametrize("fmt", list(PARSERS))
def test_hostile_labels_render_inert_in_every_format(hostile, fmt):
    out = run("table", hostile, "--layout", "threats", "--format", fmt)
    assert out.exit_code == 0, out.output
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", out.output)  # no escape sequence, no ESC
    table = tables.build(results.collect([hostile]), "threats")
    header, rows, headings = PARSERS[fmt](out.output)
    width = len(table.columns) + 1
    assert len(header) == width and all(len(r) == width for r in rows), (header, rows)
    assert len(rows) == sum(len(g.rows) for g in table.groups)
    assert {r[0].strip() for r in rows} == {s.strip() for s in _expected_labels("table")}
    assert "pixel ℓ∞ (budget not recorded)" in header  # the rows record no budget: said, not guessed


def test_hostile_labels_are_drawn_literally(hostile, tmp_path, drawn):
    data = plots.threats(results.collect([hostile]), tmp_path / "fig")
    ticks = [t.get_text() for ax in drawn[0].axes for t in ax.get_xticklabels()]
    assert ticks == [plots.literal(label) for models in data.values() for label in models]
    assert (tmp_path / "fig.png").stat().st_size > 0


# ---------------------------------------------------------------- the plot draws the table's numbers


def test_plot_bars_are_the_tables_numbers(two_models, tmp_path, drawn):
    data = plots.threats(two_models, tmp_path / "fig")
    table = tables.build(two_models, "threats")
    shown = [c.header for c in table.columns if c.kind in ("threat", "mean")]
    assert data == {"fashion-mnist": {label: {h: table.cell("fashion-mnist", label, h).value for h in shown}
                                      for label in ("AT", "SRT")}}
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in drawn[0].axes[0].containers}
    assert bars == {plots.literal(h): [data["fashion-mnist"][lb][h] for lb in ("AT", "SRT")] for h in shown}
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_plot_threats_command_writes_the_png(two_models, tmp_path):
    out = run("plot", "threats", tmp_path / "r.csv", "--out", tmp_path / "threats")
    assert out.exit_code == 0, out.output
    assert (tmp_path / "threats.png").stat().st_size > 1000 and "wrote" in out.output


def test_missing_values_are_gaps_not_zero_bars(tmp_path, drawn):
    pixel_only = model_rows(tmp_path, "AT", "a" * 64, {"pgd": ([1, 0], PIXEL)})
    both = model_rows(tmp_path, "SRT", "b" * 64, {"pgd": ([1, 1], PIXEL), "gridadv": ([1, 0], SPATIAL)})
    plots.threats(collect(tmp_path, pixel_only, both), tmp_path / "fig")
    spatial = next(c for c in drawn[0].axes[0].containers if c.get_label().startswith("spatial"))
    assert math.isnan(spatial.patches[0].get_height()) and spatial.patches[1].get_height() == 50.0


# ---------------------------------------------------------------- the shipped results


def test_the_shipped_results_render_as_a_threat_profile(monkeypatch):
    monkeypatch.chdir(shipped.tree())  # the tracked files, as a fresh clone holds them
    out = run("table", "results/", "--layout", "threats", "--format", "markdown")
    assert out.exit_code == 0, out.output
    table = tables.build(results.collect(["results/"]), "threats")
    labels = [r.label for g in table.groups for r in g.rows]
    assert len(labels) >= 10 and not any("paper" in lb for lb in labels)
    body = [ln for ln in out.output.splitlines() if ln.startswith("| ")]
    assert len(body) == 2 + len(labels) + len(table.groups)  # header and rule, every model, a heading per dataset
    assert {"pixel ℓ∞ ε 0.1", "spatial 30°, 3 px"} <= set(threat_headers(table))
    complete = [r for g in table.groups for r in g.rows if r.cells[-1].value is not None]
    assert complete  # some shipped models were attacked with every threat: their mean and min are shown
