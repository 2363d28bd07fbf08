"""Memory layout on the CPU: an evaluated model in channels_last (what `srtbench evaluate` uses there,
`runtime.fast_layout`) against the contiguous layout it is stored in, in one run on the same images.

    .venv/bin/python benchmarks/layout.py [--n 500] [--rounds 3] [--threads 1] [--model models/fmnist-at.pt]

Times, interleaved (contiguous, channels_last, contiguous, ... over `--rounds` rounds, so machine load hits both
alike): a forward pass over N test images in batches of 128 (what clean accuracy, Square and every prediction
cost), a forward and backward pass to the input (one PGD step), and PGD-40 at the model's own budget through
`srtbench.attacks`. Prints seconds and the channels_last speed-up (contiguous / channels_last) of each, and checks
that both layouts agree: the logits within 1e-4; it prints the share of clean predictions PGD leaves in each.
"""

from __future__ import annotations

import argparse
import time

import torch
from tabulate import tabulate

from srtbench import checkpoint, data
from srtbench.attacks import build

BATCH = 128


def forward(model, x):
    with torch.no_grad():
        return torch.cat([model(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def forward_backward(model, x):
    for i in range(0, len(x), BATCH):
        xb = x[i:i + BATCH].clone().requires_grad_(True)
        model(xb).logsumexp(1).sum().backward()


def pgd(model, x, target, spec):
    out = build(spec, "fashion-mnist")(model, x, target, torch.Generator().manual_seed(0))
    with torch.no_grad():
        return (forward(model, out.x_adv).argmax(1) == target).float().mean().item() * 100


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="test images (the first N)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs of each layout")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (both layouts alike)")
    ap.add_argument("--model", default="models/fmnist-at.pt")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, _ = data.load("fashion-mnist", False, None).batch(torch.arange(args.n))
    ckpt = checkpoint.load(args.model)
    models = {"contiguous": ckpt.build_model().eval(),
              "channels_last": ckpt.build_model().eval().to(memory_format=torch.channels_last)}
    target = forward(models["contiguous"], x).argmax(1)
    spec = "pgd[epsilon=0.1,steps=40,step_size=0.005]"
    tasks = {"forward": lambda m: forward(m, x), "forward+backward": lambda m: forward_backward(m, x),
             "PGD-40": lambda m: pgd(m, x, target, spec)}
    seconds = {(task, layout): 0.0 for task in tasks for layout in models}
    outputs = {}
    for _ in range(args.rounds):
        for task, run in tasks.items():
            for layout, model in models.items():
                start = time.perf_counter()
                outputs[task, layout] = run(model)
                seconds[task, layout] += time.perf_counter() - start
    diff = (outputs["forward", "contiguous"] - outputs["forward", "channels_last"]).abs().max().item()
    assert diff <= 1e-4, f"the layouts' logits differ by {diff:.2e}"
    pgd_accs = (outputs["PGD-40", "contiguous"], outputs["PGD-40", "channels_last"])
    rows = [(task, f"{seconds[task, 'contiguous'] / args.rounds:.2f}",
             f"{seconds[task, 'channels_last'] / args.rounds:.2f}",
             f"{seconds[task, 'contiguous'] / seconds[task, 'channels_last']:.2f}×") for task in tasks]
    print(f"{args.model}, {args.n} images, {args.threads} thread(s), {args.rounds} interleaved rounds; "
          f"logits differ by at most {diff:.1e}; PGD-40 keeps the clean prediction on {pgd_accs[0]:.2f}% / "
          f"{pgd_accs[1]:.2f}%")
    print(tabulate(rows, headers=("task", "contiguous s", "channels_last s", "speed-up"), tablefmt="github"))


if __name__ == "__main__":
    main()
