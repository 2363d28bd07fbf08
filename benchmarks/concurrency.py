"""Two evaluations side by side against one: does `SRTBENCH_THREADS=1` per run use the cores without
oversubscribing them?  Wall times measured in one run of this script (a number without its command is no claim).

    .venv/bin/python benchmarks/concurrency.py [--checkpoint models/fmnist-srt-pixel.pt] [--attacks pgd] [--n 300]

Runs `srtbench evaluate CKPT --attacks A --n N --no-sanity` (each into its own temporary CSV) three ways:
one run with SRTBENCH_THREADS=1, one run with SRTBENCH_THREADS=2 (both cores), and two runs at once with
SRTBENCH_THREADS=1 each, and prints each wall time and the throughput (evaluations per minute).  Two runs side
by side should finish in about the time of one (two cores, one each): throughput ×2 against one 1-thread run,
and above one 2-thread run (a small CNN does not use two threads fully).  Other jobs on the machine slow every
mode alike only if they run throughout: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRTBENCH = str(Path(sys.executable).with_name("srtbench"))


def evaluate(args, threads: int, folder: str, tag: str) -> subprocess.Popen:
    cmd = [SRTBENCH, "evaluate", args.checkpoint, "--attacks", args.attacks, "--n", str(args.n), "--no-sanity",
           "--force", "--out", os.path.join(folder, f"{tag}.csv")]
    env = {**os.environ, "SRTBENCH_THREADS": str(threads)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wall(runs: list[subprocess.Popen]) -> float:
    start = time.perf_counter()
    for run in runs:
        _, err = run.communicate()
        if run.returncode:
            sys.exit(f"srtbench evaluate failed:\n{err}")
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="models/fmnist-srt-pixel.pt")
    ap.add_argument("--attacks", default="pgd")
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        one = wall([evaluate(args, 1, folder, "one")])
        one_two = wall([evaluate(args, 2, folder, "one-2-threads")])
        two = wall([evaluate(args, 1, folder, "a"), evaluate(args, 1, folder, "b")])
    print(f"srtbench evaluate {args.checkpoint} --attacks {args.attacks} --n {args.n} on {os.cpu_count()} cores")
    for label, seconds, runs in (("one run, SRTBENCH_THREADS=1", one, 1), ("one run, SRTBENCH_THREADS=2", one_two, 1),
                                 ("two runs at once, SRTBENCH_THREADS=1 each", two, 2)):
        print(f"  {label:44s} {seconds:7.1f} s wall, {60 * runs / seconds:6.2f} evaluations/min")
    print(f"two at once against one 1-thread run: throughput ×{2 * one / two:.2f};"
          f" against one 2-thread run: ×{2 * one_two / two:.2f}")


if __name__ == "__main__":
    main()
