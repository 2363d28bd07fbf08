"""Training throughput of one PGD-AT step, measured in one run: fp32 against bf16 autocast with channels_last (the
trainer's CUDA defaults, `--no-amp` is the fp32 one), and the loop as the trainer runs it (totals kept on the device,
nothing read back per step) against one that reads its five metrics back with `.item()` each step, as it did before.

    python benchmarks/training.py [--model wrn-34-10] [--batch-size 128] [--steps 10] [--pgd-steps 10] [--rounds 3]

The paper-scale question is WRN-34-10 PGD-10 on CIFAR-10 shapes on a GPU; on a CPU the default is SmallCNN on
Fashion-MNIST shapes (bf16 autocast and channels_last are CUDA-only in the trainer, so a CPU run times fp32 twice and
says so). Variants run interleaved, round after round, and each reports its best round, so drift hits all alike.
Images/s counts the training images of a step (its PGD passes are the cost, not extra images).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from tabulate import tabulate

from srtbench.data import DATASETS, Batch
from srtbench.defenses import DEFENSES, DefenseParams
from srtbench.models import create_model
from srtbench.neighborhoods import PixelBall
from srtbench.runtime import device_label, resolve_device, set_threads


def make_step(model, optimizer, params, neighborhood, amp: bool, read_back: bool):
    """One SGD step of PGD-AT as the trainer takes it; `read_back` adds the old per-step `.item()` of five values."""
    objective = DEFENSES.get("at").objective
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    gen = torch.Generator().manual_seed(0)
    totals = torch.zeros(5, dtype=torch.float64, device=next(model.parameters()).device)

    def step(batch: Batch) -> None:
        model.train()
        with autocast:
            out = objective(model, batch, neighborhood, params, gen)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        values = [out[k].detach() for k in ("loss", "natural", "robust", "correct", "count")]
        if read_back:
            for v in values:
                v.item()
        else:
            totals.add_(torch.stack([v.to(totals) for v in values]))

    return step


def variant(name: str, model_name: str, spec, device, batch_size: int, pgd_steps: int, amp: bool,
            channels_last: bool, read_back: bool):
    torch.manual_seed(0)
    model = create_model(model_name, spec.shape, spec.num_classes, spec.mean, spec.std).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    params = DefenseParams(steps=pgd_steps, step_size=2.5 * 8 / 255 / pgd_steps, start="uniform")
    x = torch.rand(batch_size, *spec.shape, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    batch = Batch(x, torch.randint(0, spec.num_classes, (batch_size,), device=device), None)
    return name, make_step(model, optimizer, params, PixelBall(8 / 255, "linf"), amp, read_back), batch


def timed(step, batch, steps: int, device) -> float:
    """Seconds for `steps` steps, the device drained before and after (the only syncs)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default=None, help="default: wrn-34-10 on CUDA, small-cnn on a CPU")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="SGD steps per round")
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    threads = set_threads()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    model_name = args.model or ("wrn-34-10" if cuda else "small-cnn")
    spec = DATASETS.get("cifar10" if model_name == "wrn-34-10" else "fashion-mnist")
    variants = [
        variant("fp32 (--no-amp), no per-step read-back", model_name, spec, device, args.batch_size, args.pgd_steps,
                False, False, False),
        variant("bf16 autocast + channels_last (CUDA default)", model_name, spec, device, args.batch_size,
                args.pgd_steps, cuda, cuda, False),
        variant("fp32, five .item() per step (the old loop)", model_name, spec, device, args.batch_size,
                args.pgd_steps, False, False, True),
    ]
    for _, step, batch in variants:  # warm-up: allocator, cuDNN autotuning
        step(batch)
    best = {name: float("inf") for name, _, _ in variants}
    for _ in range(args.rounds):
        for name, step, batch in variants:
            best[name] = min(best[name], timed(step, batch, args.steps, device))
    base = best[variants[0][0]]
    rows = [[name, f"{args.steps * args.batch_size / t:,.1f}", f"{base / t:.2f}×"] for name, t in best.items()]
    print(f"{model_name}, PGD-{args.pgd_steps} AT, batch {args.batch_size}, {args.steps} steps × {args.rounds} rounds "
          f"(best round), {device_label(device)}, {threads} torch threads")
    if not cuda:
        print("no CUDA device: bf16 autocast and channels_last are CUDA-only in the trainer, so that row is fp32 too")
    print(tabulate(rows, headers=["variant", "images/s", "vs fp32"], tablefmt="github"))


if __name__ == "__main__":
    main()
