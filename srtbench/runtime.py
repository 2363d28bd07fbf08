"""Process-level chores shared by every command: device choice, threads, determinism, atomic writes, provenance."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from srtbench.errors import SrtbenchError
from srtbench.files import regular_or_absent

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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which taskset, cgroups and schedulers narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_threads() -> int:
    """Set torch's intra-op threads to this process's share of the cores, so concurrent runs do not oversubscribe
    the machine (each would otherwise run as many threads as there are cores, and all slow down many-fold).

    $SRTBENCH_THREADS, when set, is the count (give each of several runs side by side its share: 2 runs on 8
    cores, SRTBENCH_THREADS=4); else $OMP_NUM_THREADS, when set, is left to torch as the user's choice; else the
    cores of the CPU affinity, divided among the ranks torchrun starts on this node ($LOCAL_WORLD_SIZE).
    Returns the count in effect."""
    given = os.environ.get("SRTBENCH_THREADS", "").strip()
    if given:
        try:
            count = int(given)
        except ValueError:
            raise SrtbenchError(f"SRTBENCH_THREADS must be a positive integer, got {given!r}") from None
        if count < 1:
            raise SrtbenchError(f"SRTBENCH_THREADS must be a positive integer, got {given!r}")
        if count > usable_cores():
            notice(f"SRTBENCH_THREADS={count} exceeds the {usable_cores()} cores this process may use: using "
                   f"{usable_cores()}")
            count = usable_cores()
    elif os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads()
    else:
        ranks = os.environ.get("LOCAL_WORLD_SIZE", "1")
        count = max(1, usable_cores() // max(1, int(ranks) if ranks.isdigit() else 1))
    if count != torch.get_num_threads():
        torch.set_num_threads(count)
    return count


def set_deterministic(device: torch.device) -> None:
    """Bit-for-bit determinism on CPU (where tests and resume checks run); cudnn.benchmark on CUDA."""
    if device.type == "cpu":
        if "torch._inductor.config" in sys.modules:  # a compiler is loaded: keep its setting in step, as torch does
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:  # torch's public call less its import of the compiler's config (~1 s per run; nothing here compiles)
            torch._C._set_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def exact_fp32(device: torch.device) -> None:
    """True fp32 on CUDA (every evaluation; training with --no-amp): cuDNN convolutions default to TF32
    (10-bit mantissa), whose ~1e-3 logit noise between batch sizes the determinism check flags and which
    flips an example an attack left on the boundary (seen on an H200: 1 of 1,000 predictions changed)."""
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def fast_layout(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """An evaluated model's convolution weights in channels_last on the CPU, where oneDNN's convolutions run faster
    in it (SmallCNN, one thread: forward 1.6×, forward and backward 1.25×, `python benchmarks/layout.py`); the
    inputs may stay contiguous, a convolution follows its weight's layout.  Unchanged on CUDA, whose fp32 runs
    keep the layout they were measured in."""
    return model.to(memory_format=torch.channels_last) if device.type == "cpu" else model


# a temporary file is stale once its writer is gone: dead on this host, or silent this long (another host's
# writer, or one from before temporary names carried their writer); writes take seconds, even of a large model
STALE_TMP_S = 30 * 60


def notice(message: str) -> None:
    """One line on stderr that the user can act on (the progress bar, when live, keeps it above itself)."""
    print(f"note: {message}", file=sys.stderr, flush=True)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "", socket.gethostname().split(".")[0]) or "host"


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask can only swap it)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the `.NAME.HOST-PID.XXXX.tmp` files a killed writer of `path` left beside it (see STALE_TMP_S)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.)?[^.]+\.tmp$")
    removed, host, now = [], _host(), time.time()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = pattern.match(tmp.name)
        if match is None:
            continue
        with contextlib.suppress(OSError):
            mine = match["host"] == host and match["pid"] is not None
            if (mine and not _pid_alive(int(match["pid"]))) or now - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it over `path` only if the block succeeds.

    The temporary name carries its writer's host and pid, so that the next write of `path` can remove what a
    killed writer left; the file gets the mode the umask allows (mkstemp's is 0600, unreadable to a group
    sharing the folder)."""
    path = Path(path)
    regular_or_absent(path, "output")  # never replace a device, a FIFO or a socket with a file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host()}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # a read-only folder, a full disk: one line, and the previous file stays
        raise SrtbenchError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        raise SrtbenchError(f"cannot write {path}: {err.strerror or err}; the previous file, if any, is kept") \
            from None
    except RuntimeError as err:  # torch.save's writer on a full disk ("PytorchStreamWriter failed writing file")
        if "failed writing" not in str(err) and "unexpected pos" not in str(err):
            raise
        raise SrtbenchError(f"cannot write {path}: the disk is full or failing ({str(err).splitlines()[0][:80]}); "
                            "the previous file, if any, is kept") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def available_memory(device: torch.device) -> int | None:
    """Bytes a run can still allocate on `device` (None where that is unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


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


def check_writable(out: str, kind: str) -> None:
    """`--out` must name a file that can be written, checked before any work starts (a training or an attack must
    not run for an hour and then fail to save): not a folder, not under a file, in a folder we may write."""
    path = Path(out)
    if path.is_dir():
        raise SrtbenchError(f"--out {out} is a folder; name {kind}")
    regular_or_absent(path)
    if path.exists() and not os.access(path, os.W_OK):
        raise SrtbenchError(f"--out {out}: no permission to write this file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise SrtbenchError(f"--out {out}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SrtbenchError(f"--out {out}: no permission to write in {folder}")
