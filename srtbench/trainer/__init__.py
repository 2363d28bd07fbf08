"""One training loop for every defense: SGD with momentum and weight decay, the paper's schedules,
per-epoch metrics, a quick held-out robustness check, atomic checkpoints, exact resume and DDP.

The loop knows nothing about a defense beyond its objective (srtbench.defenses): each step draws one
batch of m examples (labeled + unlabeled in proportion, Section 4), calls the objective, and takes
an SGD step.  Runs under `torchrun` become DDP runs: every rank gets a disjoint share of each global
batch of both streams, DDP averages the gradients, and only rank 0 writes files.

The package, bottom up: `config` (TrainConfig), `schedules` (learning rates), `run` (Run, TrainResult),
`guards` (stop flag, batch-size fitting, memory and pace checks), `held_out` (the check after an epoch), `totals`
(an epoch's sums), `resume` (checkpointing and resume), `setup` (what a run starts from) and `loop` (`train`).
"""

from srtbench.trainer.config import TrainConfig
from srtbench.trainer.guards import activation_bytes
from srtbench.trainer.held_out import held_out_check, held_out_outcomes
from srtbench.trainer.loop import train
from srtbench.trainer.resume import METRICS_COLUMNS, NOT_FINGERPRINTED
from srtbench.trainer.run import Run, TrainResult
from srtbench.trainer.schedules import learning_rate

__all__ = [
    "METRICS_COLUMNS", "NOT_FINGERPRINTED", "Run", "TrainConfig", "TrainResult", "activation_bytes",
    "held_out_check", "held_out_outcomes", "learning_rate", "train",
]
