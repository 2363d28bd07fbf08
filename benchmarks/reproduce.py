"""An experiment one step after another against `--jobs N` on an embedded Ray, in one run, with the same steps.

    .venv/bin/python benchmarks/reproduce.py [--jobs 2] [--iterations 40] [--seeds 0,1] [--keep DIR]

The experiment is a small recipe: standard training and AT (`--iterations` SGD steps on 2,000 labeled Fashion-MNIST
images) for every seed, each attacked with FGSM and PGD-10 on 500 test images, then the table.  It runs twice in fresh
folders: `srtbench reproduce`'s sequential way (a fresh process per step, all cores each), the same with one thread
per step (SRTBENCH_THREADS=1: what part of the gain is only the thread count, on a machine other jobs share), and on an
embedded Ray with `--jobs` steps at once (each step the cores divided among them; Ray's start-up counts against it).
Prints the wall times, the ratios, and whether the runs' CSVs hold the same numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from srtbench import recipes, results, sweep

ATTACKS = ("fgsm", "pgd[steps=10]")


def experiment(iterations: int, seeds: tuple[int, ...]) -> list[recipes.Step]:
    """Standard training and AT per seed on 2,000 labeled images, each attacked on 500 test images, then a table."""
    return sweep.plan(sweep.Sweep("bench", ("standard", "at"), seeds=seeds, preset="fmnist-pixel-cpu",
                                  train=(("iterations", iterations), ("n_labeled", 2000), ("check_size", 0),
                                         ("amp", False)),
                                  evaluate=(("attacks", ",".join(ATTACKS)), ("n", 500), ("sanity", False))))


def numbers(folder: Path) -> dict:
    frame = results.collect([folder / "results" / "sweeps" / "bench"])
    return {(Path(str(c)).name, a): round(float(r), 4) for c, a, r in
            zip(frame["checkpoint"], frame["attack"], frame["robust_acc"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--keep", default=None, help="run in this folder and keep it (default: a temporary one)")
    args = ap.parse_args()
    from srtbench import scheduler

    steps = experiment(args.iterations, recipes.parse_seeds(args.seeds))
    root = Path(args.keep or tempfile.mkdtemp(prefix="srtbench-bench-"))
    here, timings = os.getcwd(), {}
    quiet = open(os.devnull, "w")  # noqa: SIM115 - the steps' own output is not the measurement
    try:
        for mode in ("sequential", "sequential, 1 thread", f"--jobs {args.jobs}"):
            folder = root / "".join(ch for ch in mode if ch.isalnum())
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            os.chdir(folder)
            start = time.perf_counter()
            if mode.startswith("sequential"):
                if "1 thread" in mode:
                    os.environ["SRTBENCH_THREADS"] = "1"  # inherited by each step's process
                stdout, stderr = os.dup(1), os.dup(2)
                os.dup2(quiet.fileno(), 1)
                os.dup2(quiet.fileno(), 2)
                try:
                    recipes.run(steps, echo=lambda s: None)
                finally:
                    os.dup2(stdout, 1)
                    os.dup2(stderr, 2)
                    os.environ.pop("SRTBENCH_THREADS", None)
            else:
                report = scheduler.run(steps, args.jobs, echo=lambda s: None)
                scheduler.outcome(report, len(steps))
            timings[mode] = time.perf_counter() - start
            os.chdir(here)
        runs = [numbers(root / "".join(ch for ch in mode if ch.isalnum())) for mode in timings]
        same = all(r == runs[0] for r in runs)
    finally:
        os.chdir(here)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{len(steps)} steps ({len(steps) // 2} trainings of {args.iterations} SGD steps + evaluations + table), "
          f"{cores} cores, python {sys.version.split()[0]}")
    par = timings[f"--jobs {args.jobs}"]
    for mode, seconds in timings.items():
        print(f"  {mode:22s} {seconds:7.1f} s  {seconds / par:5.2f}x the --jobs {args.jobs} time")
    print(f"  same numbers in every run: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
