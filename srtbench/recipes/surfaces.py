"""The recipe of Figure 3: decision surfaces of standard training and SRT around test images."""

from __future__ import annotations

from srtbench.recipes.planning import Plan, recipe


@recipe("figure3", "Figure 3: decision surfaces of standard training and SRT around test images")
def _figure3(plan: Plan) -> None:
    preset = plan.scale.preset("mnist-pixel")
    models = (plan.train("standard", preset), plan.train("srt", preset, 1.0))
    for index in (0, 1):
        plan.surface(models, "pixel", index)
    spatial = plan.scale.preset("mnist-spatial")
    plan.surface((plan.train("standard", spatial), plan.train("srt", spatial, 0.2)), "spatial", 0)
