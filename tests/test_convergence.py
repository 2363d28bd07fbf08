"""The convergence verdict on held-out checks, and `srtbench plot convergence` on constructed metrics CSVs."""

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from srtbench.cli import main
from srtbench.convergence import FLAT_WITHIN, TAIL, verdict

NAN = math.nan


def run(*args):
    return CliRunner().invoke(main, list(args))


def metrics_csv(path, robust, clean=None):
    """A trainer metrics CSV with a held-out check where `robust` is not NaN, 100 steps per epoch."""
    n = len(robust)
    pd.DataFrame({"epoch": range(1, n + 1), "step": [100 * (i + 1) for i in range(n)], "lr": 0.1, "loss": 1.0,
                  "clean_acc": clean or [NAN if math.isnan(r) else 80.0 for r in robust],
                  "robust_acc": robust}).to_csv(path, index=False)
    return str(path)


def test_a_change_under_the_threshold_over_the_last_quarter_is_flat():
    v = verdict("at", [(1200, 60.0), (1800, 74.4), (2340, 80.0), (2400, 74.4 + FLAT_WITHIN / 2)])
    assert v.reference == (1800, 74.4) and v.word == "flat"
    assert v.line() == "at: robust 74.9 at step 2,400, +0.5 over its last 25% (steps 1,800→2,400): flat"


def test_a_change_of_the_threshold_or_more_is_rising_or_falling():
    assert verdict("a", [(1, 50.0), (4, 50.0 + FLAT_WITHIN)]).word == "rising"
    assert verdict("a", [(1, 50.0), (4, 50.0 - FLAT_WITHIN)]).word == "falling"


def test_checks_inside_the_tail_are_not_the_reference():
    """The trainer's final check can follow the last periodic one by a few steps: comparing those two would call
    any curve flat."""
    assert verdict("a", [(100, 10.0), (390, 60.0), (400, 60.2)]).word == "rising"  # 100 → 400, not 390 → 400
    assert verdict("a", [(100, 10.0), (300, 60.0), (400, 60.2)]).word == "flat"  # 300 = (1 - TAIL) · 400
    assert TAIL == 0.25


def test_a_step_decay_is_not_read_as_a_rise_the_held_phase_is():
    """AT at 4,800 steps: level at the held learning rate, then the decay's jump (+1.8 over the run's last 25%)."""
    rows = [(1170, 71.8), (2340, 75.0), (2730, 73.0), (3120, 75.0), (3510, 75.0), (3900, 75.6), (4680, 76.6),
            (4800, 76.8)]
    lrs = [0.05] * 5 + [0.005, 0.0005, 0.0005]
    assert verdict("at", rows).word == "rising"  # across the decay
    v = verdict("at", rows, lrs)
    assert v.decay == 3900 and v.reference == (2340, 75.0) and v.word == "flat"
    assert v.line() == ("at: robust 75.0 at step 3,510, before its learning rate first fell, +0.0 over that phase's "
                        "last 25% (steps 2,340→3,510): flat; 76.8 at step 4,800")
    rising = verdict("srt", [(1000, 60.0), (2340, 70.2), (3276, 73.2), (4800, 74.4)], [0.05, 0.05, 0.05, 0.0005])
    assert rising.word == "rising" and rising.change == 3.0


def test_only_a_held_learning_rate_that_falls_narrows_the_verdict():
    rows = [(100, 50.0), (200, 60.0), (300, 65.0), (400, 65.2)]
    assert verdict("warm-up", rows, [0.01, 0.05, 0.1, 0.05]).decay is None  # a cyclic schedule: the whole run
    assert verdict("early", rows, [0.1, 0.01, 0.01, 0.01]).decay is None  # one check before the fall
    assert verdict("constant", rows, [0.1] * 4).decay is None
    assert verdict("no checks", [(1, NAN)], [0.1]).decay is None


def test_rows_without_a_check_are_skipped():
    v = verdict("a", [(1, NAN), (2, 60.0), (3, NAN), (4, 65.0), (5, NAN)])
    assert v.checks == ((2, 60.0), (4, 65.0))
    assert v.change == 5.0 and v.word == "rising"
    assert "(steps 2→4)" in v.line()


def test_no_check_early_enough_gives_no_verdict():
    one, late, none = verdict("a", [(1, NAN), (2, 60.0)]), verdict("c", [(90, 50.0), (100, 60.0)]), \
        verdict("b", [(1, NAN)])
    assert one.word is None and late.word is None and none.word is None
    assert one.line() == "a: robust 60.0 at step 2, no held-out check at or before 75% of its steps: no verdict"
    assert none.line() == "b: no held-out check ran: no verdict"


def test_cli_draws_each_run_and_prints_a_verdict_per_run(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    metrics_csv(runs / "at.metrics.csv", [NAN, 60.0, 70.0, NAN, 70.3])
    metrics_csv(runs / "trades.metrics.csv", [NAN, 50.0, NAN, 60.0])
    out = run("plot", "convergence", str(runs), "--out", str(tmp_path / "fig"))
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[:2] == [
        "at: robust 70.3 at step 500, +0.3 over its last 25% (steps 300→500): flat",
        "trades: robust 60.0 at step 400, +10.0 over its last 25% (steps 200→400): rising",
    ]
    assert all((tmp_path / f"fig.{fmt}").stat().st_size > 1000 for fmt in ("png", "pdf"))
    assert out.output.splitlines()[-1].endswith("fig.values.csv (its numbers)")
    # the numbers behind the figure: every held-out check of every run, nothing else
    values = pd.read_csv(tmp_path / "fig.values.csv")
    assert list(values.columns) == ["run", "step", "clean_acc", "robust_acc", "lr", "check_n"]
    assert values["check_n"].isna().all()  # no checkpoint beside the metrics, no --check-n: size unknown
    assert values[["run", "step", "robust_acc"]].values.tolist() == [
        ["at", 200, 60.0], ["at", 300, 70.0], ["at", 500, 70.3], ["trades", 200, 50.0], ["trades", 400, 60.0]]


def test_a_change_inside_two_checks_sampling_noise_is_unresolved():
    """SRT's seed-0 reading: +3.0 points between two checks of 500 images near 72% is inside the 95% band of two
    binomial proportions (±5.6), so it says neither rising nor flat; the same change on 50,000 images is a rise, and
    without the size the verdict has no band (as before)."""
    rows, lrs = [(1000, 60.0), (2340, 70.2), (3276, 73.2), (4800, 74.4)], [0.05, 0.05, 0.05, 0.0005]
    v = verdict("srt", rows, lrs, n=500)
    band = 100 * 1.959964 * math.sqrt((0.702 * 0.298 + 0.732 * 0.268) / 500)
    assert v.noise == pytest.approx(band) and 5.5 < band < 5.7
    assert v.word == "unresolved"
    assert v.line() == ("srt: robust 73.2 at step 3,276, before its learning rate first fell, +3.0 ± 5.6 (500 images) "
                        "over that phase's last 25% (steps 2,340→3,276): unresolved; 74.4 at step 4,800")
    assert verdict("srt", rows, lrs, n=50_000).word == "rising"
    assert verdict("srt", rows, lrs).word == "rising" and verdict("srt", rows, lrs).noise is None
    # under FLAT_WITHIN stays flat, beyond the band falls, with the band known
    assert verdict("a", [(1, 70.0), (4, 70.0 + FLAT_WITHIN / 2)], n=500).word == "flat"
    assert verdict("a", [(1, 70.0), (4, 60.0)], n=500).word == "falling"


def test_packed_outcomes_read_back_as_written_and_anything_else_is_refused():
    import torch

    from srtbench.outcomes import pack, unpack

    for mask in (torch.zeros(0, dtype=torch.bool), torch.tensor([True]), torch.rand(500) < 0.7,
                 torch.ones(37, dtype=torch.bool), torch.zeros(64, dtype=torch.bool)):
        text = pack(mask)
        assert text.startswith(f"{len(mask)}:") and torch.equal(unpack(text), mask)
    for bad in ("", "500", "x:ff", "4:fg", "4:1f", "-1:0", "3:"):  # 4:1f sets bit 4 of four
        with pytest.raises(ValueError):
            unpack(bad)


def test_a_checks_accuracy_is_the_exact_share_of_its_outcomes():
    import torch

    from srtbench.outcomes import accuracy

    # 356 of 500 is 71.2 exactly; a float32 mean would give 71.20000147...
    assert accuracy(torch.arange(500) < 356) == 71.2
    assert accuracy(torch.ones(3, dtype=torch.bool)) == 100.0 and accuracy(torch.zeros(7, dtype=torch.bool)) == 0.0
    assert math.isnan(accuracy(torch.zeros(0, dtype=torch.bool)))


def paired_checks(first, gained, lost, n=500):
    """Two checks' per-image results on n images: `first` correct at the first, then `gained` images more and
    `lost` fewer."""
    import torch

    from srtbench.outcomes import pack

    a = torch.arange(n) < first
    b = a.clone()
    b[first:first + gained] = True
    b[:lost] = False
    return pack(a), pack(b), 100 * a.float().mean().item(), 100 * b.float().mean().item()


def test_two_checks_with_per_image_outcomes_are_compared_image_by_image():
    """The same +3.0 (351 → 366 of 500) is a rise where 15 images changed and all one way (McNemar p ≈ 6e-5), and
    unresolved where 65 gained and 50 lost (p ≈ 0.19), although the binomial band (±5.6) cannot tell the two
    apart; a check without outcomes falls back to the band."""
    from srtbench.tables.significance import mcnemar

    lrs = [0.05, 0.05, 0.05, 0.005]
    for gained, lost, word in ((15, 0, "rising"), (65, 50, "unresolved")):
        a, b, before, after = paired_checks(351, gained, lost)
        rows = [(100, 60.0), (900, before), (1200, after), (1400, 80.0)]
        v = verdict("srt", rows, lrs, n=500, outcomes=["", a, b, ""])
        assert v.change == pytest.approx(3.0) and v.word == word, (gained, lost, v.line())
        from srtbench.outcomes import unpack

        assert v.paired == (pytest.approx(mcnemar(unpack(a), unpack(b))), 500)
        assert f"+3.0 (McNemar p = {v.paired[0]:.2g}, 500 images)" in v.line()
        assert verdict("srt", rows, lrs, n=500, outcomes=["", "", b, ""]).word == "unresolved"  # the band
    a, b, before, after = paired_checks(351, 3, 0)  # +0.6: flat, whatever the test
    assert verdict("a", [(1, before), (4, after)], outcomes=[a, b]).word == "flat"
    a, b, before, after = paired_checks(351, 0, 40)  # -8.0, all one way
    assert verdict("a", [(1, before), (4, after)], outcomes=[a, b]).word == "falling"
    assert verdict("a", [(1, before), (4, after)], outcomes=[a, "garbage"]).paired is None


def test_unreadable_outcomes_fall_back_to_the_band_and_say_so():
    """A check whose outcomes cell does not unpack, or two checks of different sizes, cannot be paired: the verdict
    uses the band and its line names why, where a check that recorded none falls back in silence."""
    a, b, before, after = paired_checks(351, 0, 40)
    rows = [(1, before), (4, after)]
    for cells, why in (([a, "garbage"], "not a packed outcome vector"), ([a, paired_checks(9, 0, 0, n=20)[0]],
                                                                        "checks of 500 and 20 images")):
        v = verdict("a", rows, n=500, outcomes=cells)
        assert v.paired is None and v.noise is not None and why in v.line(), v.line()
        assert v.word == "falling"  # -8.0 is outside the ±5.9 band
    quiet = verdict("a", rows, n=500, outcomes=[a, ""])
    assert quiet.paired is None and "unreadable" not in quiet.line()


def test_a_redrawn_figure_keeps_the_per_image_outcomes(tmp_path):
    """The figure's values keep `robust_correct`, so the paired verdict survives the metrics file."""
    from srtbench.convergence import convergence

    a, b, before, after = paired_checks(351, 15, 0)
    path = tmp_path / "srt.metrics.csv"
    pd.DataFrame({"epoch": [1, 2, 3], "step": [100, 300, 400], "lr": 0.1, "clean_acc": 80.0,
                  "robust_acc": [50.0, before, after], "robust_correct": ["", a, b]}).to_csv(path, index=False)
    first = convergence([path], tmp_path / "fig")["srt"]
    assert first.word == "rising" and "McNemar" in first.line()
    path.unlink()
    assert convergence([path], tmp_path / "fig")["srt"].line() == first.line()


def test_the_check_size_comes_from_the_checkpoint_then_the_figure_then_check_n(tmp_path):
    """A run's checkpoint says how many images its checks scored (`train.check_size`); the figure's values keep it,
    so a redraw without the checkpoint or its metrics prints the same band; --check-n fills in for a run known
    nowhere, and a checkpoint's size wins over it."""
    import torch

    metrics_csv(tmp_path / "srt.metrics.csv", [60.0, 70.2, NAN, 73.2])
    metrics_csv(tmp_path / "at.metrics.csv", [60.0, 70.2, NAN, 73.2])
    torch.save({"format": "srtbench", "meta": {"train": {"check_size": 500}}}, tmp_path / "srt.pt")
    fig = str(tmp_path / "fig")
    out = run("plot", "convergence", str(tmp_path / "srt.pt"), str(tmp_path / "at.pt"), "--check-n", "50000",
              "--out", fig)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("srt: robust 73.2 at step 400, +3.0 ± 5.6 (500 images)") and "unresolved" in lines[0]
    assert "± 0.6 (50,000 images)" in lines[1] and lines[1].endswith("rising")
    values = pd.read_csv(tmp_path / "fig.values.csv")
    assert values.groupby("run")["check_n"].first().to_dict() == {"at": 50_000, "srt": 500}
    for name in ("srt.pt", "srt.metrics.csv", "at.metrics.csv"):
        (tmp_path / name).unlink()
    again = run("plot", "convergence", str(tmp_path / "srt.pt"), str(tmp_path / "at.pt"), "--out", fig)
    assert again.exit_code == 0 and again.output.splitlines()[:2] == lines[:2], again.output
    bad = run("plot", "convergence", str(tmp_path / "srt.pt"), "--check-n", "0", "--out", fig)
    assert bad.exit_code == 2 and "--check-n" in bad.output


def test_per_image_outcomes_give_the_check_size_without_reading_the_checkpoint(tmp_path, monkeypatch):
    """A run that kept its per-image outcomes carries its check size in them (`N:HEX`): the band is drawn from that
    count, with no checkpoint read, even where the checkpoint names another (a check_size past the test set)."""
    import torch

    from srtbench import checkpoint
    from srtbench.convergence import check_size

    a, b, before, after = paired_checks(210, 0, 0, n=300)
    path = tmp_path / "srt.metrics.csv"
    frame = pd.DataFrame({"step": [100, 400], "robust_acc": [before, after], "robust_correct": [float("nan"), b]})
    torch.save({"format": "srtbench", "meta": {"train": {"check_size": 500}}}, tmp_path / "srt.pt")
    monkeypatch.setattr(checkpoint, "read_torch_file", lambda path: pytest.fail("the checkpoint was read"))
    assert check_size(path, frame, default=7) == 300
    monkeypatch.undo()  # cells that do not unpack: the checkpoint's size, and without it the default
    junk = frame.assign(robust_correct=["", "junk"])
    assert check_size(path, junk, default=7) == 500
    (tmp_path / "srt.pt").unlink()
    assert check_size(path, junk, default=7) == 7


def test_cli_takes_files_and_folders_alike(tmp_path):
    path = metrics_csv(tmp_path / "at.metrics.csv", [60.0, NAN, NAN, 61.0])
    out = run("plot", "convergence", path, "--out", str(tmp_path / "fig"))
    assert out.exit_code == 0, out.output
    assert out.output.startswith("at: robust 61.0 at step 400, +1.0")


def test_bad_metrics_are_one_line_and_exit_2(tmp_path):
    no_step = tmp_path / "old.metrics.csv"
    pd.DataFrame({"epoch": [1], "robust_acc": [50.0]}).to_csv(no_step, index=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad, says in ((no_step, "missing step, clean_acc"), (tmp_path / "missing.csv", "not a readable metrics CSV"),
                      (empty, "no *.metrics.csv")):
        out = run("plot", "convergence", str(bad), "--out", str(tmp_path / "fig"))
        assert out.exit_code == 2, out.output
        assert len(out.output.strip().splitlines()) == 1 and says in out.output, out.output


def test_two_runs_of_one_name_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = [metrics_csv(tmp_path / d / "at.metrics.csv", [60.0, 61.0]) for d in ("a", "b")]
    out = run("plot", "convergence", *paths, "--out", str(tmp_path / "fig"))
    assert out.exit_code == 2 and "share a name" in out.output, out.output


def test_a_recipe_step_reads_the_metrics_its_checkpoints_trainings_wrote(tmp_path):
    """`PlotJob("convergence", checkpoints)`: each NAME.pt stands for NAME.metrics.csv, so the step depends on the
    trainings (their outputs) and prints each run's verdict."""
    from srtbench.recipes.jobs import PlotJob

    metrics_csv(tmp_path / "at.metrics.csv", [NAN, 60.0, 70.0, NAN, 70.3])
    lines = []
    PlotJob("convergence", (str(tmp_path / "at.pt"),), str(tmp_path / "convergence")).execute(lines.append)
    assert lines == ["at: robust 70.3 at step 500, +0.3 over its last 25% (steps 300→500): flat",
                     f"wrote {tmp_path / 'convergence'}.png and {tmp_path / 'convergence'}.pdf"]
    assert (tmp_path / "convergence.png").stat().st_size > 1000


def test_a_redrawn_figure_takes_a_run_whose_metrics_file_is_gone_from_the_checks_it_kept(tmp_path):
    """A clone holds results/, not runs/: the figure's values CSV (or another convergence figure's in its folder)
    stands in for a missing metrics file; a run kept nowhere is still an error."""
    from srtbench.convergence import convergence, drawable
    from srtbench.errors import SrtbenchError

    metrics_csv(tmp_path / "at.metrics.csv", [NAN, 60.0, 70.0, NAN, 70.3])
    metrics_csv(tmp_path / "srt.metrics.csv", [50.0, 55.0, 60.0, 65.0, 70.0])
    figures = tmp_path / "figures"
    figures.mkdir()
    first = {k: v.line() for k, v in convergence([tmp_path / "at.pt", tmp_path / "srt.pt"], figures / "a").items()}
    (tmp_path / "at.metrics.csv").unlink()
    assert drawable(tmp_path / "at.pt", figures / "a") and drawable(tmp_path / "at.pt", figures / "b")
    assert not drawable(tmp_path / "at.pt", tmp_path / "elsewhere")
    again = {k: v.line() for k, v in convergence([tmp_path / "at.pt", tmp_path / "srt.pt"], figures / "a").items()}
    assert again == first
    other = convergence([tmp_path / "at.pt"], figures / "b")  # from figure a's values, in the same folder
    assert other["at"].line() == first["at"]
    (tmp_path / "srt.metrics.csv").unlink()
    with pytest.raises(SrtbenchError, match="srt.metrics.csv"):
        convergence([tmp_path / "srt.pt"], tmp_path / "elsewhere")


def test_the_equal_steps_table4_draws_its_first_seeds_convergence_early_and_every_runs_at_the_end():
    from srtbench import recipes

    steps = recipes.plan("table4", "cpu", protocol="steps", seeds=(0, 1))
    plots = [s for s in steps if s.kind == "plot"]
    trained = [s.output for s in steps if s.kind == "train" and "-s1" not in s.output]
    assert [p.job.kind_of_plot for p in plots] == ["convergence"] * 2 and list(plots[0].inputs) == trained
    # seven defenses, RT also on SRT's labeled batches, SRT at twice the steps and AT, TRADES, RT and SRT at half of
    # them (first seed)
    assert len(trained) == 13 and steps.index(plots[0]) > max(steps.index(s) for s in steps if s.output in trained)
    every = [s.output for s in steps if s.kind == "train"]  # both seeds', after the last of them
    assert list(plots[1].inputs) == every and len(every) == 21 and steps.index(plots[1]) > steps.index(plots[0])
    assert steps.index(plots[1]) > max(steps.index(s) for s in steps if s.kind == "train")
    assert not [s for s in recipes.plan("table4", "cpu", "epochs") if s.kind == "plot"]  # equal epochs: as before


def test_the_seeds_of_a_run_share_its_colour_and_differ_in_dash(tmp_path, monkeypatch):
    """A run's seeds (`NAME-sS`) are one colour in the figure, told apart by marker and dash; another run gets
    another colour."""
    from matplotlib import pyplot as plt

    from srtbench import plots
    from srtbench.convergence import convergence, family

    assert family("at-steps4800-s2") == ("at-steps4800", 2) and family("at-steps4800") == ("at-steps4800", 0)
    assert family("rt-lam1-b21-lr0.0082-steps4800") == ("rt-lam1-b21-lr0.0082-steps4800", 0)
    assert family("ds-s") == ("ds-s", 0)

    drawn = {}
    def keep(fig, out, values=None):
        drawn.update({line.get_label(): line for line in fig.axes[0].get_lines()})
        plt.close(fig)
        return []

    monkeypatch.setattr(plots, "save", keep)
    paths = [metrics_csv(tmp_path / f"{name}.metrics.csv", [60.0, 70.0]) for name in ("at", "at-s1", "srt", "srt-s1")]
    convergence(paths, tmp_path / "fig")
    assert drawn["at"].get_color() == drawn["at-s1"].get_color() != drawn["srt"].get_color()
    assert drawn["srt"].get_color() == drawn["srt-s1"].get_color()
    assert drawn["at"].get_linestyle() != drawn["at-s1"].get_linestyle()
    assert drawn["at"].get_marker() != drawn["at-s1"].get_marker()
