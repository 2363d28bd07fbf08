"""The paper's neighborhood N_{ε,T}(x) = {T(x; θ) : dist(T(x; θ), x) ≤ ε} (Definition 1, Eq. (1)), one module per
threat.

A neighborhood owns its parameter space θ (`identity`, `sample` uniform inside the budget, `project` back inside
it, `step` one ascent step, `apply` T(x; θ) differentiable in θ where T is, `contains`) and everything else about
its threat: its budget dataclass (`Budget`: the fields of `ThreatConfig`, hence CLI options), the maximizers that
solve it in training and in the quick attack (`train_solver`, `attack_solver`) and its decision surface
(`surface`); see `base`.  Pixel-wise balls (ℓ∞, ℓ2), the spatial transform (rotation + translation), Gaussian blur
and per-channel contrast/brightness are the registered threats; `Compound` chains them (Appendix F: spatial after
pixel-wise for PGD+/AT+/SRT+, the registered `compound`; pixel-wise after spatial for GridAdv+), and any chain is
named by its parts joined with `+` (`pixel+blur`).

A new threat is one module here (a Neighborhood subclass with its Budget, registered with
`@NEIGHBORHOODS.register(name)`) and one import line below; the import order is the order of `srtbench threats`.
"""

# isort: off
from srtbench.neighborhoods.base import (
    NEIGHBORHOODS, RNG, BoxNeighborhood, ExampleRNG, Neighborhood, Params, Solve, SolverSettings, assign, budget_pgd,
    detach, index, rand, randn, repeat, solve, subset, uniform,
)
from srtbench.neighborhoods.pixel import PixelBall, PixelBudget
from srtbench.neighborhoods.spatial import Spatial, SpatialBudget
from srtbench.neighborhoods.compound import Compound
from srtbench.neighborhoods.blur import BlurBudget, GaussianBlur
from srtbench.neighborhoods.color import ColorBudget, ColorShift
from srtbench.neighborhoods.elastic import Elastic, ElasticBudget  # noqa: F401
from srtbench.neighborhoods.hue_saturation import HueSaturation, HueSaturationBudget  # noqa: F401
# isort: on
from srtbench.neighborhoods.threat import (
    atoms,
    budget_record,
    canonical,
    config_fields,
    field_name,
    part_budget,
    threat_config,
    threat_parts,
)

ThreatConfig = threat_config()  # `threat` plus the budget fields of every threat registered above

__all__ = [
    "BlurBudget", "BoxNeighborhood", "ColorBudget", "ColorShift", "Compound", "ExampleRNG", "GaussianBlur",
    "NEIGHBORHOODS", "Neighborhood", "Params", "PixelBall", "PixelBudget", "RNG", "Solve", "SolverSettings",
    "Spatial", "SpatialBudget", "ThreatConfig", "assign", "atoms", "budget_pgd", "budget_record", "canonical",
    "config_fields", "detach", "field_name", "index", "part_budget", "rand", "randn", "repeat", "solve", "subset",
    "threat_parts", "uniform",
]
