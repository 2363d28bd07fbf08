"""Point-wise attack: native (batched) against foolbox 3.3.4's PointwiseAttack, in one run on the same images.

    .venv/bin/python benchmarks/pointwise.py [--quick] [--n 100] [--rounds 1] [--threads 1]

For each of models/fmnist-srt-pixel.pt and models/fmnist-standard.pt, attacks the first N Fashion-MNIST test images
(target: the clean prediction, as `srtbench evaluate` does) with `pointwise` and `pointwise[library=foolbox]`,
interleaved (native, foolbox, native, foolbox, ... over `--rounds` rounds, so machine load hits both alike), and prints
images/s, success (examples found adversarial), median ℓ0 (changed input values, over the examples each found
adversarial, and over those both found) and the mean ℓ0 where both found, native / foolbox.  Issue 15's target:
native ≥ 20× foolbox's images/s at an equal or smaller median ℓ0 and equal success.
"""

from __future__ import annotations

import argparse
import time

import torch
from tabulate import tabulate

from srtbench import checkpoint, data
from srtbench.attacks import build

MODELS = ("models/fmnist-srt-pixel.pt", "models/fmnist-standard.pt")


def run(spec: str, model, x, target, seed: int):
    atk = build(spec, "fashion-mnist")
    start = time.perf_counter()
    out = atk(model, x, target, torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        broken = model(out.x_adv).argmax(1) != target
    found = torch.isfinite(out.distance)
    assert not (found & ~broken).any(), f"{spec} reports an adversarial it does not have"
    return seconds, out.distance


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="test images per model (the first N)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved native/foolbox runs per model")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (set explicitly, both attacks alike)")
    ap.add_argument("--quick", action="store_true", help="n = 40, one round")
    args = ap.parse_args()
    if args.quick:
        args.n, args.rounds = 40, 1
    torch.set_num_threads(args.threads)
    x, _ = data.load("fashion-mnist", False, None).batch(torch.arange(args.n))
    rows = []
    for path in MODELS:
        model = checkpoint.load(path).build_model().eval()
        with torch.no_grad():
            target = model(x).argmax(1)
        seconds = {"native": 0.0, "foolbox": 0.0}
        distances = {"native": [], "foolbox": []}
        for r in range(args.rounds):
            for library in ("native", "foolbox"):
                t, distance = run(f"pointwise[library={library}]", model, x, target, seed=r)
                seconds[library] += t
                distances[library].append(distance)
        d = {library: torch.cat(ds) for library, ds in distances.items()}
        found = {library: torch.isfinite(v) for library, v in d.items()}
        both = found["native"] & found["foolbox"]
        med = {library: v[found[library]].median().item() for library, v in d.items()}
        common = {library: v[both].median().item() for library, v in d.items()}
        speed = {library: args.n * args.rounds / t for library, t in seconds.items()}
        rows.append([path.split("/")[-1], f"{speed['native']:.1f}", f"{speed['foolbox']:.2f}",
                     f"{seconds['foolbox'] / seconds['native']:.1f}×",
                     f"{int(found['native'].sum())} / {int(found['foolbox'].sum())}",
                     f"{med['native']:g} / {med['foolbox']:g}", f"{common['native']:g} / {common['foolbox']:g}",
                     f"{d['native'][both].mean():.2f} / {d['foolbox'][both].mean():.2f}"])
    print(f"point-wise on the first {args.n} Fashion-MNIST test images, {args.rounds} interleaved round(s),"
          f" torch threads {torch.get_num_threads()}")
    print(tabulate(rows, headers=["model", "native img/s", "foolbox img/s", "speed-up", "found native / foolbox",
                                  "median ℓ0", "median ℓ0 where both found", "mean ℓ0 where both found"]))


if __name__ == "__main__":
    main()
