"""Process-level chores shared by every command: device choice, seeding, atomic writes, provenance."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from srtbench.errors import SrtbenchError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SrtbenchError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    if name not in DEVICES and not name.startswith("cuda:"):
        raise SrtbenchError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    """The device as provenance records it: 'cpu', or 'cuda (NVIDIA H200)' so a timing names its card."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch (all devices) and return a CPU generator for data order; numpy/random are not used."""
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def set_deterministic(device: torch.device) -> None:
    """Bit-for-bit determinism on CPU (where tests and resume checks run); cudnn.benchmark on CUDA."""
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def exact_fp32(device: torch.device) -> None:
    """True fp32 on CUDA (every evaluation; training with --no-amp): cuDNN convolutions default to TF32
    (10-bit mantissa), whose ~1e-3 logit noise between batch sizes the determinism check flags and which
    flips an example an attack left on the boundary (seen on an H200: 1 of 1,000 predictions changed)."""
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def git_commit() -> str:
    """The commit of the srtbench source tree: $SRTBENCH_GIT_COMMIT where whoever copied the tree to another
    machine set it (that copy's .git may be absent, or older than the files beside it), else git's HEAD."""
    if os.environ.get("SRTBENCH_GIT_COMMIT"):
        return os.environ["SRTBENCH_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
