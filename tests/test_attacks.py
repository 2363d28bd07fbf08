"""The attack battery: each attack breaks a trained model within its budget; agreement with the libraries."""

from __future__ import annotations

import math

import pytest
import torch

from srtbench.attacks import (
    ATTACKS,
    NORMS,
    attack_defaults,
    attack_info,
    battery,
    build,
    header,
    paper_order,
    parse,
    rank,
    split_specs,
)
from srtbench.data import DATASETS
from srtbench.errors import SrtbenchError
from srtbench.neighborhoods import NEIGHBORHOODS, Spatial

DATASET = "fashion-mnist"

# each attack's quick settings (AttackInfo.quick) run the whole battery in seconds; defaults: test_defaults_*
QUICK = {name: f"{name}[{attack_info(name).quick}]" if attack_info(name).quick else name for name in ATTACKS}
SLOW_IMAGES = 8  # slow attacks (AttackInfo.slow): a few images show the property as well
POINTWISE_IMAGES = 4  # point-wise runs ~10 images/s on a CPU (library=foolbox ~2)


@pytest.fixture(scope="module")
def batch(trained_cnn, test_batch):
    x, y = test_batch[0][:16], test_batch[1][:16]
    with torch.no_grad():
        pred = trained_cnn(x).argmax(1)
    return x, y, pred


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_carries_all_its_facts(name):
    """Tables, evaluation, recipes and plots read these from the registration and keep no lists of their own."""
    info = attack_info(name)
    assert info.header and info.source and isinstance(info.order, int)
    assert isinstance(info.slow, bool) and isinstance(info.white_box, bool)
    for dataset in DATASETS.names():  # every registered dataset gets every setting, budgets included
        assert set(info.budget) <= set(attack_defaults(name, dataset))
    assert info.threat in NEIGHBORHOODS and info.norm in NORMS
    for other in info.must_beat + info.covers:
        assert other in ATTACKS and other != name
    assert parse(QUICK[name], DATASET)[0] == name


def test_attacks_have_distinct_headers_and_places_in_the_paper_order():
    assert len({attack_info(name).header for name in ATTACKS}) == len(ATTACKS.names())
    assert len({attack_info(name).order for name in ATTACKS}) == len(ATTACKS.names())
    order = paper_order()
    assert order[:3] == ["fgsm", "pgd", "mifgsm"]
    # today's standard follows the paper's battery (attacks added since may follow it too)
    paper = ("fgsm", "pgd", "mifgsm", "jsma", "cw", "pointwise", "ddn", "randadv", "gridadv", "pgd+", "gridadv+")
    assert order.index("autoattack") > max(order.index(a) for a in paper)
    assert header("gridadv.t") == "GridAdv.T" and header("not-registered") == "not-registered"
    assert rank("not-registered") == len(ATTACKS.names()) > rank("autoattack")


def moves_nothing(atk, x) -> bool:
    """Whether every point of the attack's threat set is x itself on these images (20 random draws of θ)."""
    if not hasattr(atk.algorithm, "neighborhood"):
        return False
    n, gen = atk.algorithm.neighborhood, torch.Generator().manual_seed(0)
    return all(torch.allclose(n.apply(x, n.sample(x, gen)), x, atol=1e-6) for _ in range(20))


@pytest.mark.parametrize("name", list(QUICK))
def test_attack_lowers_accuracy_and_respects_its_budget(name, trained_cnn, batch):
    x, y, pred = batch
    if attack_info(name).slow:
        k = POINTWISE_IMAGES if name == "pointwise" else SLOW_IMAGES
        x, y, pred = x[:k], y[:k], pred[:k]
    atk = build(QUICK[name], DATASET)
    out = atk.at_budget(atk(trained_cnn, x, pred, torch.Generator().manual_seed(0)), x)
    with torch.no_grad():
        adv = trained_cnn(out.x_adv).argmax(1)
    clean_correct = pred == y
    if moves_nothing(atk, x):  # a threat that is the identity on these images (hue on grayscale) breaks nothing
        assert torch.equal(adv, pred) and torch.allclose(out.x_adv, x, atol=1e-6)
    else:
        assert ((adv == y) & clean_correct).sum() < clean_correct.sum(), "the attack broke nothing"
    assert out.inside.all() and out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    delta = (out.x_adv - x).flatten(1)
    if atk.group == "pixel linf":
        assert delta.abs().amax(1).max() <= atk.budget["epsilon"] + 1e-5
    if atk.minimum_norm:
        broken = adv != pred
        d = delta.norm(dim=1) if atk.group == "pixel l2" else (delta.abs() > 1e-6).sum(1).float()
        assert torch.allclose(out.distance[broken], d[broken], rtol=1e-4, atol=1e-4)
        assert (out.distance[broken] <= atk.budget["epsilon"] + 1e-5).all()
    if name == "jsma":  # at most ceil(γ·n/2) pairs of features changed
        assert (delta.abs() > 1e-6).sum(1).max() <= 2 * math.ceil(784 * 0.05 / 2)


def _foolbox_accuracy(model, attack, x, y, eps):
    import foolbox as fb

    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    _, adv, _ = attack(fmodel, x, y, epsilons=eps)
    with torch.no_grad():
        return 100 * (model(adv).argmax(1) == y).float().mean().item()


def _our_accuracy(model, spec, x, y):
    atk = build(spec, DATASET)
    out = atk(model, x, y, torch.Generator().manual_seed(0))
    with torch.no_grad():
        return 100 * (model(out.x_adv).argmax(1) == y).float().mean().item()


def test_fgsm_and_pgd_agree_with_foolbox_within_one_point(trained_cnn, test_batch):
    import foolbox as fb

    x, y = test_batch[0][:200], test_batch[1][:200]
    ours = _our_accuracy(trained_cnn, "fgsm[epsilon=0.03]", x, y)
    theirs = _foolbox_accuracy(trained_cnn, fb.attacks.FGSM(), x, y, 0.03)
    assert abs(ours - theirs) <= 1.0, (ours, theirs)
    ours = _our_accuracy(trained_cnn, "pgd[epsilon=0.03,steps=10,step_size=0.01,start=none]", x, y)
    theirs = _foolbox_accuracy(trained_cnn, fb.attacks.LinfPGD(abs_stepsize=0.01, steps=10, random_start=False),
                               x, y, 0.03)
    assert abs(ours - theirs) <= 1.0, (ours, theirs)
    assert ours < _our_accuracy(trained_cnn, "fgsm[epsilon=0.03]", x, y) + 1.0


def test_gridadv_finds_every_misclassification_of_a_brute_force_loop(trained_cnn, test_batch):
    x, y = test_batch[0][:6], test_batch[1][:6]
    space = Spatial(30.0, 3.0)
    grid = space.grid()
    brute = torch.zeros(len(x), dtype=torch.bool)
    with torch.no_grad():
        for i in range(len(x)):  # every one of the 775 transforms of each image, no early stop
            images = space.apply(x[i:i + 1].expand(len(grid), -1, -1, -1), grid)
            brute[i] = (trained_cnn(images).argmax(1) != y[i]).any()
    atk = build("gridadv", DATASET)
    with torch.no_grad():
        found = trained_cnn(atk(trained_cnn, x, y).x_adv).argmax(1) != y
    assert brute.any() and torch.equal(found, brute)


@pytest.mark.parametrize("gamma", [0.05, 0.1])  # 0.1: torchattacks' default
def test_jsma_is_torchattacks_jsma_batched(gamma, trained_cnn, test_batch):
    import torchattacks

    x, y = test_batch[0][:2], test_batch[1][:2]
    reference = torchattacks.JSMA(trained_cnn, theta=1.0, gamma=gamma)(x, y)
    ours = build(f"jsma[gamma={gamma}]", DATASET)(trained_cnn, x, y).x_adv
    assert torch.allclose(ours, reference, atol=1e-6)


def test_jsma_at_its_default_gamma_is_torchattacks_jsma(trained_cnn, test_batch):
    """γ 1 (the default): the candidate pairs JSMA scores first give the pair torchattacks' n² search gives."""
    import torchattacks

    x, y = test_batch[0][2:3], test_batch[1][2:3]
    reference = torchattacks.JSMA(trained_cnn, theta=1.0, gamma=1.0)(x, y)
    ours = build("jsma", DATASET)(trained_cnn, x, y).x_adv
    assert torch.allclose(ours, reference, atol=1e-6)


def test_native_cw_l2_finds_every_example_foolbox_finds_at_its_own_distance(trained_cnn, test_batch):
    """Per example, exactly: what foolbox's C&W-ℓ2 breaks, the native one breaks too, with an image in the box that
    the model misclassifies at the distance it reports.  (Which finds the smaller median distance is a statistical
    question, measured on 100 images: `python benchmarks/attacks.py --only cw-l2`.)"""
    x = test_batch[0][:16]
    with torch.no_grad():
        pred = trained_cnn(x).argmax(1)
    ours = build("cw-l2[steps=20,binary_search_steps=3,library=native]", DATASET)(trained_cnn, x, pred)
    ref = build("cw-l2[steps=20,binary_search_steps=3,library=foolbox]", DATASET)(trained_cnn, x, pred)
    found, found_ref = torch.isfinite(ours.distance), torch.isfinite(ref.distance)
    assert found_ref.any() and not (found_ref & ~found).any()
    with torch.no_grad():
        assert (trained_cnn(ours.x_adv[found]).argmax(1) != pred[found]).all()
    assert torch.allclose(ours.distance[found], (ours.x_adv - x).flatten(1).norm(dim=1)[found], atol=1e-5)
    assert ((ours.x_adv >= 0) & (ours.x_adv <= 1)).all() and torch.equal(ours.x_adv[~found], x[~found])


def test_native_cw_l2_more_search_never_loses_what_fewer_runs_found(trained_cnn, test_batch):
    """The first runs of a longer binary search are the shorter search, and later runs only keep a closer
    adversarial (warm start): per example, the distance after 9 runs is at most the distance after 2."""
    x = test_batch[0][:16]
    with torch.no_grad():
        pred = trained_cnn(x).argmax(1)
    short = build("cw-l2[steps=20,binary_search_steps=2]", DATASET)(trained_cnn, x, pred).distance
    long = build("cw-l2[steps=20,binary_search_steps=9]", DATASET)(trained_cnn, x, pred).distance
    assert torch.isfinite(short).any() and (long <= short).all()
    assert (long < short).any()  # the extra runs do shrink some distances


def test_native_cw_l2_stops_searching_per_example(trained_cnn, test_batch):
    """An example stops searching once a run no longer shrinks its distance: fewer Adam runs than 9 per example."""
    x = test_batch[0][:16]
    with torch.no_grad():
        pred = trained_cnn(x).argmax(1)
    ours = build("cw-l2[steps=20]", DATASET)
    assert torch.isfinite(ours(trained_cnn, x, pred).distance).sum() >= len(x) // 2
    assert ours.algorithm.runs < 9 * len(x)


def test_minimum_norm_budget_only_thresholds_the_distances(trained_cnn, batch):
    x, _, pred = batch
    full = build("ddn[steps=20]", DATASET)
    out = full(trained_cnn, x, pred)
    tight = build("ddn[steps=20]", DATASET, fraction=0.0)
    assert tight.run_key == full.run_key  # evaluation reuses one run for every fraction
    assert torch.equal(tight.at_budget(out, x).x_adv, x)
    half = build("ddn[steps=20,epsilon=0.5]", DATASET)
    kept = (half.at_budget(out, x).x_adv != x).flatten(1).any(1)
    assert torch.equal(kept, out.distance <= 0.5)


def test_defaults_follow_the_paper_per_dataset():
    # Appendix E (Table 4): MNIST PGD-40 step 0.01 at ε 0.3; CIFAR-10 ε 0.031, 10 steps of 0.007
    assert parse("pgd", "mnist")[1] == {"epsilon": 0.3, "steps": 40, "step_size": 0.01, "start": "uniform"}
    assert parse("pgd", "cifar10")[1] == {"epsilon": 0.031, "steps": 10, "step_size": 0.007, "start": "uniform"}
    # Fashion-MNIST is its own family: Appendix C's settings for ε 0.1 (PGD-40 step 0.005, FGSM 0.1)
    assert parse("pgd", "fashion-mnist")[1] == {"epsilon": 0.1, "steps": 40, "step_size": 0.005, "start": "uniform"}
    assert parse("fgsm", "fashion-mnist")[1] == {"epsilon": 0.1}
    for dataset in ("mnist", "fashion-mnist", "cifar10"):  # the ℓ∞ C&W runs at the PGD budget
        assert parse("cw", dataset)[1] == parse("pgd", dataset)[1]
        assert parse("jsma", dataset)[1] == {"theta": 1.0, "gamma": 1.0}  # advertorch's defaults
    grid = build("gridadv", "cifar10")
    assert len(grid.algorithm.neighborhood.grid()) == 775 and grid.budget == {"rotation": 30.0, "translation": 3.0}
    assert build("gridadv.t", "mnist").budget["rotation"] == 0
    assert build("randadv.r", "mnist").budget["translation"] == 0
    assert parse("randadv", "mnist")[1]["k"] == 10


PIXEL_01 = {"threat": "pixel", "norm": "linf", "epsilon": 0.2, "rotation": 30.0, "translation": 3.0}


def test_a_checkpoint_sets_the_budget_of_the_attacks_of_its_threat():
    pgd = build("pgd", "mnist", trained=PIXEL_01)
    assert pgd.budget == {"epsilon": 0.2} and pgd.budget_source == {"epsilon": "checkpoint"}
    assert pgd.algorithm.maximizer.step_size == pytest.approx(0.01 * 0.2 / 0.3)  # the step follows ε
    assert build("cw", "mnist", trained=PIXEL_01).budget == {"epsilon": 0.2}
    assert build("autoattack", "mnist", trained=PIXEL_01).budget == {"epsilon": 0.2}
    # a pixel-wise checkpoint says nothing about rotations: spatial attacks keep the dataset's budget
    grid = build("gridadv", "mnist", trained=PIXEL_01)
    assert grid.budget_source == {"rotation": "dataset", "translation": "dataset"}
    # ℓ0 and ℓ2 attacks are not ℓ∞-trained budgets
    assert build("ddn", "mnist", trained=PIXEL_01).budget == {"epsilon": 2.0}
    assert build("jsma", "mnist", trained=PIXEL_01).budget_source == {"gamma": "dataset"}


def test_settings_written_in_the_spec_win_over_the_checkpoint():
    pgd = build("pgd[epsilon=0.05]", "mnist", trained=PIXEL_01)
    assert pgd.budget == {"epsilon": 0.05} and pgd.budget_source == {"epsilon": "command line"}
    assert pgd.algorithm.maximizer.step_size == 0.01  # an explicit ε keeps the family's step
    step = build("pgd[step_size=0.02]", "mnist", trained=PIXEL_01)
    assert step.budget == {"epsilon": 0.2} and step.algorithm.maximizer.step_size == 0.02


def test_spatial_and_compound_checkpoints_set_their_transform_budgets():
    spatial = {"threat": "spatial", "norm": "linf", "epsilon": 0.1, "rotation": 15.0, "translation": 2.0}
    grid = build("gridadv", "mnist", trained=spatial)
    assert grid.budget == {"rotation": 15.0, "translation": 2.0}
    assert build("pgd", "mnist", trained=spatial).budget == {"epsilon": 0.3}  # not its threat
    only_t = build("gridadv.t", "mnist", trained=spatial)  # a variant's zero is its definition, not a budget
    assert only_t.budget == {"rotation": 0.0, "translation": 2.0}
    assert only_t.budget_source == {"rotation": "dataset", "translation": "checkpoint"}
    compound = {**spatial, "threat": "compound"}
    plus = build("pgd+", "mnist", trained=compound)
    assert plus.budget == {"epsilon": 0.1, "rotation": 15.0, "translation": 2.0}
    assert set(plus.budget_source.values()) == {"checkpoint"}
    l2 = build("ddn", "mnist", trained={**PIXEL_01, "norm": "l2", "epsilon": 1.5})
    assert l2.budget == {"epsilon": 1.5} and build("pgd", "mnist", trained={**PIXEL_01, "norm": "l2"}).budget == {
        "epsilon": 0.3}


def test_cw_is_the_margin_loss_pgd_at_the_pgd_budget(trained_cnn, test_batch):
    from srtbench.maximizers import cw_margin

    logits = torch.tensor([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0]])
    assert torch.allclose(cw_margin(logits, torch.tensor([0, 0])), torch.tensor([-1.0, 3.0]))
    x, y = test_batch[0][:200], test_batch[1][:200]
    cw = _our_accuracy(trained_cnn, "cw[epsilon=0.1,steps=20,step_size=0.01]", x, y)
    pgd = _our_accuracy(trained_cnn, "pgd[epsilon=0.1,steps=20,step_size=0.01]", x, y)
    clean = 100 * (trained_cnn(x).argmax(1) == y).float().mean().item()
    assert cw < clean - 10 and abs(cw - pgd) <= 10, (clean, cw, pgd)  # as the paper's C&W column tracks PGD


def test_overrides_are_typed_and_fraction_scales_every_budget():
    name, params = parse("pgd[steps=100, start=none ,epsilon=0.2]", DATASET)
    assert name == "pgd" and params["steps"] == 100 and isinstance(params["steps"], int) and params["start"] == "none"
    atk = build("pgd[epsilon=0.2]", DATASET, fraction=0.5)
    assert atk.budget == {"epsilon": pytest.approx(0.1)} and atk.params["epsilon"] == 0.2  # params as given
    assert atk.algorithm.maximizer.step_size == pytest.approx(0.0025)  # Fashion-MNIST's step 0.005, halved
    compound = build("pgd+", DATASET, fraction=0.2)
    assert compound.budget == pytest.approx({"epsilon": 0.02, "rotation": 6.0, "translation": 0.6})


def test_specs_split_on_top_level_commas_and_all_expands():
    assert split_specs("pgd[steps=100,start=none],gridadv") == ["pgd[steps=100,start=none]", "gridadv"]
    assert split_specs("all") == battery() and "transfer" in ATTACKS and "transfer" not in battery()


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown attack 'nope'"),
    ("pgd[foo=1]", "pgd has no setting 'foo'"),
    ("pgd[steps=ten]", "expected a int"),
    ("pgd[epsilon=-0.1]", "must be >= 0"),
    ("pgd[epsilon=5]", "epsilon must be in [0, 1]"),
    ("gridadv[rotation=400]", "rotation must be in [0, 180]"),
    ("pgd[steps=0]", "steps must be >= 1"),
    ("pgd[steps", "cannot parse attack"),
])
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(SrtbenchError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        build(spec, DATASET)
    assert "\n" not in str(err.value)


def test_fraction_outside_unit_interval_is_an_error():
    with pytest.raises(SrtbenchError, match="fraction"):
        build("pgd", DATASET, fraction=2.0)


class _Brightness(torch.nn.Module):
    """Class 1 when the mean intensity exceeds 0.7, else class 0: salt-and-pepper noise (mean → 0.5) can
    darken a bright image into class 0 but never brighten a dark one into class 1."""

    def forward(self, x):
        score = 50.0 * (x.flatten(1).mean(1) - 0.7)
        return torch.stack([-score, score], 1)


@pytest.mark.parametrize("library", ["native", "foolbox"])
def test_pointwise_leaves_examples_without_an_adversarial_start_unbroken(library):
    """foolbox's PointwiseAttack asserts every start is adversarial; on robust models the salt-and-pepper start
    search fails for some images, which used to abort the whole evaluation."""
    x = torch.cat([torch.full((3, 1, 8, 8), 0.95), torch.full((3, 1, 8, 8), 0.05)])
    model = _Brightness()
    target = model(x).argmax(1)
    assert target.tolist() == [1, 1, 1, 0, 0, 0]
    out = build(f"pointwise[init_steps=20,library={library}]", DATASET)(model, x, target,
                                                                       torch.Generator().manual_seed(0))
    broken = model(out.x_adv).argmax(1) != target
    assert broken[:3].all() and not broken[3:].any()
    assert torch.equal(out.x_adv[3:], x[3:]) and torch.isinf(out.distance[3:]).all()
    assert torch.isfinite(out.distance[:3]).all()


def test_every_attack_probes_a_neighborhood():
    """Figure 2 pairs each run with the attacks of its own neighborhood: every registered attack needs one."""
    from srtbench.attacks import neighborhood

    found = {name: neighborhood(name) for name in ATTACKS.names()}
    assert found["pgd"] == found["cw"] == found["cw-l2"] == found["pointwise"] == "pixel"
    assert found["gridadv"] == found["randadv.r"] == "spatial" and found["pgd+"] == "compound"
    assert set(found.values()) == set(NEIGHBORHOODS.names())  # and every registered threat has an attack


@pytest.mark.parametrize("name", ["randadv", "gridadv", "randadv.t", "gridadv.t", "randadv.r", "gridadv.r"])
def test_spatial_attacks_stay_inside_their_budget_checked_from_the_transform_itself(name, trained_cnn, batch):
    """The test reads the rotation and translation the search chose and measures them against the budget
    (not the attack's own `inside` flag), and checks the returned images are exactly those transforms."""
    from srtbench.maximizers import cross_entropy, misclassified

    x, _, pred = batch
    atk = build(name, DATASET)
    theta = atk.algorithm.maximizer(trained_cnn, atk.algorithm.neighborhood, x, pred, cross_entropy, misclassified,
                          torch.Generator().manual_seed(0))
    rotation, translation = atk.budget["rotation"], atk.budget["translation"]
    assert (theta[:, 0].abs() <= rotation + 1e-6).all() and (theta[:, 1:].abs() <= translation + 1e-6).all()
    if name.endswith(".t"):
        assert (theta[:, 0] == 0).all()
    if name.endswith(".r"):
        assert (theta[:, 1:] == 0).all()
    out = atk(trained_cnn, x, pred, torch.Generator().manual_seed(0))
    assert torch.allclose(out.x_adv, atk.algorithm.neighborhood.apply(x, theta), atol=1e-6)


def test_native_pointwise_distances_are_the_l0_of_its_images(trained_cnn, batch):
    """Every finite distance is the ℓ0 count of an image the model misclassifies; inf means x was returned."""
    x, pred = batch[0][:SLOW_IMAGES], batch[2][:SLOW_IMAGES]
    atk = build("pointwise[init_steps=200,library=native]", DATASET)
    assert atk.params["library"] == "native" and not atk.batch_dependent
    out = atk(trained_cnn, x, pred, torch.Generator().manual_seed(0))
    with torch.no_grad():
        broken = trained_cnn(out.x_adv).argmax(1) != pred
    found = torch.isfinite(out.distance)
    assert found.sum() >= len(x) - 1, "a standard-trained model should break nearly everywhere"
    assert not (found & ~broken).any(), "reports more success than it has"
    changed = ((out.x_adv - x).abs().flatten(1) > 1e-6).sum(1).float()
    assert torch.equal(out.distance[found], changed[found])
    assert torch.equal(out.x_adv[~found], x[~found]) and out.inside.all()


def test_native_pointwise_draws_per_example(trained_cnn, batch):
    """With per-example generators an example's adversarial does not depend on what else is in the batch."""
    from srtbench.neighborhoods import ExampleRNG

    x, _, pred = batch
    atk = build("pointwise[init_steps=200,library=native]", DATASET)
    whole = atk(trained_cnn, x[:4], pred[:4], ExampleRNG(0, range(4)))
    part = atk(trained_cnn, x[2:4], pred[2:4], ExampleRNG(0, range(2, 4)))
    assert torch.equal(whole.x_adv[2:4], part.x_adv) and torch.equal(whole.distance[2:4], part.distance)


def test_pointwise_library_is_a_recorded_setting():
    native, theirs = build("pointwise", DATASET), build("pointwise[library=foolbox]", DATASET)
    assert native.params["library"] == "native" and theirs.params["library"] == "foolbox"
    assert theirs.batch_dependent and native.run_key != theirs.run_key
    with pytest.raises(SrtbenchError, match="library"):
        build("pointwise[library=cleverhans]", DATASET)


def test_native_pointwise_finds_every_example_foolbox_finds(trained_cnn, batch):
    """Same images, same start budget: per example, native succeeds wherever foolbox does, with an image the model
    misclassifies (its distances: test_native_pointwise_distances_are_the_l0_of_its_images).  Which changes fewer
    input values is a statistical question between two random local searches: `python benchmarks/pointwise.py`
    measures it on 100 images."""
    x, _, pred = batch
    x, pred = x[:8], pred[:8]
    out = {lib: build(f"pointwise[init_steps=200,library={lib}]", DATASET)(trained_cnn, x, pred,
                                                                          torch.Generator().manual_seed(0))
           for lib in ("native", "foolbox")}
    found = {lib: torch.isfinite(o.distance) for lib, o in out.items()}
    assert found["foolbox"].any() and (found["native"] | ~found["foolbox"]).all()
    ours = out["native"]
    with torch.no_grad():
        assert (trained_cnn(ours.x_adv[found["native"]]).argmax(1) != pred[found["native"]]).all()


def test_any_registered_threat_sets_its_budgets_from_the_checkpoint():
    from srtbench.config import to_dict
    from srtbench.neighborhoods import ThreatConfig

    chained = to_dict(ThreatConfig(threat="pixel+blur", epsilon=0.05, sigma=2.0))
    blur = build("blur-pgd", "fashion-mnist", trained=chained)
    assert blur.budget == {"sigma": 2.0} and blur.budget_source == {"sigma": "checkpoint"}
    assert build("pgd", "fashion-mnist", trained=chained).budget == {"epsilon": 0.05}
    assert build("gridadv", "fashion-mnist", trained=chained).budget_source["rotation"] == "dataset"
    assert build("color-pgd", "fashion-mnist", trained=chained).budget_source == {
        "brightness": "dataset", "contrast": "dataset"}


def test_a_new_dataset_declares_its_budgets_once_and_every_attack_follows(monkeypatch):
    """CONTRIBUTING's dataset recipe: one DatasetSpec with its AttackBudgets, no attack edited."""
    import dataclasses

    from srtbench.data import AttackBudgets

    spec = dataclasses.replace(DATASETS.get("cifar10"), name="svhn", budgets=AttackBudgets(
        0.02, 7, 0.004, 0.3, "a test", settings={"cw-l2": {"initial_const": 0.5}}))
    monkeypatch.setitem(DATASETS._items, "svhn", spec)
    monkeypatch.setitem(DATASETS._meta, "svhn", {})
    assert attack_defaults("pgd", "svhn") == dict(epsilon=0.02, steps=7, step_size=0.004, start="uniform")
    assert attack_defaults("fgsm", "svhn") == dict(epsilon=0.02)
    assert attack_defaults("autoattack", "svhn")["epsilon"] == 0.02
    assert attack_defaults("ddn", "svhn")["epsilon"] == 0.3
    assert attack_defaults("cw-l2", "svhn")["initial_const"] == 0.5
    assert attack_defaults("pointwise", "svhn")["epsilon"] == 3 * 32 * 32
    assert build("pgd", "svhn").budget == {"epsilon": 0.02}

    bad = dataclasses.replace(spec, budgets=dataclasses.replace(spec.budgets, settings={"pgd": {"stepz": 1}}))
    monkeypatch.setitem(DATASETS._items, "svhn", bad)
    with pytest.raises(SrtbenchError, match=r"sets pgd\[stepz\]"):
        attack_defaults("pgd", "svhn")
