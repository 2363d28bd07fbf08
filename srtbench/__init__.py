"""srtbench: adversarial-robustness benchmarking around Semi-supervised Robust Training (SRT)."""

__version__ = "0.2.0.dev0"
