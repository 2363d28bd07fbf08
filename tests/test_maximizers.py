import pytest
import torch

from srtbench.maximizers import (
    MIFGSM,
    PGD,
    GridSearch,
    RandomSearch,
    Sequential,
    cross_entropy,
    fgsm,
    fgsm_rs,
    misclassified,
)
from srtbench.neighborhoods import Compound, PixelBall, Spatial


def mean_loss(model, n, x, y, theta):
    with torch.no_grad():
        return cross_entropy(model(n.apply(x, theta)), y).mean().item()


def accuracy(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


@pytest.fixture
def batch(test_batch):
    x, y = test_batch
    return x[:64], y[:64]


def test_pgd_raises_loss_over_clean_and_random_points(trained_cnn, batch):
    x, y = batch
    n = PixelBall(0.1)
    theta = PGD(steps=10, step_size=0.02)(trained_cnn, n, x, y, cross_entropy)
    assert n.contains(theta).all()
    adv = mean_loss(trained_cnn, n, x, y, theta)
    clean = mean_loss(trained_cnn, n, x, y, n.identity(x))
    rand = mean_loss(trained_cnn, n, x, y, n.sample(x, torch.Generator().manual_seed(0)))
    assert adv > 2 * clean and adv > 2 * rand


def test_pgd_l2_stays_in_ball_and_raises_loss(trained_cnn, batch):
    x, y = batch
    n = PixelBall(1.0, "l2")
    theta = PGD(steps=10, step_size=0.25, start="uniform")(trained_cnn, n, x, y, cross_entropy)
    assert ((n.apply(x, theta) - x).flatten(1).norm(dim=1) <= 1.0 + 1e-4).all()
    assert mean_loss(trained_cnn, n, x, y, theta) > 2 * mean_loss(trained_cnn, n, x, y, n.identity(x))


def test_more_pgd_steps_never_weaker_with_keep_best(trained_cnn, batch):
    x, y = batch
    n = PixelBall(0.05)
    acc = []
    for steps in (1, 5, 20):
        theta = PGD(steps=steps, step_size=0.0125, start="none", keep_best=True)(
            trained_cnn, n, x, y, cross_entropy, done=misclassified
        )
        acc.append((accuracy(trained_cnn, n.apply(x, theta)) == y).float().mean().item())
    assert acc[0] >= acc[1] >= acc[2]
    assert acc[2] < acc[0]


def test_early_stop_keeps_the_breaking_iterate(trained_cnn, batch):
    x, y = batch
    n = PixelBall(0.1)
    full = PGD(steps=10, step_size=0.02, start="none", keep_best=True)
    stopped = full(trained_cnn, n, x, y, cross_entropy, done=misclassified)
    pred = accuracy(trained_cnn, n.apply(x, stopped))
    base = full(trained_cnn, n, x, y, cross_entropy)
    # every example that the full run breaks at its best-loss iterate, the early-stopped run breaks too
    assert ((pred != y) | (accuracy(trained_cnn, n.apply(x, base)) == y)).all()


def test_maximizer_leaves_model_mode_and_grads_alone(tiny_cnn, batch):
    x, y = batch
    tiny_cnn.train()
    PGD(steps=2, step_size=0.01)(tiny_cnn, PixelBall(0.1), x, y, cross_entropy)
    assert tiny_cnn.training
    assert all(p.grad is None for p in tiny_cnn.parameters())


def test_fgsm_variants_are_one_step(trained_cnn, batch):
    x, y = batch
    n = PixelBall(0.1)
    theta = fgsm(0.1)(trained_cnn, n, x, y, cross_entropy)
    moved = (n.apply(x, theta) - x).abs()
    inside_box = (x > 0.1) & (x < 0.9)
    # one signed step of size ε: every pixel away from the box edges moves by exactly ε
    assert torch.allclose(moved[inside_box], torch.tensor(0.1), atol=1e-6)
    rs = fgsm_rs(0.1)
    assert rs.steps == 1 and rs.step_size == pytest.approx(0.125) and rs.start == "uniform"
    theta = rs(trained_cnn, n, x, y, cross_entropy, gen=torch.Generator().manual_seed(0))
    assert n.contains(theta).all()
    assert mean_loss(trained_cnn, n, x, y, theta) > mean_loss(trained_cnn, n, x, y, n.identity(x))


def test_mi_fgsm_raises_loss(trained_cnn, batch):
    x, y = batch
    n = PixelBall(0.1)
    theta = MIFGSM(steps=10, step_size=0.01)(trained_cnn, n, x, y, cross_entropy)
    assert n.contains(theta).all()
    assert mean_loss(trained_cnn, n, x, y, theta) > 2 * mean_loss(trained_cnn, n, x, y, n.identity(x))


def test_worst_of_k_at_least_as_strong_as_one_sample(trained_cnn, batch):
    x, y = batch
    n = Spatial()
    one = RandomSearch(k=1)(trained_cnn, n, x, y, cross_entropy, gen=torch.Generator().manual_seed(0))
    ten = RandomSearch(k=10)(trained_cnn, n, x, y, cross_entropy, gen=torch.Generator().manual_seed(0))
    # same generator: the first of the ten draws is the single draw, so per example the loss can only grow
    l1 = cross_entropy(trained_cnn(n.apply(x, one)), y)
    l10 = cross_entropy(trained_cnn(n.apply(x, ten)), y)
    assert (l10 >= l1 - 1e-5).all() and l10.mean() > l1.mean()


def test_grid_finds_what_brute_force_finds(trained_cnn, batch):
    x, y = batch[0][:12], batch[1][:12]
    n = Spatial()
    theta = GridSearch()(trained_cnn, n, x, y, cross_entropy, done=misclassified)
    found = accuracy(trained_cnn, n.apply(x, theta)) != y
    brute = torch.zeros(len(x), dtype=torch.bool)
    for g in n.grid():
        brute |= accuracy(trained_cnn, n.apply(x, g.repeat(len(x), 1))) != y
    assert torch.equal(found, brute)
    assert brute.any()


def test_grid_without_done_returns_the_max_loss_transform(trained_cnn, batch):
    x, y = batch[0][:6], batch[1][:6]
    n = Spatial(10, 1)
    theta = GridSearch()(trained_cnn, n, x, y, cross_entropy)
    with torch.no_grad():
        losses = torch.stack([cross_entropy(trained_cnn(n.apply(x, g.repeat(len(x), 1))), y) for g in n.grid()], 1)
        got = cross_entropy(trained_cnn(n.apply(x, theta)), y)
    assert torch.allclose(got, losses.max(1).values, atol=1e-5)


def test_sequential_compound_breaks_at_least_what_each_stage_breaks(trained_cnn, batch):
    x, y = batch
    pixel, spatial = PixelBall(0.05), Spatial()
    pgd = PGD(steps=10, step_size=0.01, start="none", keep_best=True)
    comp = Compound((pixel, spatial))
    theta = Sequential((pgd, GridSearch()))(trained_cnn, comp, x, y, cross_entropy, done=misclassified)
    assert comp.contains(theta).all()
    broken = accuracy(trained_cnn, comp.apply(x, theta)) != y
    by_pgd = accuracy(trained_cnn, pixel.apply(x, pgd(trained_cnn, pixel, x, y, cross_entropy, misclassified))) != y
    assert (broken | ~by_pgd).all()
    assert broken.float().mean() > by_pgd.float().mean()


def test_model_without_input_gradient_is_a_one_line_error(batch):
    from srtbench.errors import SrtbenchError

    class Rounded(torch.nn.Module):  # output detached from the input: no gradient path
        def forward(self, x):
            return torch.nn.functional.one_hot(x.flatten(1)[:, 0].round().long(), 10).float()

    x, y = batch
    with pytest.raises(SrtbenchError, match="no gradient") as err:
        PGD(steps=2, step_size=0.01)(Rounded(), PixelBall(0.1), x, y, cross_entropy)
    assert "\n" not in str(err.value)
