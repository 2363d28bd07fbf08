import pytest
import torch

from srtbench.errors import SrtbenchError
from srtbench.neighborhoods import Compound, PixelBall, Spatial, ThreatConfig

EPS = 0.1


def neighborhoods():
    return [
        PixelBall(EPS, "linf"),
        PixelBall(1.5, "l2"),
        Spatial(30, 3),
        Spatial(30, 0),
        Spatial(0, 3),
        Compound((PixelBall(EPS), Spatial(30, 3))),
        Compound((Spatial(30, 3), PixelBall(EPS))),
    ]


def ids():
    return [repr(n) + str(i) for i, n in enumerate(neighborhoods())]


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.rand(16, 1, 28, 28)


@pytest.mark.parametrize("n", neighborhoods(), ids=ids())
def test_samples_stay_inside_budget_and_image_box(n, x):
    gen = torch.Generator().manual_seed(0)
    theta = n.sample(x, gen)
    assert n.contains(theta).all()
    out = n.apply(x, theta)
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("n", [PixelBall(EPS, "linf"), PixelBall(1.5, "l2")], ids=["linf", "l2"])
def test_pixel_samples_measured_on_the_images(n, x):
    out = n.apply(x, n.sample(x, torch.Generator().manual_seed(0)))
    d = (out - x).flatten(1)
    dist = d.abs().amax(1) if n.norm == "linf" else d.norm(dim=1)
    assert (dist <= n.epsilon + 1e-5).all()
    assert dist.max() > 0.5 * n.epsilon  # and samples are not trivially tiny


@pytest.mark.parametrize("n", neighborhoods(), ids=ids())
def test_zero_parameters_give_identity(n, x):
    # spatial transforms interpolate, so identity holds to float precision of grid_sample
    assert torch.allclose(n.apply(x, n.identity(x)), x, atol=1e-5)


@pytest.mark.parametrize("n", neighborhoods(), ids=ids())
def test_projection_is_idempotent_and_lands_inside(n, x):
    big = n.sample(x, torch.Generator().manual_seed(0))
    big = tuple(3 * t for t in big) if isinstance(big, tuple) else 3 * big
    once = n.project(big, x)
    twice = n.project(once, x)
    assert n.contains(once).all()
    flat = lambda t: torch.cat([p.flatten() for p in t]) if isinstance(t, tuple) else t.flatten()  # noqa: E731
    assert torch.allclose(flat(once), flat(twice), atol=1e-6)


def test_grid_has_775_distinct_transforms_within_budget():
    s = Spatial(30, 3)
    g = s.grid()
    assert g.shape == (775, 3)
    assert len(torch.unique(g, dim=0)) == 775
    assert s.contains(g).all()
    assert torch.allclose(g[:, 0].unique(), torch.linspace(-30, 30, 31))
    assert torch.allclose(g[:, 1].unique(), torch.tensor([-3, -1.5, 0, 1.5, 3]))
    assert len(Spatial(30, 0).grid()) == 31 and len(Spatial(0, 3).grid()) == 25


def test_rotation_by_90_degrees_matches_rot90(x):
    s = Spatial(90, 0)
    out = s.apply(x, torch.tensor([[90.0, 0, 0]]).repeat(len(x), 1))
    assert torch.allclose(out, torch.rot90(x, 1, (-2, -1)), atol=1e-5)


def test_translation_shifts_by_whole_pixels(x):
    out = Spatial().apply(x, torch.tensor([[0.0, 2, -1]]).repeat(len(x), 1))
    # +2 px in x moves content right, -1 px in y moves it up; vacated pixels are zero-filled
    assert torch.allclose(out[..., :-1, 2:], x[..., 1:, :-2], atol=1e-5)
    assert out[..., :, :2].abs().max() < 1e-6


def test_compound_applies_spatial_after_pixel(x):
    pixel, spatial = PixelBall(EPS), Spatial(30, 3)
    theta = Compound((pixel, spatial)).sample(x, torch.Generator().manual_seed(0))
    expected = spatial.apply(pixel.apply(x, theta[0]), theta[1])
    assert torch.allclose(Compound((pixel, spatial)).apply(x, theta), expected)


def test_scaled_multiplies_every_budget():
    c = Compound((PixelBall(0.3), Spatial(30, 3))).scaled(0.5)
    assert c.budget() == {"epsilon": 0.15, "rotation": 15.0, "translation": 1.5}


@pytest.mark.parametrize(
    "kw", [{"epsilon": -0.1}, {"epsilon": 2.0}, {"rotation": -1.0}, {"translation": -2.0}, {"rotation": 400.0}]
)
def test_bad_budgets_are_one_line_errors(kw):
    with pytest.raises(SrtbenchError) as err:
        ThreatConfig(**kw)
    assert "\n" not in str(err.value)


def test_threat_registry_builds_each_kind():
    assert isinstance(ThreatConfig(threat="pixel").build(), PixelBall)
    assert isinstance(ThreatConfig(threat="spatial").build(), Spatial)
    assert isinstance(ThreatConfig(threat="compound").build(), Compound)
