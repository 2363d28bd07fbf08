"""Sanity flags: each check passes on a sound case and warns, with its numbers, on a broken one."""

from __future__ import annotations

import torch
from torch import nn

from srtbench import checks
from srtbench.attacks import build


def test_zero_budget_needs_exact_clean_accuracy():
    assert checks.zero_budget(80.0, 80.0, 64)["status"] == "PASS"
    flag = checks.zero_budget(80.0, 78.5, 64)
    assert flag["status"] == "WARN" and "78.50%" in flag["detail"] and "80.00%" in flag["detail"]


class _AlwaysTrain(nn.Module):
    """Dropout that stays on in eval mode: the kind of model that fools an evaluation."""

    def __init__(self, model):
        super().__init__()
        self.model, self.drop = model, nn.Dropout(0.5)

    def forward(self, x):
        return self.model(nn.functional.dropout(x, 0.5, training=True))


def test_deterministic_catches_a_stochastic_model(tiny_cnn, test_batch):
    x = test_batch[0][:16]
    assert checks.deterministic(tiny_cnn, x)["status"] == "PASS"
    assert checks.deterministic(_AlwaysTrain(tiny_cnn), x)["status"] == "WARN"


def test_in_neighborhood_and_reclassified_count_the_offenders():
    assert checks.in_neighborhood(torch.tensor([True, True]))["status"] == "PASS"
    flag = checks.in_neighborhood(torch.tensor([True, False, False]))
    assert flag["status"] == "WARN" and flag["detail"].startswith("2 of 3")
    assert checks.reclassified(torch.tensor([1, 2]), torch.tensor([1, 2]))["status"] == "PASS"
    assert checks.reclassified(torch.tensor([1, 2]), torch.tensor([1, 3]))["detail"].startswith("1 of 2")


def test_lemma1_fails_when_the_attack_was_not_aimed_at_the_prediction():
    label, clean = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 5])
    assert checks.lemma1(clean, torch.tensor([0, 3, 5]), label)["status"] == "PASS"
    # consistent by construction for any predictions: Lemma 1 is an identity of indicator functions
    assert checks.lemma1(clean, torch.tensor([2, 1, 2]), label)["status"] == "PASS"


def test_monotone_budget_tolerates_one_example_of_noise():
    assert checks.monotone_budget({0.2: 60.0, 0.6: 40.0, 1.0: 20.0}, 100)["status"] == "PASS"
    assert checks.monotone_budget({0.2: 60.0, 1.0: 61.0}, 100)["status"] == "PASS"
    flag = checks.monotone_budget({0.2: 60.0, 1.0: 65.0}, 100)
    assert flag["status"] == "WARN" and "1: 65.0" in flag["detail"]


def test_attack_order_and_gradient_masking_compare_accuracies():
    assert checks.attack_order("pgd", 30.0, "fgsm", 45.0, 200)["status"] == "PASS"
    assert checks.attack_order("pgd", 50.0, "fgsm", 45.0, 200)["status"] == "WARN"
    assert checks.gradient_masking("pgd", 30.0, 50.0, 64)["status"] == "PASS"
    flag = checks.gradient_masking("pgd", 60.0, 40.0, 64)
    assert flag["status"] == "WARN" and "masked" in flag["detail"]


def test_compound_must_cover_its_part_per_example():
    part = torch.tensor([True, False, True])
    assert checks.compound_dominates("pgd+", "pgd", torch.tensor([True, True, True]), part)["status"] == "PASS"
    flag = checks.compound_dominates("pgd+", "pgd", torch.tensor([True, True, False]), part)
    assert flag["status"] == "WARN" and flag["detail"].startswith("1 examples")


class _Quantized(nn.Module):
    """Rounds its input to 8 levels: zero gradients everywhere, the textbook gradient masking."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 7) / 7 + 0 * x)  # differentiable, with zero gradient


def test_unbounded_pgd_flags_a_gradient_masked_model(trained_cnn, test_batch):
    x, y = test_batch[0][:32], test_batch[1][:32]
    for model, expect in ((trained_cnn, "PASS"), (_Quantized(trained_cnn), "WARN")):
        atk = build("pgd[epsilon=1.0,step_size=0.1,steps=20]", "fashion-mnist")
        with torch.no_grad():
            pred = model(x).argmax(1)
        x_adv = atk(model, x, pred, torch.Generator().manual_seed(0)).x_adv
        with torch.no_grad():
            adv = model(x_adv).argmax(1)
        acc = 100 * ((adv == y) & (pred == y)).float().mean().item()
        assert checks.unbounded_pgd(acc, 10, len(x))["status"] == expect, acc
