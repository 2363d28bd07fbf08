"""srtbench: adversarial-robustness benchmarking around Semi-supervised Robust Training (SRT)."""

__version__ = "0.1.0"
