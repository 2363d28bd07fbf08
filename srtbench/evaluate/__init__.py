"""Attack checkpoints with the battery: per-example outcomes, the paper's risks, result rows, sanity flags.

`evaluate(paths, cfg)` runs every attack × budget fraction on the first `n` test examples, writes one
CSV row per (checkpoint, attack, fraction) with `results.append` and the per-example outcomes beside it
with `results.write_per_example`.  Attacks are aimed at the clean prediction C(x), so one run measures
the risks of Definition 2 per example: R_stand = I{C(x) ≠ y}, R_adv = max over N(x) of I{C(x') ≠ y}
(x ∈ N(x), so a misclassified x counts), R_rob = I{C(x') ≠ C(x)}; they obey Lemma 1 by construction, so
they are reported as numbers, not checked.
The worst case over attacks is taken per example ("not min of means"), within each group of attacks (a threat,
and for pixel-wise attacks a norm: `AttackInfo.group`).

Files, in the order the data flows: `config.py` (EvalConfig), `targets.py` (what is attacked, checked first),
`batches.py` (one attack over all examples), `rows.py` (a row's columns), `one_checkpoint.py` (each attack run of
one checkpoint, resumed from its side file), `flags.py` (the flags comparing rows), `evaluation.py` (the whole run).
"""

from srtbench.evaluate.batches import example_rng, run_attack
from srtbench.evaluate.config import EvalConfig
from srtbench.evaluate.evaluation import Summary, evaluate
from srtbench.evaluate.flags import SQUARE_QUERIES, cross_flags
from srtbench.evaluate.one_checkpoint import SUBSET, AttackRun, CheckpointEvaluation
from srtbench.evaluate.targets import Target, check_model, check_out, load_target, sha256, training_columns

__all__ = ["SQUARE_QUERIES", "SUBSET", "AttackRun", "CheckpointEvaluation", "EvalConfig", "Summary", "Target",
           "check_model", "check_out", "cross_flags", "evaluate", "example_rng", "load_target",
           "run_attack", "sha256", "training_columns"]
