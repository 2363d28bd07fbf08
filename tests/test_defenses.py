"""Each objective equals its formula, computed here independently of srtbench.defenses."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srtbench import defenses
from srtbench.data import Batch
from srtbench.defenses import DEFENSES, DefenseParams
from srtbench.errors import SrtbenchError
from srtbench.maximizers import PGD, RandomSearch, cross_entropy, kl_to_clean
from srtbench.neighborhoods import NEIGHBORHOODS, Compound, PixelBall, Spatial, threat_parts


class TinyNet(nn.Module):
    """No dropout, no BatchNorm: train and eval mode agree, so formulas can be checked exactly."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 5, stride=3)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture
def net():
    return TinyNet()


@pytest.fixture
def batch():
    """Images with exact 0 and 1 pixels, like MNIST backgrounds: PGD must move those too."""
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(16, 1, 28, 28, generator=g) * 1.6 - 0.3).clamp(0, 1)
    return Batch(x[:6], torch.randint(0, 10, (6,), generator=g), x[6:])


PIXEL = PixelBall(0.1)


def params(name, threat="pixel", **kw):
    return DEFENSES.get(name).resolve(DefenseParams(**kw), threat, "fashion-mnist", 0.1)


def run(name, net, batch, n=PIXEL, seed=0, **kw):
    threat = {PixelBall: "pixel", Spatial: "spatial", Compound: "compound"}[type(n)]
    p = params(name, threat, **kw)
    return DEFENSES.get(name).objective(net, batch, n, p, torch.Generator().manual_seed(seed))


def hand_pgd(net, x, target, eps, alpha, steps, loss):
    """Algorithm 1 with per-step clipping to the image box, written out by hand, from x itself."""
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        g = torch.autograd.grad(loss(net(x_adv), target).sum(), x_adv)[0]
        x_adv = x_adv.detach() + alpha * g.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


def test_standard_is_cross_entropy_on_labeled(net, batch):
    out = run("standard", net, batch)
    assert torch.equal(out["loss"], F.cross_entropy(net(batch.x_labeled), batch.y_labeled))


def test_at_is_cross_entropy_at_hand_pgd_point(net, batch):
    out = run("at", net, batch, steps=5, step_size=0.03, start="none")
    x_adv = hand_pgd(net, batch.x_labeled, batch.y_labeled, 0.1, 0.03, 5, cross_entropy)
    expected = F.cross_entropy(net(x_adv), batch.y_labeled)
    assert torch.allclose(out["loss"], expected, atol=1e-5)
    assert out["loss"] > F.cross_entropy(net(batch.x_labeled), batch.y_labeled)


def test_srt_is_eq9_over_labeled_and_unlabeled(net, batch):
    lam = 0.7
    out = run("srt", net, batch, lam=lam, steps=4, step_size=0.03, start="none")
    x_mix = torch.cat([batch.x_labeled, batch.x_unlabeled])
    c = net(x_mix).argmax(1)
    x_adv = hand_pgd(net, x_mix, c, 0.1, 0.03, 4, cross_entropy)
    natural = F.cross_entropy(net(batch.x_labeled), batch.y_labeled)
    robust = F.cross_entropy(net(x_adv), c)
    assert torch.allclose(out["loss"], natural + lam * robust, atol=1e-5)
    assert torch.allclose(out["robust"], robust, atol=1e-5) and torch.allclose(out["natural"], natural)


def test_srt_default_start_is_official_gaussian_start(net, batch):
    out = run("srt", net, batch, steps=3, step_size=0.03, seed=5)
    x_mix = torch.cat([batch.x_labeled, batch.x_unlabeled])
    c = net(x_mix).argmax(1)
    theta = PGD(3, 0.03, "normal")(net, PIXEL, x_mix, c, cross_entropy, gen=torch.Generator().manual_seed(5))
    robust = F.cross_entropy(net(PIXEL.apply(x_mix, theta)), c)
    assert torch.allclose(out["robust"], robust, atol=1e-6)


def test_srt_without_unlabeled_equals_rt_exactly(net, batch):
    no_u = Batch(batch.x_labeled, batch.y_labeled, None)
    srt = run("srt", net, no_u, seed=3)
    grads_srt = torch.autograd.grad(srt["loss"], list(net.parameters()))
    rt = run("rt", net, batch, seed=3)  # rt never looks at the unlabeled images
    grads_rt = torch.autograd.grad(rt["loss"], list(net.parameters()))
    assert torch.equal(srt["loss"], rt["loss"])
    assert all(torch.equal(a, b) for a, b in zip(grads_srt, grads_rt))
    assert not torch.equal(run("srt", net, batch, seed=3)["loss"], rt["loss"])


def test_srt_code_weighting_is_one_weighted_mean(net, batch):
    lam = 0.2
    a = run("srt", net, batch, lam=lam, weighting="code", seed=2)
    b = run("srt", net, batch, lam=lam, seed=2)
    n_l, n_mix = len(batch.x_labeled), len(batch.x_labeled) + len(batch.x_unlabeled)
    expected = (n_l * b["natural"] + lam * n_mix * b["robust"]) / (n_l + n_mix)
    assert torch.allclose(a["loss"], expected, atol=1e-6)


def test_trades_is_ce_plus_beta_kl_at_kl_maximizer(net, batch):
    out = run("trades", net, batch, beta=3.0, steps=3, step_size=0.03, seed=4)
    x, y = batch.x_labeled, batch.y_labeled
    p = F.softmax(net(x), 1)
    theta = PGD(3, 0.03, "normal")(net, PIXEL, x, p.detach(), kl_to_clean, gen=torch.Generator().manual_seed(4))
    kl = (p * (p.log() - F.log_softmax(net(PIXEL.apply(x, theta)), 1))).sum(1).mean()
    assert torch.allclose(out["loss"], F.cross_entropy(net(x), y) + 3.0 * kl, atol=1e-5)


def test_trades_defaults_follow_appendix_e():
    assert params("trades").beta == 1.0
    assert DEFENSES.get("trades").resolve(DefenseParams(), "pixel", "cifar10", 0.031).beta == 6.0
    assert DEFENSES.get("uat").resolve(DefenseParams(), "pixel", "cifar10", 0.031).beta == 1.0
    assert params("uat").beta == 6.0


def test_uat_smooths_unlabeled_too_with_fixed_online_targets(net, batch):
    out = run("uat", net, batch, beta=2.0, steps=2, step_size=0.03, seed=6)
    x_all = torch.cat([batch.x_labeled, batch.x_unlabeled])
    p = F.softmax(net(x_all), 1).detach()
    theta = PGD(2, 0.03, "normal")(net, PIXEL, x_all, p, kl_to_clean, gen=torch.Generator().manual_seed(6))
    kl = (p * (p.log() - F.log_softmax(net(PIXEL.apply(x_all, theta)), 1))).sum(1).mean()
    natural = F.cross_entropy(net(batch.x_labeled), batch.y_labeled)
    assert torch.allclose(out["loss"], natural + 2.0 * kl, atol=1e-5)


def test_rst_trains_on_teacher_pseudo_labels(net, batch):
    teacher = TinyNet(seed=9)
    p = params("rst", beta=0.0)
    p.attach_teacher(teacher)
    out = DEFENSES.get("rst").objective(net, batch, PIXEL, p, torch.Generator().manual_seed(0))
    x = torch.cat([batch.x_labeled, batch.x_unlabeled])
    y = torch.cat([batch.y_labeled, teacher(batch.x_unlabeled).argmax(1)])
    assert torch.allclose(out["loss"], F.cross_entropy(net(x), y), atol=1e-6)


def test_rst_without_teacher_is_one_line_error(net, batch):
    with pytest.raises(SrtbenchError, match="--teacher"):
        run("rst", net, batch)


def test_worst_of_k_takes_worst_of_k_random_transforms(net, batch):
    n = Spatial()
    out = run("worst-of-k", net, batch, n=n, seed=7)
    x, y = batch.x_labeled, batch.y_labeled
    theta = RandomSearch(10)(net, n, x, y, cross_entropy, gen=torch.Generator().manual_seed(7))
    assert torch.allclose(out["loss"], F.cross_entropy(net(n.apply(x, theta)), y), atol=1e-6)
    gen = torch.Generator().manual_seed(7)
    single = [F.cross_entropy(net(n.apply(x, n.sample(x, gen))), y, reduction="none") for _ in range(10)]
    assert torch.allclose(out["loss"], torch.stack(single).max(0).values.mean(), atol=1e-6)


def test_klr_is_ce_plus_lambda_kl_at_worst_transform(net, batch):
    n = Spatial()
    out = run("klr", net, batch, n=n, seed=8)
    x, y = batch.x_labeled, batch.y_labeled
    gen = torch.Generator().manual_seed(8)
    p = F.softmax(net(x), 1)
    kls = torch.stack([kl_to_clean(net(n.apply(x, n.sample(x, gen))), p) for _ in range(10)])
    assert torch.allclose(out["loss"], F.cross_entropy(net(x), y) + 1.0 * kls.max(0).values.mean(), atol=1e-5)


def test_spatial_flip_pick_prefers_a_transform_that_changes_the_prediction(net, batch):
    n = Spatial()
    x = torch.cat([batch.x_labeled, batch.x_unlabeled])
    c = net(x).argmax(1)
    p = params("srt", "spatial", spatial_pick="flip")
    x_adv = defenses.inner.maximize(net, n, x, c, cross_entropy, p, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    flips = torch.stack([net(n.apply(x, n.sample(x, gen))).argmax(1) != c for _ in range(10)])
    assert torch.equal(net(x_adv).argmax(1) != c, flips.any(0))


def test_fast_srt_uses_one_fgsm_rs_step(net, batch):
    out = run("fast-srt", net, batch, lam=1.0, seed=11)
    x_mix = torch.cat([batch.x_labeled, batch.x_unlabeled])
    c = net(x_mix).argmax(1)
    gen = torch.Generator().manual_seed(11)
    delta = (torch.rand(x_mix.shape, generator=gen) * 0.2 - 0.1)
    start = (x_mix + delta).clamp(0, 1)
    start.requires_grad_(True)
    g = torch.autograd.grad(F.cross_entropy(net(start), c, reduction="sum"), start)[0]
    x_adv = torch.min(torch.max(start.detach() + 0.125 * g.sign(), x_mix - 0.1), x_mix + 0.1).clamp(0, 1)
    assert torch.allclose(out["robust"], F.cross_entropy(net(x_adv), c), atol=1e-5)
    assert DEFENSES.get("fast-srt").schedule == "cyclic"


def test_at_avg_and_at_max_over_perturbation_types(net, batch):
    n = Compound((PixelBall(0.1), Spatial()))
    kw = dict(steps=2, step_size=0.05, start="none")
    avg, mx = run("at-avg", net, batch, n=n, seed=1, **kw), run("at-max", net, batch, n=n, seed=1, **kw)
    x, y = batch.x_labeled, batch.y_labeled
    l_pixel = F.cross_entropy(net(hand_pgd(net, x, y, 0.1, 0.05, 2, cross_entropy)), y, reduction="none")
    theta = RandomSearch(10)(net, n.parts[1], x, y, cross_entropy, gen=torch.Generator().manual_seed(1))
    l_spatial = F.cross_entropy(net(n.parts[1].apply(x, theta)), y, reduction="none")
    assert torch.allclose(avg["loss"], (l_pixel.mean() + l_spatial.mean()) / 2, atol=1e-5)
    assert torch.allclose(mx["loss"], torch.maximum(l_pixel, l_spatial).mean(), atol=1e-5)


def test_compound_at_is_worst_of_k_on_top_of_pgd(net, batch):
    n = Compound((PixelBall(0.1), Spatial()))
    out = run("at", net, batch, n=n, steps=2, step_size=0.05, start="none", seed=2)
    x, y = batch.x_labeled, batch.y_labeled
    x_pgd = hand_pgd(net, x, y, 0.1, 0.05, 2, cross_entropy)
    theta = RandomSearch(10)(net, n.parts[1], x_pgd, y, cross_entropy, gen=torch.Generator().manual_seed(2))
    assert torch.allclose(out["loss"], F.cross_entropy(net(n.parts[1].apply(x_pgd, theta)), y), atol=1e-5)


def test_objectives_backpropagate_and_maximizers_leave_no_parameter_grads(net, batch):
    for name in ("at", "trades", "srt", "uat"):
        net.zero_grad(set_to_none=True)
        out = run(name, net, batch, steps=2)
        assert all(p.grad is None for p in net.parameters())
        out["loss"].backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_paper_defaults_and_labels():
    assert params("srt").lam == 1.0 and params("srt", "spatial").lam == 0.2
    assert params("srt", "pixel", steps=10).step_size == pytest.approx(0.025)
    d = DEFENSES.get("srt")
    assert d.label(params("srt", "spatial"), "spatial") == "SRT (λ = 0.2)"
    assert d.label(params("srt", "compound"), "compound") == "SRT+"
    assert DEFENSES.get("at").label(params("at", "compound"), "compound") == "AT+"
    # the paper's defenses are registered; a new one may join them
    assert {"standard", "at", "trades", "uat", "rst", "rt", "srt", "fast-srt", "worst-of-k", "klr", "at-avg",
            "at-max"} <= set(DEFENSES.names())


@pytest.mark.parametrize("threat", NEIGHBORHOODS.names())
def test_each_threat_declares_srt_lambda_and_a_chain_takes_its_smallest(threat):
    lam = params("srt", threat).lam
    parts = [NEIGHBORHOODS.get(p).srt_lambda for p in threat_parts(threat)]
    assert lam == min(parts) and lam > 0


def test_a_threat_without_a_declared_lambda_asks_for_one(monkeypatch):
    monkeypatch.setattr(NEIGHBORHOODS.get("blur"), "srt_lambda", None)
    with pytest.raises(SrtbenchError, match="srt has no default --lambda for the blur threat: pass one"):
        params("srt", "blur")
    assert params("srt", "pixel+blur", lam=0.5).lam == 0.5  # given explicitly, nothing is asked


@pytest.mark.parametrize("name,threat", [("trades", "spatial"), ("worst-of-k", "pixel"), ("at-avg", "pixel"),
                                         ("at", "spatial")])
def test_unsupported_threat_is_one_line_error(name, threat):
    with pytest.raises(SrtbenchError, match=f"not defined for the {threat} threat") as err:
        params(name, threat)
    assert "\n" not in str(err.value)


def test_negative_lambda_is_rejected():
    with pytest.raises(SrtbenchError, match="--lambda must be >= 0"):
        DefenseParams(lam=-0.1)


def test_lambda_warmup_ramps_lambda_linearly_and_defaults_to_the_paper(net, batch):
    paper = params("srt", lam=0.8)
    assert paper.lambda_warmup == 0 and defenses.ramp_lambda(paper, 0.0) is paper  # the paper: no ramp
    ramped = params("srt", lam=0.8, lambda_warmup=0.5)
    assert [defenses.ramp_lambda(ramped, t).lam for t in (0.0, 0.25, 0.5, 0.9)] == pytest.approx([0, 0.4, 0.8, 0.8])
    # the objective at a quarter of the warm-up is Eq. (9) with λ/2: natural + (λ/2)·robust
    out = DEFENSES.get("srt").objective(net, batch, PIXEL, defenses.ramp_lambda(ramped, 0.25),
                                        torch.Generator().manual_seed(0))
    assert out["loss"].item() == pytest.approx(out["natural"].item() + 0.4 * out["robust"].item(), rel=1e-6)
    with pytest.raises(SrtbenchError, match="--lambda-warmup must be in"):
        DefenseParams(lambda_warmup=1.0)
