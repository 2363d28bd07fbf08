"""Threats declared once: each registered threat's attacks derived from its declaration (`srtbench/attacks/derived.py`),
each threat's budget options in its own namespace (`srtbench/neighborhoods/threat.py`), and the two threats added
as one module and one import line each (elastic, hue-saturation).  Tests iterate the registries: a threat added
later is checked by the same properties."""

from __future__ import annotations

import dataclasses
import math

import click
import pytest
import torch

from srtbench import checkpoint
from srtbench.attacks import ATTACKS, attack_info, build
from srtbench.attacks.derived import ROLES, named_roles, title
from srtbench.config import click_options, field, require, to_dict
from srtbench.neighborhoods import (
    NEIGHBORHOODS,
    Elastic,
    GaussianBlur,
    HueSaturation,
    ThreatConfig,
    atoms,
    part_budget,
    threat_config,
)
from srtbench.trainer import train
from tests import fitting
from tests.test_trainer import sets, tiny  # noqa: F401  (fixtures)

DATASET = "fashion-mnist"


def offered(threat: str) -> set[str]:
    """The roles a threat's declaration offers: PGD where differentiable, a grid where it has one, random always."""
    n = ThreatConfig(threat=threat).build()
    roles = {"rand"} | ({"pgd"} if all(p.differentiable for p in n.chain()) else set())
    return roles | ({"grid"} if n.grid() is not None else set())


@pytest.mark.parametrize("threat", NEIGHBORHOODS.names())
def test_every_threat_has_an_attack_per_role_derived_or_named(threat):
    named = named_roles(threat)
    for role in offered(threat):
        name = named.get(role, f"{threat}-{role}")
        assert name in ATTACKS, (threat, role)
        assert attack_info(name).threat == threat
        if role not in named:  # derived: a header from the threat's name, at the threat's budget
            assert attack_info(name).header == f"{title(threat)}-{ROLES[role].header}"
            built = build(name, DATASET)
            assert set(built.budget) == set(ThreatConfig(threat=threat).build().budget())
    for role in set(ROLES) - offered(threat):
        assert f"{threat}-{role}" not in ATTACKS  # nothing offered that the threat cannot do


def test_a_named_role_gets_no_second_column():
    assert named_roles("pixel") == {"pgd": "pgd"} and "pixel-pgd" not in ATTACKS and "pixel-rand" in ATTACKS
    assert {"spatial-grid", "spatial-rand", "compound-pgd", "compound-grid"}.isdisjoint(ATTACKS.names())
    assert "spatial-pgd" in ATTACKS and "blur-grid" in ATTACKS and "color-grid" not in ATTACKS


def test_derived_attacks_follow_the_dataset_and_the_checkpoint():
    assert build("pixel-rand", "mnist").budget == {"epsilon": 0.3}  # the dataset's declared ε
    assert build("pixel-rand", DATASET).budget == {"epsilon": 0.1}
    trained = to_dict(ThreatConfig(threat="elastic", alpha=0.7))
    elastic = build("elastic-pgd", DATASET, 0.5, trained)
    assert elastic.budget == {"alpha": pytest.approx(0.35)} and elastic.budget_source == {"alpha": "checkpoint"}
    assert build("hue-saturation-rand", DATASET, trained=trained).budget_source == {
        "hue": "dataset", "saturation": "dataset"}  # a budget of another threat is not this one's


@dataclasses.dataclass
class FogBudget:
    sigma: float = field(0.7, "fog budget: density")

    def __post_init__(self):
        require(self.sigma >= 0, f"--sigma must be >= 0, got {self.sigma}")


@dataclasses.dataclass(repr=False)
class Fog(GaussianBlur):
    Budget = FogBudget

    @classmethod
    def from_budget(cls, budget):
        return cls(budget.sigma)


def test_two_threats_with_one_budget_field_get_an_option_each(monkeypatch):
    """A threat whose budget names a field another threat's budget has (blur's `sigma`): each gets its own field and
    option, prefixed by its name, and no option sets both."""
    monkeypatch.setitem(NEIGHBORHOODS._items, "fog", Fog)
    monkeypatch.setitem(NEIGHBORHOODS._meta, "fog", {})
    cls = threat_config()
    names = {f.name for f in dataclasses.fields(cls)}
    assert "sigma" not in names and {"blur_sigma", "fog_sigma", "epsilon"} <= names
    cfg = cls(threat="fog", fog_sigma=0.5, blur_sigma=2.0)
    assert cfg.budget_of("fog").sigma == 0.5 and cfg.budget_of("blur").sigma == 2.0 and cfg.build().sigma == 0.5
    command = click_options(cls)(click.command()(lambda **kw: None))
    options = {o for p in command.params for o in p.opts}
    assert {"--blur-sigma", "--fog-sigma", "--epsilon"} <= options and "--sigma" not in options
    # a record names a part's budget by its field; one written before the name was shared still reads
    assert part_budget({"threat": "blur", "blur_sigma": 1.3, "sigma": 9.0}, "blur") == {"sigma": 1.3}
    assert part_budget({"threat": "blur", "sigma": 1.2}, "blur") == {"sigma": 1.2}


def test_the_registered_threats_fields_keep_their_short_names():
    names = {f.name for f in dataclasses.fields(ThreatConfig)}
    assert {"epsilon", "rotation", "translation", "sigma", "brightness", "contrast", "alpha", "smoothness", "hue",
            "saturation"} <= names


def test_elastic_moves_no_pixel_farther_than_alpha_and_its_identity_is_exact():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    n = Elastic(alpha=1.5, smoothness=2.0)
    theta = torch.sign(torch.randn(n.shape(x), generator=torch.Generator().manual_seed(1)))  # the box's corners
    assert n.displacement(theta).abs().max() <= 1.5 + 1e-5 and n.contains(theta).all()
    assert torch.allclose(n.apply(x, n.identity(x)), x, atol=1e-5)
    # a constant field is a translation by α: the image shifts by 1.5 pixels along x, bilinearly
    along_x = torch.zeros(n.shape(x))
    along_x[:, 0] = 1.0
    shifted = n.apply(x, along_x)
    assert torch.allclose(shifted[..., 2:-2, 2:-3], 0.5 * (x[..., 2:-2, 3:-2] + x[..., 2:-2, 4:-1]), atol=1e-4)
    theta = n.sample(x, torch.Generator().manual_seed(2)).requires_grad_(True)
    n.apply(x, theta).sum().backward()
    assert theta.grad.abs().sum() > 0  # differentiable in θ


def test_hue_saturation_keeps_luminance_turns_chroma_and_leaves_grayscale_alone():
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25  # away from the clip
    n = HueSaturation()
    assert torch.allclose(n.apply(x, torch.zeros(3, 2)), x, atol=1e-5)
    turned = n.apply(x, torch.tensor([[math.pi / 3, 0.0]] * 3))
    luminance = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((turned * luminance).sum(1), (x * luminance).sum(1), atol=1e-4)
    assert (turned - x).abs().max() > 0.01
    gray = x[:, :1]
    assert torch.equal(n.apply(gray, n.sample(gray, torch.Generator().manual_seed(0))), gray)


@pytest.mark.parametrize("threat", atoms())
def test_srt_trains_against_every_registered_threat(tmp_path, sets, threat):  # noqa: F811
    """What CONTRIBUTING promises a new threat: `srtbench train srt --threat NAME` with nothing else written."""
    run = tiny(tmp_path, "srt", threat=ThreatConfig(threat=threat), iterations=2, check_size=16, model=fitting.MODEL)
    result = train(run, labeled=sets[0], unlabeled=sets[1], check=sets[2], progress=False)
    meta = checkpoint.load(result.path).meta
    assert meta["threat"]["threat"] == threat and meta["defense_params"]["lam"] == NEIGHBORHOODS.get(threat).srt_lambda
    assert all(math.isfinite(m["loss"]) for m in result.metrics)
