"""Attack speed, measured in one run on the same model and inputs (a number without its command is no claim).

    python benchmarks/attacks.py [--quick] [--checkpoint runs/x.pt] [--n 500] [--device auto]

PGD-20 (ℓ∞): images/s of ours (early stop + keep-best, as `srtbench evaluate` runs it, and all 20 steps),
torchattacks.PGD, foolbox LinfPGD, and the floor of 20 forward+backward passes on the same batch.
GridAdv: ours against foolbox's SpatialAttack configured to the same 31 × 5 × 5 = 775-point grid, with
the robust accuracy each finds.  Prints a table of ratios.  Without --checkpoint, a SmallCNN is trained
for a few hundred SGD steps on Fashion-MNIST first (seconds), so that accuracies mean something.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from tabulate import tabulate

from srtbench import checkpoint, data
from srtbench.attacks import build
from srtbench.maximizers import PGD, cross_entropy
from srtbench.models import create_model
from srtbench.runtime import resolve_device


def timed(fn, device, repeat: int = 1):
    """Best wall time of `repeat` runs (after one warm-up), and the last result."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def quick_model(steps: int, device) -> torch.nn.Module:
    train = data.load("fashion-mnist", True)
    spec = data.DATASETS.get("fashion-mnist")
    torch.manual_seed(0)
    model = create_model("small-cnn", spec.shape, spec.num_classes, spec.mean, spec.std).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = train.batch(torch.randint(0, len(train), (128,), generator=gen))
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def accuracy(model, x_adv, y) -> float:
    with torch.no_grad():
        return 100 * (model(x_adv).argmax(1) == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="srtbench checkpoint to attack (default: a quickly trained SmallCNN)")
    ap.add_argument("--n", type=int, default=500, help="images in the batch (same for every attack)")
    ap.add_argument("--epsilon", type=float, default=0.1, help="ℓ∞ budget of PGD-20")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per method (best is kept)")
    ap.add_argument("--quick", action="store_true", help="n = 100, best of 2 runs, GridAdv on 100 images")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeat = 100, 2
    import foolbox as fb
    import torchattacks as ta

    device = resolve_device(args.device)
    if args.checkpoint:
        ck = checkpoint.load(args.checkpoint)
        model, dataset = ck.build_model().to(device).eval(), ck.meta["dataset"]
    else:
        model, dataset = quick_model(100 if args.quick else 300, device), "fashion-mnist"
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = data.load(dataset, False).batch(torch.arange(args.n))
    x, y = x.to(device), y.to(device)
    eps, steps, alpha = args.epsilon, 20, args.epsilon / 8
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731

    def floor():
        for _ in range(steps):
            xr = x.clone().requires_grad_(True)
            torch.autograd.grad(cross_entropy(model(xr), y).sum(), xr)
        return x

    ours = build(f"pgd[epsilon={eps},steps={steps},step_size={alpha},start=uniform]", dataset)
    full = PGD(steps, alpha, "uniform")  # no early stop: every example takes all 20 steps
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    methods = {
        "floor: 20 × (forward + backward)": floor,
        "srtbench PGD-20 (early stop, keep-best)": lambda: ours(model, x, y, gen()).x_adv,
        "srtbench PGD-20 (all steps)": lambda: ours.neighborhood.apply(
            x, full(model, ours.neighborhood, x, y, cross_entropy, None, gen())),
        "torchattacks.PGD": lambda: ta.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y),
        "foolbox LinfPGD": lambda: fb.attacks.LinfPGD(abs_stepsize=alpha, steps=steps, random_start=True)(
            fmodel, x, y, epsilons=eps)[1],
    }
    # round robin over methods, best of `repeat` each: load from other processes hits every method alike
    times = {name: float("inf") for name in methods}
    outputs = {}
    for _ in range(args.repeat):
        for name, fn in methods.items():
            t, outputs[name] = timed(fn, device, 1)
            times[name] = min(times[name], t)
    rows = []
    for name in methods:
        t = times[name]
        acc = "" if name.startswith("floor") else f"{accuracy(model, outputs[name], y):.1f}"
        rows.append([name, f"{args.n / t:.0f}", f"{t / times['floor: 20 × (forward + backward)']:.2f}", acc])
    lib_best = min(times["torchattacks.PGD"], times["foolbox LinfPGD"])
    print(f"\nPGD-20, ε = {eps:g}, step {alpha:g}, {args.n} {dataset} images on {device}")
    print(tabulate(rows, headers=["method", "images/s", "time / floor", "robust acc %"]))
    print(f"ours (early stop) vs fastest library: {lib_best / times['srtbench PGD-20 (early stop, keep-best)']:.2f}x"
          f" faster; all steps vs fastest library: {lib_best / times['srtbench PGD-20 (all steps)']:.2f}x")

    n_grid = min(args.n, 100 if args.quick else 500)
    xg, yg = x[:n_grid], y[:n_grid]
    grid = build("gridadv", dataset)
    spatial = fb.attacks.SpatialAttack(max_translation=3, max_rotation=30, num_translations=5, num_rotations=31,
                                       grid_search=True)
    t_ours, adv_ours = timed(lambda: grid(model, xg, yg).x_adv, device, 1)
    t_fb, adv_fb = timed(lambda: spatial(fmodel, xg, yg)[1], device, 1)
    acc_ours, acc_fb = accuracy(model, adv_ours, yg), accuracy(model, adv_fb, yg)
    print(f"\nGridAdv, 31 × 5 × 5 = 775 transforms, {n_grid} images (clean {accuracy(model, xg, yg):.1f}%)")
    print(tabulate([["srtbench gridadv", f"{n_grid / t_ours:.1f}", f"{acc_ours:.1f}"],
                    ["foolbox SpatialAttack", f"{n_grid / t_fb:.1f}", f"{acc_fb:.1f}"]],
                   headers=["method", "images/s", "robust acc %"]))
    print(f"speed-up {t_fb / t_ours:.1f}x, accuracy difference {acc_ours - acc_fb:+.1f} pt"
          " (the two resample images with different bilinear conventions)")


if __name__ == "__main__":
    main()
