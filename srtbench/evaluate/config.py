"""EvalConfig: what `srtbench evaluate` attacks with, on how many examples, and where its rows go (declared once)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from srtbench import sources
from srtbench.config import field, require, validate
from srtbench.runtime import DEVICES
from srtbench.sources import robustbench


@dataclass
class EvalConfig:
    attacks: str = field("all", "attacks: all, or a comma list of name or name[key=value,...]")
    fractions: tuple[float, ...] = field((1.0,), "budget fractions (Figures 1 and 7), e.g. 0.2,0.4,0.6,0.8,1.0")
    n: int = field(1000, "evaluate the first N test examples")
    batch_size: int = field(256, "examples per attack batch")
    device: str = field("auto", "auto, cpu or cuda", choices=DEVICES)
    seed: int = field(0, "seed of the attacks' random starts and draws")
    dataset: str | None = field(None, "dataset (default: the checkpoint's; required with --model, unless it names "
                                "an export)")
    data_dir: str | None = field(None, "folder holding the dataset files")
    out: str = field("results/eval.csv", "results CSV (per-example files go to NAME.examples/ beside it)")
    force: bool = field(False, "recompute rows that already exist in --out")
    model: str | None = field(None, "module:function building a foreign model (CKPT is then its state dict); "
                              "zoo:NAME, CKPT's model inside a broken defense (quantized, noisy, saturated, ...); "
                              f"or a model that brings its weights, with no CKPT: {sources.syntaxes()}")
    threat_model: str | None = field(None, f"RobustBench's threat model of --model robustbench:NAME (default "
                                     f"{robustbench.DEFAULT_THREAT})", choices=robustbench.THREATS)
    model_dir: str | None = field(None, "RobustBench's model folder for --model robustbench:NAME, holding "
                                  f"DATASET/THREAT/NAME.pt (default ${robustbench.DIR_ENV}, else ./models)")
    preprocess: str | None = field(None, "module:function: an input transform applied before the model, which the "
                                   "model then declares (attack[bpda=identity] replaces its backward pass)")
    adaptive: bool = field(False, "also run the adaptive attacks the model's checks call for (EOT, BPDA, transfer, "
                           "C&W margin) as extra rows, and the indicators of attack failure and the binarization "
                           "test on every row (srtbench audit prints them)")
    sanity: bool = field(True, "run the sanity checks (a few extra attack runs on 64 examples)")

    def __post_init__(self):
        validate(self)
        require(self.n >= 1, f"--n must be >= 1, got {self.n}")
        require(0 <= self.seed < 2**32, f"--seed must be in [0, 2**32), got {self.seed}")
        require(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        require(len(self.fractions) >= 1, "--fractions is empty")
        for f in self.fractions:
            require(math.isfinite(f) and 0 <= f <= 1, f"--fractions must lie in [0, 1], got {f:g}")
        require(len(set(map(float, self.fractions))) == len(self.fractions),
                f"--fractions lists a value twice: {','.join(f'{f:g}' for f in self.fractions)}")
        require(self.model is None or sources.find(self.model) is not None or all(self.model.partition(":")[::2]),
                f"--model must be module:function, zoo:NAME or one of {sources.syntaxes()}; got {self.model!r}")
        require(self.preprocess is None or all(self.preprocess.partition(":")[::2]),
                f"--preprocess must be module:function, got {self.preprocess!r}")

