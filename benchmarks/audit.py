"""`srtbench audit` on the broken-defense zoo and the shipped honest models, and what an audit costs.

    .venv/bin/python benchmarks/audit.py [--n 200] [--cost-n 1000]

Part 1, for each broken defense of srtbench/broken.py around models/fmnist-standard.pt (and the plain model, the
undefended reference): the cause the audit names, plain PGD-40's robust accuracy, the lowest accuracy of the
adaptive attacks the audit adds, and that attack's binarization pass rate (issue 22: the adaptive number comes within
5 points of the undefended model's, or the binarization test supports it).  Then each shipped model: the audit's
verdict and the binarization pass rate of PGD.

Part 2: the audit's wall time on the first --cost-n images of models/fmnist-srt-pixel.pt, in units of one PGD-40
run on the same images measured just before it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from srtbench.audit import spec_text
from srtbench.broken import BROKEN

STANDARD = "models/fmnist-standard.pt"
SHIPPED = ("standard", "at", "srt-pixel", "srt-spatial", "srt-plus")


def audit(path: str, out: Path, n: int, *extra: str) -> tuple[int, str, pd.DataFrame]:
    cmd = [sys.executable, "-m", "srtbench", "audit", path, "--n", str(n), "--out", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = pd.read_csv(out) if out.exists() else pd.DataFrame()
    return proc.returncode, proc.stdout, rows


def binarization(row) -> str:
    flag = json.loads(row["flags"]).get("binarization")
    if not flag:
        return "n/a"
    passed, _, rest = flag["detail"].replace("binarization test passed on ", "").partition(" of ")
    return f"{passed}/{rest.split()[0]}"


def zoo(n: int, folder: Path) -> None:
    table = []
    for name in ["(none)", *BROKEN.names()]:
        extra = () if name == "(none)" else ("--model", f"zoo:{name}")
        code, text, rows = audit(STANDARD, folder / f"{name.strip('()')}.csv", n, "--attacks", "pgd", *extra)
        plain = rows[rows["attack_params"].map(lambda p: "eot" not in p and "bpda" not in p)
                     & (rows["attack"] == "pgd")]
        adaptive = rows.drop(plain.index)
        best = adaptive.loc[adaptive["robust_acc"].idxmin()] if len(adaptive) else None
        causes = [line.split(":")[0].replace("CAUSE ", "") for line in text.splitlines() if "CAUSE" in line]
        table.append([name, "; ".join(c.strip() for c in causes) or "-", f"{plain['robust_acc'].iloc[0]:.1f}",
                      "-" if best is None else spec_text(best["attack"], best["attack_params"]),
                      "-" if best is None else f"{best['robust_acc']:.1f}",
                      "-" if best is None else binarization(best), code])
    print(tabulate(table, headers=["zoo", "cause named", "PGD %", "adaptive attack", "adaptive %",
                                   "its binarization", "exit"]))


def shipped(n: int, folder: Path) -> None:
    table = []
    for name in SHIPPED:
        code, text, rows = audit(f"models/fmnist-{name}.pt", folder / f"shipped-{name}.csv", n)
        pgd = rows[rows["attack"] == "pgd"].iloc[0]
        verdict = next((line.strip() for line in text.splitlines() if "VERDICT" in line), "")
        table.append([name, f"{pgd['robust_acc']:.1f}", binarization(pgd), verdict[:60], code])
    print(tabulate(table, headers=["shipped model", "PGD %", "PGD binarization", "verdict", "exit"]))


def cost(n: int, folder: Path) -> None:
    path = "models/fmnist-srt-pixel.pt"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "srtbench", "evaluate", path, "--attacks", "pgd", "--n", str(n),
                    "--no-sanity", "--out", str(folder / "pgd.csv")], capture_output=True, check=True)
    pgd = time.perf_counter() - start
    start = time.perf_counter()
    audit(path, folder / "cost.csv", n)
    spent = time.perf_counter() - start
    print(f"\naudit of {path} on {n} images: {spent:.0f} s = {spent / pgd:.1f} PGD-40 runs ({pgd:.0f} s each, "
          "process start included in both)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--cost-n", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        zoo(args.n, folder)
        print()
        shipped(args.n, folder)
        cost(args.cost_n, folder)


if __name__ == "__main__":
    main()
