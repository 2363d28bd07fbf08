"""Indicators of attack failure (after Pintor et al. 2022) and the binarization test (Zimmermann et al. 2022):
per-example evidence that an attack could have done better on a model, which the evaluation stores and flags."""
