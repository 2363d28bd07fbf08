"""Every paper experiment as one recipe: the ordered training, evaluation and table or plot steps that produce it.

A recipe is a function of the scale returning `Step`s.  A step holds the configs of the library call it makes
(a training: the defense, preset and options that build a `trainer.Run`; an evaluation: checkpoints and an
`EvalConfig`; a table or plot: its arguments) and prints as the equivalent command line (`Step.command`, what
`srtbench reproduce --dry-run` lists and what a user can type).  `--scale paper` uses the paper's presets
(MNIST, CIFAR-10, the paper's models and schedules, full test sets).  `--scale cpu` runs the same
experiment on Fashion-MNIST with SmallCNN through the `fmnist-{pixel,spatial,compound}-cpu` presets
(the paper's 10,000 labeled + 50,000 unlabeled images, PGD-5 / worst-of-10, short schedules), every
run for 4,800 SGD steps (equal steps, the default: what 10 epochs of D_L ∪ D_U take; `--protocol epochs`:
5 epochs, 400 steps on D_L, 2,400 for the defenses whose epochs cover D_L ∪ D_U), attacked at the presets' budget
(ℓ∞ 0.1) on the first 1,000 test images (250 for the slow minimum-norm attacks and AutoAttack).  Every evaluation
names its attacks' budgets and steps (`pgd[epsilon=0.031,steps=20,step_size=0.003]`): at `--scale paper` the
settings of the table's appendix for its dataset (`PAPER_ATTACKS`), at `--scale cpu` Appendix C's for ε 0.1
(`CPU_ATTACKS`), so no number depends on the battery's defaults, which follow the attacked checkpoint's training
budget. Results go to one CSV per checkpoint in the scale's folder (results/fmnist/: a checkpoint is attacked once
for every experiment that shows it), each experiment's table and figures to FOLDER/EXPERIMENT/. CIFAR-10 and MNIST
settings both map to the one Fashion-MNIST preset of their threat, so a two-dataset table has one Fashion-MNIST
group. A step whose output exists (evaluate: holds every row it would write, for the checkpoint as it is now) is
skipped, so an interrupted recipe resumes where it stopped; tables and plots are always redrawn.

Two axes apply to every recipe: seeds (`plan(..., seeds=(0, 1, 2))` trains and evaluates each run once per
training seed; seed 0 keeps the paths of a single-seed run, seed s adds `-sS`) and the protocol: `steps`, the cpu
scale's default, gives every run of the experiment the SGD steps of a semi-supervised run, as the official code
trains RT and SRT, in a `PRESET-steps/` folder of its own; `epochs`, the paper scale's (its presets count epochs),
gives every run the same passes over its data; the paper says neither.  Steps run one after another in fresh
processes (`run`), or side by side on Ray (`srtbench.scheduler`).

The modules, each importing only those before it: `jobs` (what a step runs, and its command line), `step`,
`settings` (the attacks' settings of each scale), `scales`, `planning` (`Plan`, `recipe`, `RECIPES`), the recipes
(`main_tables`, `fast`, `figures`, `quick`, `surfaces`), and `runner` (`plan`, `run`).  A new experiment is one
decorated function in a recipe module; the order of the imports below is the order of `srtbench reproduce --list`.
"""

# isort: off
from srtbench.recipes import main_tables  # noqa: F401  (registers table1 ... table6)
from srtbench.recipes import fast  # noqa: F401  (registers table8, table9)
from srtbench.recipes import figures  # noqa: F401  (registers figure1, figure2, figure7, figure9)
from srtbench.recipes import quick  # noqa: F401  (registers quick)
from srtbench.recipes import surfaces  # noqa: F401  (registers figure3)
# isort: on
from srtbench.errors import SrtbenchError
from srtbench.recipes.fast import FAST_SHARE
from srtbench.recipes.figures import (
    COMPOUND,
    FAST_SWEEP,
    FRACTIONS,
    N_LABELED,
    N_UNLABELED,
    SRT_PLUS,
    UNLABELED_SWEEP,
)
from srtbench.recipes.jobs import EvaluateJob, Job, PlotJob, TableJob, TrainJob
from srtbench.recipes.main_tables import MINIMUM_NORM, TODAY
from srtbench.recipes.planning import PROTOCOLS, RECIPES, Plan, check_protocol, check_scale, recipe, seed_suffix
from srtbench.recipes.quick import QUICK_N, QUICK_REFERENCE
from srtbench.recipes.runner import SKIPPED, dependencies, parse_seeds, plan, plan_all, run, skipped
from srtbench.recipes.scales import LABELED_UNIT, SCALE_PRESETS, SCALES, Scale
from srtbench.recipes.settings import (
    COMPOUND_ATTACKS,
    CPU_ATTACKS,
    CPU_EPSILON,
    CPU_PGD,
    GRID,
    PAPER_ATTACKS,
    PAPER_SPATIAL,
    TABLE4,
    paper_pixel,
)
from srtbench.recipes.step import Step, evaluate_step, train_step
from srtbench.tables.layouts import PIXEL_ATTACKS, SPATIAL_ATTACKS

__all__ = [
    "COMPOUND", "COMPOUND_ATTACKS", "CPU_ATTACKS", "CPU_EPSILON", "CPU_PGD", "FAST_SHARE", "FAST_SWEEP", "FRACTIONS",
    "GRID", "LABELED_UNIT", "MINIMUM_NORM", "N_LABELED", "N_UNLABELED", "PAPER_ATTACKS", "PAPER_SPATIAL",
    "PIXEL_ATTACKS", "PROTOCOLS", "QUICK_N", "QUICK_REFERENCE", "RECIPES", "SCALES", "SCALE_PRESETS", "SKIPPED",
    "SPATIAL_ATTACKS", "SRT_PLUS", "TABLE4", "TODAY", "UNLABELED_SWEEP", "EvaluateJob", "Job", "Plan", "PlotJob",
    "Scale", "SrtbenchError", "Step", "TableJob", "TrainJob", "check_protocol", "check_scale", "dependencies",
    "evaluate_step", "paper_pixel", "parse_seeds", "plan", "plan_all", "recipe", "run", "seed_suffix", "skipped",
    "train_step",
]
