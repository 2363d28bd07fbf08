"""An evaluation a defense cannot fool (issue 22): the binarization test, the indicators of attack failure (each made
to fire by the case it describes, and quiet on the honest shipped model), the diagnosis of every broken defense of
`srtbench/broken.py`, and `srtbench audit` end to end."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from srtbench import checks
from srtbench.attacks import Attack, AttackOutput, BuiltAttack, attack_info, build
from srtbench.broken import BROKEN, wrap
from srtbench.cli import main
from srtbench.indicators.battery import not_binarizable
from srtbench.indicators.binarization import Binarized, applicable, binarization_test
from srtbench.indicators.diagnosis import diagnose
from srtbench.indicators.paths import path_indicators
from srtbench.indicators.reruns import Subset, non_convergence, restarts, transfer_stronger
from srtbench.indicators.rounding import on_grid
from srtbench.maximizers import predict
from tests import shipped

DATASET = "fashion-mnist"
QUICK_PGD = "pgd[steps=10,step_size=0.02]"


def _subset(model, x, atk) -> Subset:
    clean = predict(model, x)
    out = atk(model, x, clean)
    return Subset(model, x, clean, torch.arange(len(x)), predict(model, out.x_adv) != clean, 0, 64,
                  torch.device("cpu"))


# ---------------------------------------------------------------- the binarization test


def test_pgd_passes_the_binarization_test_on_the_honest_model(trained_cnn, test_batch):
    x = test_batch[0][:24]
    test = binarization_test(trained_cnn, build("pgd", DATASET), x, predict(trained_cnn, x), torch.arange(24), 0, 10)
    assert int(test.feasible.sum()) == 24
    assert int(test.passed.sum()) >= 23  # 95%


def test_an_attack_too_weak_to_reach_the_planted_region_fails_it(trained_cnn, test_batch):
    x = test_batch[0][:16]
    weak = build("pgd[steps=2,step_size=0.001]", DATASET)  # moves at most 0.002 of its ε = 0.1
    test = binarization_test(trained_cnn, weak, x, predict(trained_cnn, x), torch.arange(16), 0, 10)
    assert int(test.feasible.sum()) == 16 and int(test.passed.sum()) <= 2
    flag = checks.binarization(int(test.passed.sum()), int(test.feasible.sum()), 16)
    assert flag["status"] == "WARN"


def test_the_planted_readout_keeps_the_clean_label_and_flips_a_point_inside_the_ball(trained_cnn, test_batch):
    """What makes the test sound: x keeps C(x), and some point of N(x) is adversarial, for every example."""
    from srtbench.indicators.binarization import _binarized, candidates
    from srtbench.neighborhoods import ExampleRNG

    atk = build("pgd", DATASET)
    nb = atk.algorithm.neighborhood
    for i in range(6):
        xi = test_batch[0][i:i + 1]
        c = int(predict(trained_cnn, xi))
        cand = candidates(nb, xi, ExampleRNG(0, [i]))
        assert bool(nb.contains_image(xi.expand_as(cand), cand).all())
        b = _binarized(trained_cnn, xi, cand, c, 10, 1)
        assert isinstance(b, Binarized)
        with torch.no_grad():
            assert int(b(xi).argmax(1)) == c
            assert bool((b(cand).argmax(1) != c).any())


def test_bpda_passes_where_plain_pgd_fails_behind_quantization(trained_cnn, test_batch):
    model, x = wrap("quantized", trained_cnn), test_batch[0][:12]
    clean = predict(model, x)
    plain = binarization_test(model, build(QUICK_PGD, DATASET), x, clean, torch.arange(12), 0, 10)
    bpda = binarization_test(model, build(QUICK_PGD[:-1] + ",bpda=identity]", DATASET), x, clean,
                             torch.arange(12), 0, 10)
    assert int(plain.passed.sum()) <= 2 < 11 <= int(bpda.passed.sum())


def test_the_test_applies_only_where_the_output_is_the_last_linear_layers(trained_cnn, test_batch):
    x = test_batch[0][:4]
    assert applicable(trained_cnn, x) == ""
    assert "not its last nn.Linear" in applicable(wrap("softmax", trained_cnn), x)
    assert "no nn.Linear" in applicable(nn.Sequential(nn.Flatten(), nn.Identity()), x)
    assert "no threat set" in not_binarizable(build("jsma", DATASET), trained_cnn, x)


# ---------------------------------------------------------------- indicators of attack failure


def test_too_few_steps_is_non_convergence_and_enough_is_not(trained_cnn, test_batch):
    x = test_batch[0][:40]
    short = build("pgd[steps=2,step_size=0.01]", DATASET)
    found = non_convergence(short, _subset(trained_cnn, x, short), DATASET, 1.0, None)
    assert checks.indicator_non_convergence(int(found.sum()), 40, 40)["status"] == "WARN"
    full = build("pgd", DATASET)
    found = non_convergence(full, _subset(trained_cnn, x, full), DATASET, 1.0, None)
    assert checks.indicator_non_convergence(int(found.sum()), 40, 40)["status"] == "PASS"


def test_a_single_random_draw_is_bad_initialisation(trained_cnn, test_batch):
    x = test_batch[0][:64]
    lucky = build("randadv[k=1]", DATASET)  # one random rotation and translation: another draw breaks others
    found = restarts(lucky, _subset(trained_cnn, x, lucky))
    assert checks.indicator_restarts(int(found.sum()), 64, 64)["status"] == "WARN"
    assert restarts(build("fgsm", DATASET), _subset(trained_cnn, x[:4], build("fgsm", DATASET))) is None


def test_transfer_beats_white_box_pgd_behind_quantization_only(trained_cnn, test_batch):
    x = test_batch[0][:64]
    pgd = build(QUICK_PGD, DATASET)
    masked = transfer_stronger(pgd, _subset(wrap("quantized", trained_cnn), x, pgd), DATASET, 1.0, None)
    honest = transfer_stronger(pgd, _subset(trained_cnn, x, pgd), DATASET, 1.0, None)
    assert checks.indicator_transfer_stronger(int(masked.sum()), 64, 64)["status"] == "WARN"
    assert checks.indicator_transfer_stronger(int(honest.sum()), 64, 64)["status"] == "PASS"


class ForgetsWhatItFound(Attack):
    """PGD that returns x itself: it visits adversarial points but keeps none (a silent success)."""

    def __init__(self):
        self.pgd = build(QUICK_PGD, DATASET).algorithm

    def __call__(self, model, x, target, gen=None):
        self.pgd(model, x, target, gen)
        return AttackOutput(x, torch.ones(len(x), dtype=torch.bool), torch.full((len(x),), float("nan")))


def test_a_found_then_lost_adversarial_example_is_a_silent_success(trained_cnn, test_batch):
    x = test_batch[0][:8]
    clean = predict(trained_cnn, x)
    forgetful = BuiltAttack("pgd", ForgetsWhatItFound(), attack_info("pgd"), {}, {"epsilon": 0.1}, {})
    path = path_indicators(trained_cnn, forgetful, x, clean, torch.arange(8), 0, torch.zeros(8, dtype=torch.bool))
    assert checks.silent_success(int(path.silent.sum()), 8)["status"] == "WARN"
    honest = build(QUICK_PGD, DATASET)
    s = _subset(trained_cnn, x, honest)
    path = path_indicators(trained_cnn, honest, x, clean, torch.arange(8), 0, s.broken)
    assert int(path.silent.sum()) == 0 and checks.silent_success(0, 8)["status"] == "PASS"


def test_a_loss_that_never_rises_is_flat_behind_quantization(trained_cnn, test_batch):
    x = test_batch[0][:16]
    pgd = build(QUICK_PGD, DATASET)
    for model, status in ((wrap("quantized", trained_cnn), "WARN"), (trained_cnn, "PASS")):
        s = _subset(model, x, pgd)
        path = path_indicators(model, pgd, x, s.clean, s.index, 0, s.broken)
        assert checks.flat_loss(int(path.flat.sum()), int((~s.broken).sum()))["status"] == status


class GridSensitive(nn.Module):
    """Class 0 on the 8-bit grid, class 1 anywhere off it: every float perturbation is adversarial, no stored
    image is."""

    def forward(self, x):
        off = ((x * 255 - (x * 255).round()).abs().flatten(1).amax(1) > 1e-3).float()
        return torch.stack([1 - off, off], 1)


def test_rounding_to_8_bits_stays_inside_the_budget_and_undoes_float_only_examples(test_batch):
    x = test_batch[0][:16]
    atk = build("pgd", DATASET)
    x_adv = (x + 0.1 * (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) - 1)).clamp(0, 1)
    grid = on_grid(atk, x, x_adv)
    assert torch.allclose(grid * 255, (grid * 255).round(), atol=1e-4)
    assert float((grid - x).abs().max()) <= 0.1 + 1e-6
    model = GridSensitive()
    broken = predict(model, x_adv) != predict(model, x)
    lost = broken & (predict(model, grid) == predict(model, x))
    assert checks.eight_bit(int(lost.sum()), int(broken.sum()))["status"] == "WARN"


# ---------------------------------------------------------------- diagnosis and audit

CAUSES = {"quantized": "non-differentiable input transform", "jpeg": "non-differentiable input transform",
          "noisy": "random at inference", "resize-pad": "random at inference", "saturated": "saturated logits",
          "detached": "no gradient reaches the input", "softmax": "probability outputs"}


@pytest.mark.parametrize("name", BROKEN.names())
def test_the_diagnosis_names_the_cause_of_every_broken_defense(name, trained_cnn, test_batch):
    findings = diagnose(wrap(name, trained_cnn), test_batch[0][:64])
    assert [f.cause for f in findings] == [CAUSES[name]]
    assert findings[0].attacks


def test_the_shipped_models_show_no_cause():
    from srtbench import checkpoint, data

    x = data.load(DATASET, False, None).batch(torch.arange(64))[0]
    for path in sorted((shipped.tree() / "models").glob("fmnist-*.pt")):
        assert diagnose(checkpoint.load(path).build_model().eval(), x) == [], path.name


def _audit(tmp_path, *args):
    model = str(shipped.tree() / "models" / "fmnist-standard.pt")
    return CliRunner().invoke(main, ["audit", model, "--attacks", QUICK_PGD, "--n", "32", "--out",
                                     str(tmp_path / "audit.csv"), *args])


def test_audit_names_the_cause_and_its_remedy_beats_plain_pgd(tmp_path):
    import pandas as pd

    res = _audit(tmp_path, "--model", "zoo:quantized", "--no-sanity")  # the cause, not the sanity runs
    assert res.exit_code == 1, res.output
    assert "CAUSE non-differentiable input transform" in res.output and "pgd[bpda=identity]" in res.output
    rows = pd.read_csv(tmp_path / "audit.csv")
    bpda = rows["attack_params"].str.contains("bpda")
    assert rows.loc[bpda, "robust_acc"].iloc[0] < rows.loc[~bpda, "robust_acc"].iloc[0] - 10
    plain = next(line for line in res.output.splitlines() if "robust" in line and "bpda" not in line)
    assert "WARN binarization" in plain  # plain PGD fails the test


def test_audit_of_the_honest_model_finds_nothing(tmp_path):
    res = _audit(tmp_path)
    assert res.exit_code == 0, res.output
    assert "CAUSE" not in res.output and "VERDICT: no cause found" in res.output
