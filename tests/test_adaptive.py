"""Adaptive attacks (issue 22), each against the broken defense of `srtbench/broken.py` (`--model zoo:NAME`) it is
meant for: `attack[eot=N]` for a model random at inference (each gradient averaged over N passes, an example broken
when most of N fresh passes misclassify it; AutoAttack's randomized version), `attack[bpda=identity]` for a
non-differentiable input transform, `transfer` for a model whose own gradients are cut."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from srtbench import results
from srtbench.attacks import battery, build
from srtbench.attacks.eot import ExpectedModel, vote
from srtbench.broken import BROKEN, wrap
from srtbench.cli import main
from srtbench.errors import SrtbenchError
from tests import shipped

DATASET = "fashion-mnist"


class Scripted(nn.Module):
    """Answers pass i with the classes of row i of `script` (one row per pass), whatever the input."""

    def __init__(self, script: list[list[int]]):
        super().__init__()
        self.script, self.calls = torch.tensor(script), 0

    def forward(self, x):
        row = self.script[self.calls % len(self.script)]
        self.calls += 1
        return nn.functional.one_hot(row[: len(x)], 10).float() * 5


def test_an_example_is_broken_when_most_fresh_passes_misclassify_it():
    # example 0: 3 of 5 passes say 7 (broken); 1: 2 of 5 wrong (kept); 2: wrong 3 times, split 4/4/5 (broken: 4)
    script = [[7, 1, 4], [7, 2, 4], [7, 1, 5], [0, 1, 2], [0, 3, 2]]
    pred = vote(Scripted(script), torch.zeros(3, 1, 4, 4), torch.tensor([0, 1, 2]), 5, 8, torch.device("cpu"))
    assert pred.tolist() == [7, 1, 4]


def test_the_expected_model_averages_probabilities_over_its_passes():
    model = ExpectedModel(Scripted([[1], [2]]), 2)
    probs = model(torch.zeros(1, 1, 4, 4)).exp()
    assert probs[0, 1] == pytest.approx(probs[0, 2]) and probs.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_eot_is_recorded_only_where_it_changes_the_attack():
    assert build("pgd[eot=1]", DATASET).params == build("pgd", DATASET).params
    assert build("pgd[eot=4]", DATASET).params["eot"] == 4 and build("randadv[eot=4]", DATASET).eot == 4
    with pytest.raises(SrtbenchError, match="at least 1 pass"):
        build("pgd[eot=0]", DATASET)


def test_autoattack_under_eot_is_its_randomized_version():
    import torchattacks as ta

    atk = build("autoattack[eot=5]", DATASET)
    parts = atk.algorithm.components(nn.Linear(1, 10), 10, 0, atk.eot)
    assert [type(p) for p in parts] == [ta.APGD, ta.APGD] and [p.loss for p in parts] == ["ce", "dlr"]
    assert all(p.eot_iter == 5 for p in parts)


@pytest.mark.parametrize("name", BROKEN.names())
def test_every_broken_defense_wraps_a_model_and_keeps_its_output_shape(name, trained_cnn, test_batch):
    x = test_batch[0][:4]
    with torch.no_grad():
        assert wrap(name, trained_cnn)(x).shape == (4, 10)


def test_eot_brings_a_noisy_model_far_below_what_plain_pgd_reports(tmp_path):
    """The noisy broken defense: plain PGD follows one draw of the noise per step and overestimates; PGD with EOT
    (gradients averaged over 8 passes, success voted by 8 fresh passes) finds at least 10 points more."""
    out = tmp_path / "r.csv"
    ran = CliRunner().invoke(main, ["evaluate", str(shipped.tree() / "models" / "fmnist-standard.pt"), "--model",
                                    "zoo:noisy", "--attacks", "pgd[steps=20,step_size=0.01],"
                                    "pgd[steps=20,step_size=0.01,eot=8]", "--n", "48", "--no-sanity", "--out",
                                    str(out)])
    assert ran.exit_code == 0, ran.output
    rows = results.read(out)
    with_eot = rows["attack_params"].str.contains('"eot"')
    plain, eot = rows[~with_eot]["robust_acc"].iloc[0], rows[with_eot]["robust_acc"].iloc[0]
    assert eot <= plain - 10, (plain, eot)


def test_an_unknown_broken_defense_is_a_one_line_error(tmp_path):
    ran = CliRunner().invoke(main, ["evaluate", str(shipped.tree() / "models" / "fmnist-standard.pt"), "--model",
                                    "zoo:fog", "--attacks", "fgsm", "--n", "4", "--out", str(tmp_path / "r.csv")])
    assert ran.exit_code != 0 and "unknown broken defense 'fog'" in ran.output and "noisy" in ran.output


def test_the_deterministic_flag_names_eot_with_a_count_from_the_spread(trained_cnn, test_batch):
    from srtbench import checks

    x = test_batch[0][:64]
    assert checks.deterministic(trained_cnn, x)["status"] == "PASS"
    flag = checks.deterministic(wrap("noisy", trained_cnn), x)
    n = checks.eot_samples(torch.stack([wrap("noisy", trained_cnn)(x).detach() for _ in range(8)]))
    assert flag["status"] == "WARN" and "pgd[eot=" in flag["detail"] and 2 <= n <= 100
    steady = torch.stack([torch.tensor([[4.0, 1.0]]) + 0.01 * i for i in range(8)])  # a spread far below the margin
    assert checks.eot_samples(steady) == 2


# ---------------------------------------------------------------- BPDA: a transform's backward pass replaced


def test_bpda_keeps_the_forward_pass_and_passes_the_identity_gradient(trained_cnn, test_batch):
    from srtbench.attacks.bpda import straight_through

    model, x = wrap("quantized", trained_cnn), test_batch[0][:4].clone().requires_grad_(True)
    with torch.no_grad():
        before = model(x)
    model(x).sum().backward()
    assert x.grad.abs().sum() == 0  # rounding has no gradient
    x.grad = None
    with straight_through(model, "identity"):
        assert torch.equal(model(x), before)  # the same forward pass
        model(x).sum().backward()
    assert x.grad.abs().sum() > 0
    assert "preprocess" not in model.__dict__  # the class's own transform is back


def test_bpda_sees_through_the_gradient_masking_of_quantized_inputs(tmp_path):
    """Input quantization (5 levels) zeroes PGD's gradient: plain PGD leaves most examples standing.  PGD with the
    identity as the quantizer's backward pass removes that masking, down to what 5-level quantization really
    withstands at ε 0.1 (its steps of 0.25 let only pixels near a threshold move: about 44% on these images with
    100 steps of either size, above the plain model's 17%)."""
    ckpt, out = str(shipped.tree() / "models" / "fmnist-standard.pt"), tmp_path / "r.csv"
    spec = "pgd[steps=20,step_size=0.01]"
    for extra, attacks in ((["--model", "zoo:quantized"], f"{spec},pgd[steps=20,step_size=0.01,bpda=identity]"),
                           ([], spec)):
        ran = CliRunner().invoke(main, ["evaluate", ckpt, *extra, "--attacks", attacks, "--n", "48", "--no-sanity",
                                        "--out", str(out)])
        assert ran.exit_code == 0, ran.output
    rows = results.read(out)
    bpda = rows["attack_params"].str.contains("bpda")
    wrapped = rows["model"].str.contains("zoo:quantized")
    plain, through, undefended = (rows[m]["robust_acc"].iloc[0] for m in (wrapped & ~bpda, wrapped & bpda, ~wrapped))
    assert plain > undefended + 30 and through <= plain - 20 and through >= undefended, (plain, through, undefended)


def test_bpda_on_a_model_without_a_preprocess_is_a_one_line_error(trained_cnn, test_batch):
    with pytest.raises(SrtbenchError, match="declares its input transform"):
        build("pgd[bpda=identity]", DATASET)(trained_cnn, test_batch[0][:2], test_batch[1][:2])


# ---------------------------------------------------------------- transfer: a surrogate's gradients


def test_transfer_breaks_a_model_whose_input_is_detached_as_if_it_were_undefended(tmp_path):
    """PGD on the detached model gets no gradient and reports its clean accuracy; PGD on the dataset's shipped
    standard model (the default surrogate, here the undefended model itself) lands within 5 points of PGD on it."""
    ckpt, out = str(shipped.tree() / "models" / "fmnist-standard.pt"), tmp_path / "r.csv"
    for extra, attacks in ((["--model", "zoo:detached"], "pgd,transfer"), ([], "pgd")):
        ran = CliRunner().invoke(main, ["evaluate", ckpt, *extra, "--attacks", attacks, "--n", "48", "--no-sanity",
                                        "--out", str(out)])
        assert ran.exit_code == 0, ran.output
    rows = results.read(out)
    wrapped = rows["model"].str.contains("zoo:detached")
    masked = rows[wrapped & (rows["attack"] == "pgd")]["robust_acc"].iloc[0]
    transfer = rows[wrapped & (rows["attack"] == "transfer")]["robust_acc"].iloc[0]
    undefended = rows[~wrapped]["robust_acc"].iloc[0]
    assert masked > undefended + 30 and abs(transfer - undefended) <= 5, (masked, transfer, undefended)
    # the indicator: transfer stronger than white-box PGD, on the detached model's rows
    flags = json.loads(rows[wrapped & (rows["attack"] == "pgd")]["flags"].iloc[0])
    assert flags["order_pgd_vs_transfer"]["status"] == "WARN", flags


def test_transfer_without_a_shipped_surrogate_asks_for_one():
    with pytest.raises(SrtbenchError, match="surrogate=CKPT"):
        build("transfer", "mnist")
    cifar = torch.rand(2, 3, 32, 32)  # a surrogate of another dataset is one line, not a shape error
    with pytest.raises(SrtbenchError, match="takes fashion-mnist images"):
        build("transfer[surrogate=models/fmnist-standard.pt]", "cifar10")(nn.Identity(), cifar, torch.zeros(2).long())
    assert "transfer" not in battery()  # `--attacks all` needs no second model


# ---------------------------------------------------------------- indicators of attack failure (model-level)


@pytest.mark.parametrize("name,fires", [("saturated", "input_gradients"), ("quantized", "input_gradients"),
                                        ("detached", "input_gradients"), ("softmax", "probabilities")])
def test_an_indicator_fires_on_the_broken_defense_it_describes(name, fires, trained_cnn, test_batch):
    from srtbench import checks

    x = test_batch[0][:64]
    with torch.no_grad():
        pred = trained_cnn(x).argmax(1)
    found = {"input_gradients": checks.input_gradients(wrap(name, trained_cnn), x, pred),
             "probabilities": checks.probabilities(wrap(name, trained_cnn), x)}
    assert found[fires]["status"] == "WARN", found
    honest = {"input_gradients": checks.input_gradients(trained_cnn, x, pred),
              "probabilities": checks.probabilities(trained_cnn, x)}
    assert all(f["status"] == "PASS" for f in honest.values()), honest
