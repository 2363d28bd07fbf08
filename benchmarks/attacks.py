"""Attack speed, measured in one run on the same model and inputs (a number without its command is no claim).

    python benchmarks/attacks.py [--quick] [--checkpoint runs/x.pt] [--n 500] [--device auto] [--only pgd,srt-step]

PGD-20 (ℓ∞): images/s of ours (early stop + keep-best, as `srtbench evaluate` runs it, and all 20 steps),
torchattacks.PGD, foolbox LinfPGD, and the floor of 20 forward+backward passes on the same batch.
GridAdv: ours against foolbox's SpatialAttack configured to the same 31 × 5 × 5 = 775-point grid, with
the robust accuracy each finds.  Prints a table of ratios.  Without --checkpoint, a SmallCNN is trained
for a few hundred SGD steps on Fashion-MNIST first (seconds), so that accuracies mean something.
JSMA: ours against torchattacks' at γ 1 and γ 0.1 (identical images per example).  C&W-ℓ2: ours (the default,
native) against foolbox's on the robust `models/fmnist-srt-pixel.pt` and the standard `models/fmnist-standard.pt`
(examples found, median ℓ2, examples ours finds more than 2% farther).
AutoAttack: our cascade against the official implementation (`pyautoattack`, version='standard') on the same
images of the robust `models/fmnist-srt-pixel.pt` at ε 0.1 (its own budget): robust accuracy and time.
autoattack-floor: each stage's time and passes per example, against the cost of those passes here (the floor).
threads (CPU): one forward and one forward + backward per image at 1 thread and at every usable core.
srt-step: the training guard, one SRT step with K = 5 against one standard step (< K + 1.5).
Every section prints the torch thread count it ran with ($SRTBENCH_THREADS sets it, as for `srtbench`).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from functools import partial

import torch
import torch.nn.functional as F
from tabulate import tabulate

from srtbench import checkpoint, data
from srtbench.attacks import build
from srtbench.maximizers import PGD, cross_entropy
from srtbench.models import create_model
from srtbench.runtime import resolve_device, set_threads

SECTIONS = ("pgd", "gridadv", "jsma", "cw-l2", "autoattack", "autoattack-floor", "threads", "srt-step")
ROBUST_MODEL = "models/fmnist-srt-pixel.pt"  # trained at ℓ∞ 0.1: few examples break early, every stage runs
STANDARD_MODEL = "models/fmnist-standard.pt"


def timed(fn, device, repeat: int = 1):
    """Best wall time of `repeat` runs (after one warm-up), and the last result; repeat 0: one run, no warm-up."""
    if repeat == 0:
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, out
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


def robust_batch(n: int, device, path: str = ROBUST_MODEL):
    """A reference model (by default the robust one, trained at ℓ∞ 0.1) and its first `n` test images."""
    ck = checkpoint.load(path)
    model = ck.build_model().to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = data.load(ck.meta["dataset"], False).batch(torch.arange(n))
    return model, ck.meta["dataset"], x.to(device), y.to(device)


def bench_jsma(args, model, x, y, device):
    """Our batched JSMA against torchattacks' on the same images at θ 1 with γ 1 (our default) and γ 0.1
    (torchattacks' default): time, and identical adversarial images per example (the claim)."""
    import torchattacks as ta

    n = min(len(x), 10 if args.quick else 50)
    x, y = x[:n], y[:n]
    rows = []
    for gamma in (1.0, 0.1):
        ours = build(f"jsma[theta=1.0,gamma={gamma}]", "fashion-mnist")
        t_ours, adv_ours = timed(lambda ours=ours: ours(model, x, y).x_adv, device, 0)
        t_ta, adv_ta = timed(lambda gamma=gamma: ta.JSMA(model, theta=1.0, gamma=gamma)(x, y), device, 0)
        same = int(((adv_ours - adv_ta).flatten(1).abs().amax(1) <= 1e-6).sum())
        rows.append([f"γ {gamma:g}", f"{n / t_ours:.2f}", f"{n / t_ta:.3f}", f"{t_ta / t_ours:.1f}x",
                     f"{accuracy(model, adv_ours, y):.1f} / {accuracy(model, adv_ta, y):.1f}", f"{same}/{n}"])
    print(f"\nJSMA θ 1, {n} images on {device}, {torch.get_num_threads()} threads (ours, then torchattacks, per γ)")
    print(tabulate(rows, headers=["setting", "srtbench img/s", "torchattacks img/s", "speed-up",
                                  "robust acc % ours / torchattacks", "identical images"]))


def _distances(attack, model, x, target):
    return attack(model, x, target).distance


def bench_cw_l2(args, device):
    """Our C&W-ℓ2 (warm-started, stops per example) against foolbox's L2CarliniWagnerAttack (the same settings:
    9 binary-search steps of 100 Adam steps) on the same images of the robust and the standard reference model:
    time, runs of Adam per image, examples found, median ℓ2 (ours no larger than foolbox's beyond 2%: the rule)."""
    n = 20 if args.quick else 100
    rows = []
    for path in (ROBUST_MODEL, STANDARD_MODEL):
        model, dataset, x, _ = robust_batch(n, device, path)
        with torch.no_grad():
            pred = model(x).argmax(1)
        ours, ref = build("cw-l2[library=native]", dataset), build("cw-l2[library=foolbox]", dataset)
        t_ours, d_ours = timed(partial(_distances, ours, model, x, pred), device, 0)
        t_ref, d_ref = timed(partial(_distances, ref, model, x, pred), device, 0)
        worse = int((d_ours > 1.02 * d_ref).sum())
        runs = ours.algorithm.runs / n
        rows.append([path, f"{t_ours:.1f} / {t_ref:.1f}", f"{t_ref / t_ours:.2f}x", f"{runs:.1f} / 9",
                     f"{int(torch.isfinite(d_ours).sum())} / {int(torch.isfinite(d_ref).sum())}",
                     f"{d_ours.median():.4f} / {d_ref.median():.4f}", f"{d_ours.median() / d_ref.median():.3f}",
                     f"{worse}/{n}"])
    print(f"\nC&W-ℓ2 (steps 100, binary search ≤ 9), {n} images per model on {device},"
          f" {torch.get_num_threads()} threads: ours / foolbox")
    print(tabulate(rows, headers=["model", "time s", "speed-up", "Adam runs / image", "found", "median ℓ2",
                                  "median ratio", "examples > 2% farther"]))


def bench_autoattack(args, device):
    """Our AutoAttack cascade against the official one (pyautoattack, version='standard') on the same images:
    robust accuracy within one example, and time."""
    from pyautoattack import AutoAttack

    n, eps = (25 if args.quick else 100), 0.1
    model, dataset, x, y = robust_batch(n, device)
    ours = build(f"autoattack[epsilon={eps}]", dataset)
    logging.getLogger("auto-attack").setLevel(logging.WARNING)

    def official():
        aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", device=device, seed=0)
        return aa.run_standard_evaluation(x, y, batch_size=n)[0]

    t_ours, adv_ours = timed(lambda: ours(model, x, y, torch.Generator().manual_seed(0)).x_adv, device, 0)
    t_off, adv_off = timed(official, device, 0)
    with torch.no_grad():
        robust_ours = int((model(adv_ours).argmax(1) == y).sum())
        robust_off = int((model(adv_off).argmax(1) == y).sum())
        clean = int((model(x).argmax(1) == y).sum())
    print(f"\nAutoAttack (standard), ℓ∞ ε = {eps:g}, {n} images of {ROBUST_MODEL} on {device}"
          f" (clean {clean}/{n}), {torch.get_num_threads()} threads")
    print(tabulate([["srtbench autoattack", f"{t_ours:.1f}", f"{robust_ours}/{n}"],
                    ["pyautoattack AutoAttack (official)", f"{t_off:.1f}", f"{robust_off}/{n}"]],
                   headers=["method", "time s", "robust"]))
    print(f"ours vs official: {t_off / t_ours:.2f}x faster, robust examples {robust_ours - robust_off:+d}"
          f" ({'within' if robust_ours - robust_off <= 1 else 'NOT within'} one example)")


class _Counting(torch.nn.Module):
    """The model, counting the images it is run on, with and without autograd (a backward pass follows the former)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.plain, self.graded = model, 0, 0

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            self.graded += len(x)
        else:
            self.plain += len(x)
        return self.model(x)


def bench_autoattack_floor(args, device):
    """Where AutoAttack's time goes: each stage of our cascade on the examples the previous stages left, its time,
    its passes per example (forwards, and forwards with a backward), and those passes at the cost measured here for
    one forward and one forward + backward at the same batch size: the floor no implementation of the standard
    cascade goes under on this model and machine.  Projects the stages' cost per robust example to 1,000 images."""
    n, eps = (25 if args.quick else 100), 0.1
    model, dataset, x, y = robust_batch(n, device)
    counting = _Counting(model).eval()
    with torch.no_grad():
        logits = model(x)
    robust = logits.argmax(1) == y
    clean = int(robust.sum())
    rows, total = [], 0.0
    for stage in build(f"autoattack[epsilon={eps}]", dataset).algorithm.components(counting, logits.shape[1], 0):
        idx = robust.nonzero().squeeze(1)
        counting.plain = counting.graded = 0
        t, adv = timed(lambda stage=stage, idx=idx: stage(x[idx], y[idx]).detach(), device, 0)
        with torch.no_grad():
            broken = model(x[idx] + (adv - x[idx]).clamp(-eps, eps)).argmax(1) != y[idx]
        robust[idx[broken]] = False
        total += t
        rows.append([type(stage).__name__, len(idx), int(broken.sum()), f"{t:.1f}", f"{counting.plain / len(idx):.0f}",
                     f"{counting.graded / len(idx):.0f}", counting.plain / len(idx), counting.graded / len(idx), t])
    xb = x[: min(n, 64)]
    t_fwd, _ = timed(lambda: model(xb).detach(), device, 5)

    def fwd_bwd():
        xg = xb.clone().requires_grad_(True)
        return torch.autograd.grad(model(xg).sum(), xg)[0]

    t_fb, _ = timed(fwd_bwd, device, 5)
    per_fwd, per_fb = t_fwd / len(xb), t_fb / len(xb)
    table = [r[:6] + [f"{r[6] * per_fwd + r[7] * per_fb:.2f}", f"{r[8] / r[1]:.2f}"] for r in rows]
    print(f"\nAutoAttack stages, ℓ∞ ε = {eps:g}, {n} images of {ROBUST_MODEL} on {device} (clean {clean}/{n}),"
          f" {torch.get_num_threads()} threads; one forward {1000 * per_fwd:.3f} ms, forward + backward"
          f" {1000 * per_fb:.3f} ms per image")
    print(tabulate(table, headers=["stage", "examples in", "broken", "time s", "forwards / example",
                                   "with backward / example", "floor s / example", "measured s / example"]))
    left = int(robust.sum())
    first, rest = rows[0][8] / rows[0][1], sum(r[8] / r[1] for r in rows[1:])
    projected = 1000 * (clean / n * first + left / n * rest)
    print(f"robust {left}/{n}; APGD-CE costs {first:.2f} s per example it runs on, the later stages {rest:.2f} s per"
          f" example still robust: 1,000 such images take about {projected / 60:.0f} minutes on this machine"
          f" ({total:.0f} s for these {n})")


def bench_threads(args, device):
    """How the passes every attack is made of scale with torch threads: one forward, and one forward + backward
    (input gradient), per image on a batch of 256 of the robust model, at 1 thread and at every usable core,
    alternating over three rounds (best of each)."""
    from srtbench.runtime import usable_cores

    model, _, x, _ = robust_batch(256, device)

    def forward():
        with torch.no_grad():
            return model(x)

    def forward_backward():
        xg = x.clone().requires_grad_(True)
        return torch.autograd.grad(model(xg).sum(), xg)[0]

    before, counts = torch.get_num_threads(), sorted({1, usable_cores()})
    best = {}
    for _ in range(3):
        for count in counts:
            torch.set_num_threads(count)
            for name, fn in (("forward", forward), ("forward + backward", forward_backward)):
                t, _ = timed(fn, device, 3)
                best[name, count] = min(best.get((name, count), float("inf")), t / len(x))
    torch.set_num_threads(before)
    rows = [[name] + [f"{1000 * best[name, c]:.3f}" for c in counts]
            + [f"{best[name, 1] / best[name, counts[-1]]:.2f}x"] for name in ("forward", "forward + backward")]
    print(f"\nPasses of {ROBUST_MODEL} on {device}, ms per image at each thread count (batch 256)")
    print(tabulate(rows, headers=["pass"] + [f"{c} thread{'s' * (c > 1)}" for c in counts] + ["speed-up"]))


def bench_srt_step(args, device):
    """Training guard: one SRT step with K = 5 PGD steps against one standard step, each a whole optimizer step
    (objective, backward, SGD) on a SmallCNN and a batch of 128 Fashion-MNIST images (SRT: 64 labeled + 64
    unlabeled, the robust term over all 128, as the trainer's proportional batches; standard: 128 labeled).
    Round robin, best of `repeat` runs each.  The guard: SRT / standard < K + 1.5."""
    from srtbench.data import Batch
    from srtbench.defenses import DEFENSES, DefenseParams
    from srtbench.neighborhoods import PixelBall

    k, eps = 5, 0.1
    model = quick_model(0, device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = data.load("fashion-mnist", True).batch(torch.arange(128))
    x, y = x.to(device), y.to(device)
    ball = PixelBall(eps, "linf")
    srt = DEFENSES.get("srt")
    params = srt.resolve(DefenseParams(steps=k), "pixel", "fashion-mnist", eps)
    batches = {"standard": Batch(x, y, None), "srt": Batch(x[:64], y[:64], x[64:])}

    def step(name):
        out = DEFENSES.get(name).objective(model, batches[name], ball, params, torch.Generator().manual_seed(0))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    times = {name: float("inf") for name in batches}
    for _ in range(max(args.repeat, 3) * 3):
        for name in batches:
            t, _ = timed(lambda name=name: step(name), device, 0)
            times[name] = min(times[name], t)
    ratio = times["srt"] / times["standard"]
    print(f"\nTraining step, SmallCNN, batch 128 on {device}, {torch.get_num_threads()} threads: standard"
          f" {times['standard'] * 1e3:.1f} ms, SRT (K = {k}) {times['srt'] * 1e3:.1f} ms: {ratio:.2f} standard steps"
          f" ({'within' if ratio < k + 1.5 else 'NOT within'} the guard K + 1.5 = {k + 1.5:g})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="srtbench checkpoint to attack (default: a quickly trained SmallCNN)")
    ap.add_argument("--n", type=int, default=500, help="images in the batch (same for every attack)")
    ap.add_argument("--epsilon", type=float, default=0.1, help="ℓ∞ budget of PGD-20")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per method (best is kept)")
    ap.add_argument("--quick", action="store_true", help="n = 100, best of 2 runs, GridAdv on 100 images")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, of {','.join(SECTIONS)}")
    args = ap.parse_args()
    only = set(args.only.split(","))
    unknown = only - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {','.join(sorted(unknown))}; choose from {','.join(SECTIONS)}")
    threads = set_threads()
    print(f"torch threads: {threads} (of {len(os.sched_getaffinity(0))} usable cores)")
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
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    if "pgd" in only:
        eps, steps, alpha = args.epsilon, 20, args.epsilon / 8
        gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731

        def floor():
            for _ in range(steps):
                xr = x.clone().requires_grad_(True)
                torch.autograd.grad(cross_entropy(model(xr), y).sum(), xr)
            return x

        ours = build(f"pgd[epsilon={eps},steps={steps},step_size={alpha},start=uniform]", dataset)
        full = PGD(steps, alpha, "uniform")  # no early stop: every example takes all 20 steps
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
        early = times["srtbench PGD-20 (early stop, keep-best)"]
        print(f"ours (early stop) vs fastest library: {lib_best / early:.2f}x"
              f" faster; all steps vs fastest library: {lib_best / times['srtbench PGD-20 (all steps)']:.2f}x")

    if "gridadv" in only:
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

    if "jsma" in only:
        bench_jsma(args, model, x, y, device)

    if "cw-l2" in only:
        bench_cw_l2(args, device)

    if "autoattack" in only:
        bench_autoattack(args, device)

    if "autoattack-floor" in only:
        bench_autoattack_floor(args, device)

    if "threads" in only and device.type == "cpu":
        bench_threads(args, device)

    if "srt-step" in only:
        bench_srt_step(args, device)


if __name__ == "__main__":
    main()
