"""Recipe steps side by side on Ray: `srtbench reproduce EXPERIMENT --jobs N` (and `srtbench sweep --jobs N`).

Ray runs embedded on this machine (`ray.init` with its CPUs and GPUs, nothing to start) or joins a running cluster
(`address`: `auto` or HOST:PORT).  Each step is one Ray task in a worker process that runs it and exits
(`max_calls=1`: every step starts clean, as a fresh command would), with `cpus` CPUs (its torch threads) and
`gpus` GPUs (fractions share one card).  A step waits for the steps writing what it reads (`recipes.dependencies`);
at most `jobs` run at once, a ready evaluation, table or plot before a ready training (`submission_order`).  A
step whose worker dies (a lost node, an OOM kill) is retried by Ray and resumes from its last saved state; a step
that fails on its own error is reported in one line naming its log, its dependents are skipped and the independent
steps go on.  Each step's output goes to its log file beside its results; the driver shows one line per running
step (read back from the plain progress lines of its log) and the total.

Ray is imported only here, only when asked for: without `--jobs`, nothing imports it.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from srtbench.errors import SrtbenchError, describe
from srtbench.recipes import SKIPPED, Step, dependencies, skipped

RETRIES = 3  # Ray's retries of a step whose worker died
POLL_S = 0.5


def import_ray():
    try:
        import ray
    except ImportError:
        raise SrtbenchError("--jobs runs steps on Ray, which is not installed: pip install 'srtbench[cluster]'") \
            from None
    return ray


PROBE_S = 10.0  # how long a cluster's address may take to answer before the run gives up on it


def check_reachable(address: str, timeout: float = PROBE_S) -> None:
    """A HOST:PORT that accepts a connection within `timeout` (ray.init would otherwise retry for minutes, printing
    warnings, before it fails); `auto` is Ray's own look-up and answers at once."""
    if address == "auto":
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SrtbenchError(f"--address must be auto or HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise SrtbenchError(f"no Ray cluster answers at {address} ({err.strerror or type(err).__name__}); start one "
                            "with `ray start --head`, or leave out --address to run here") from None


@contextlib.contextmanager
def connected(address: str | None = None):
    """Ray for the duration: the running instance if this process has one, else a cluster joined at `address`,
    else an embedded one with this machine's CPUs and GPUs (shut down afterwards)."""
    ray = import_ray()
    if address:  # an address that answers nothing is an error even where this process already runs Ray
        check_reachable(address)
    if ray.is_initialized():
        yield ray
        return
    quiet = {"log_to_driver": False, "logging_level": "ERROR"}
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report sent from a benchmark run
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            import torch

            from srtbench.runtime import usable_cores

            # address "local": a new instance here, even where `ray start` left one that `auto` would join
            ray.init(address="local", num_cpus=usable_cores(), num_gpus=torch.cuda.device_count(),
                     include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "an embedded Ray instance"
        raise SrtbenchError(f"could not start or join {where}: {str(err).splitlines()[0] if str(err) else err}") \
            from None
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class Resources:
    cpus: float
    gpus: float

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))


def resources(jobs: int, cpus: float | None, gpus: float | None, detected: dict[str, float],
              largest_node: dict[str, float] | None = None) -> Resources:
    """Each step's share: the given values, else the detected CPUs and GPUs divided among `jobs` (whole CPUs, at
    most one GPU; none where there is none)."""
    total_cpus, total_gpus = float(detected.get("CPU", 1)), float(detected.get("GPU", 0))
    if cpus is None:
        cpus = float(max(1, math.floor(total_cpus / jobs)))
    if gpus is None:
        gpus = min(1.0, math.floor(100 * total_gpus / jobs) / 100) if total_gpus else 0.0
    if cpus <= 0:
        raise SrtbenchError(f"--cpus-per-step must be > 0, got {cpus:g}")
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise SrtbenchError(f"--gpus-per-step must be a fraction up to 1 or a whole number, got {gpus:g}")
    node = largest_node or detected
    if cpus > float(node.get("CPU", 0)) or gpus > float(node.get("GPU", 0)):
        raise SrtbenchError(f"no Ray node has {cpus:g} CPUs and {gpus:g} GPUs for a step (the largest has "
                            f"{float(node.get('CPU', 0)):g} CPUs, {float(node.get('GPU', 0)):g} GPUs); lower "
                            "--cpus-per-step / --gpus-per-step")
    return Resources(float(cpus), float(gpus))


# ---------------------------------------------------------------- what runs on a worker


def execute(step: Step, cwd: str, log: str, threads: int, header: str) -> tuple[int, str]:
    """A Ray task: run `step` in this worker with its output in `log`; (exit code, its last `error:` line).  A retry
    after a lost worker continues the run it left (`Step.resumed`)."""
    from srtbench.worker import run_step

    os.chdir(cwd)
    step = step.resumed()
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {socket.gethostname()} pid {os.getpid()} {header}: "
          f"{step.command}", flush=True)
    os.environ["SRTBENCH_THREADS"] = str(threads)
    os.environ["SRTBENCH_PROGRESS"] = "plain"
    code = run_step(step)
    sys.stdout.flush()
    sys.stderr.flush()
    return code, last_error(log)


def last_error(log: str) -> str:
    with contextlib.suppress(OSError):
        for line in reversed(Path(log).read_text(errors="replace").splitlines()[-50:]):
            if line.startswith("error: "):
                return line.removeprefix("error: ")
    return ""


def _on_worker(path: str) -> str:
    """Where a worker writes what the driver names `path`: the same file on a shared folder (tests move it to
    stand for a node whose folder is its own)."""
    return path


def _write_probe(path: str, token: str) -> str:
    Path(path).write_text(token)
    return socket.gethostname()


def check_shared(ray, folders: Sequence[str]) -> None:
    """Every node must see the driver's folders at the same paths: a task on each node writes a token file into
    each, and the driver reads it back; a folder that is not shared is a one-line error."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(_write_probe)
    token = secrets.token_hex(8)
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    for folder in folders:
        Path(folder).mkdir(parents=True, exist_ok=True)
    for node in nodes:
        for folder in folders:
            path = str(Path(folder).resolve() / f".srtbench-shared-{token}-{node['NodeID'][:8]}")
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            try:
                host = ray.get(probe.options(num_cpus=0, scheduling_strategy=strategy).remote(_on_worker(path), token))
            except Exception as err:  # noqa: BLE001 - the node cannot write there at all
                host = node.get("NodeManagerHostname", node["NodeID"][:8])
                raise SrtbenchError(f"{folder} is not writable from Ray node {host} ({str(err).splitlines()[-1]}); "
                                    "steps need one folder shared by every node (run from a shared filesystem)") \
                    from None
            try:
                seen = Path(path).read_text() == token
            except OSError:
                seen = False
            with contextlib.suppress(OSError):
                Path(path).unlink()
            if not seen:
                raise SrtbenchError(f"{Path(folder).resolve()} is not shared with Ray node {host}: a file its worker "
                                    "wrote there is missing here; steps need one folder shared by every node (run "
                                    "from a shared filesystem mounted at the same path)")


# ---------------------------------------------------------------- the driver


@dataclass
class Report:
    ran: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # step index -> the one-line reason
    skipped: dict[int, int] = field(default_factory=dict)  # step index -> the failed step it depends on

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


def _tail(log: str, since: float) -> str | None:
    """The last plain progress line of a running step's log (None before its worker started writing)."""
    try:
        if os.stat(log).st_mtime < since:
            return None
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    from srtbench.progress import LINE

    return next((ln for ln in reversed(lines) if LINE.match(ln)), "")


def run(steps: Sequence[Step], jobs: int, address: str | None = None, cpus_per_step: float | None = None,
        gpus_per_step: float | None = None, echo: Callable[[str], None] = print, retries: int = RETRIES) -> Report:
    """Run the unfinished steps on Ray, at most `jobs` at once, each after the steps it depends on."""
    if jobs < 1:
        raise SrtbenchError(f"--jobs must be >= 1, got {jobs}")
    with connected(address) as ray:
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        largest = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0))) if nodes else None
        share = resources(jobs, cpus_per_step, gpus_per_step, ray.cluster_resources(), largest)
        if address or len(nodes) > 1:
            check_shared(ray, sorted({str(Path(p).parent) for s in steps for p in (s.output, s.log) if p}))
        return _drive(ray, list(steps), jobs, share, echo, retries)


def submission_order(steps: Sequence[Step], todo: Sequence[int]) -> list[int]:
    """The order in which steps still to do start once their dependencies finish: evaluations, tables and plots
    before trainings, so a finished training's rows land before the next training takes its worker (a session cut
    short keeps the results of what it trained); otherwise the plan's order."""
    return sorted(todo, key=lambda i: (steps[i].kind == "train", i))


def _drive(ray, steps: list[Step], jobs: int, share: Resources, echo, retries: int) -> Report:
    from srtbench.progress import PlainProgress, progress_bar

    bar = progress_bar()
    driver = _Driver(ray, steps, jobs, share, echo, retries, bar, lines=not isinstance(bar, PlainProgress))
    with bar:
        driver.total = bar.add_task("steps", total=driver.count, info=f"{jobs} at once, {share.cpus:g} CPU"
                                    + (f", {share.gpus:g} GPU" if share.gpus else "") + " each")
        while driver.todo or driver.inflight:
            driver.submit()
            if driver.inflight:
                driver.collect()
                driver.refresh()
    return driver.report


class _Driver:
    """The scheduling loop's state: steps still to submit, those in flight (each with its display line, on a
    terminal), and what finished, failed or was skipped."""

    def __init__(self, ray, steps: list[Step], jobs: int, share: Resources, echo, retries: int, bar, lines: bool):
        self.ray, self.steps, self.jobs, self.share, self.echo, self.retries = ray, steps, jobs, share, echo, retries
        self.bar, self.lines, self.report, self.n = bar, lines, Report(), len(steps)
        self.deps = dependencies(steps)
        self.todo = []
        for i, (step, why) in enumerate(zip(steps, skipped(steps))):
            if why:
                echo(f"[{i + 1}/{self.n}] {SKIPPED[why]}: {step.command}")
            else:
                self.todo.append(i)
        self.remote = ray.remote(max_calls=1, max_retries=retries)(execute)
        self.finished = {i for i in range(self.n) if i not in self.todo}
        self.inflight: dict = {}  # ObjectRef -> (index, submitted at, its line on the display)
        self.cwd, self.start, self.count, self.total = os.getcwd(), time.monotonic(), len(self.todo), None

    def settled(self, i: int, what: str) -> None:
        from srtbench.progress import duration

        left = len(self.todo) + len(self.inflight)
        elapsed = time.monotonic() - self.start
        eta = duration(elapsed * left / (self.count - left)) if self.count > left and left else "0 s"
        self.echo(f"[{i + 1}/{self.n}] {what} ({self.count - left}/{self.count} steps settled, elapsed "
                  f"{duration(elapsed)}, ETA {eta})")

    def submit(self) -> None:
        """Skip the steps whose dependency failed; start those whose dependencies finished, up to `jobs` at once."""
        for i in submission_order(self.steps, self.todo):
            blocked = next((d for d in self.deps[i] if d in self.report.failed or d in self.report.skipped), None)
            if blocked is not None:
                self.todo.remove(i)
                self.report.skipped[i] = blocked
                self.bar.advance(self.total)
                self.settled(i, f"skipped, as step {blocked + 1} it needs did not finish: {self.steps[i].command}")
            elif len(self.inflight) < self.jobs and self.deps[i] <= self.finished:
                self.todo.remove(i)
                step = self.steps[i]
                self.echo(f"[{i + 1}/{self.n}] {step.command}  (log: {step.log})")
                ref = self.remote.options(num_cpus=self.share.cpus, num_gpus=self.share.gpus).remote(
                    step, self.cwd, step.log, self.share.threads, f"step {i + 1}/{self.n}")
                line = self.bar.add_task(step.name, total=None, info="waiting for a worker") if self.lines else None
                self.inflight[ref] = (i, time.time() - 1, line)

    def collect(self) -> None:
        """Wait (at most POLL_S) for a step to end, and record how it ended."""
        ready, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=POLL_S)
        for ref in ready:
            i, _, line = self.inflight.pop(ref)
            try:
                code, message = self.ray.get(ref)
            except self.ray.exceptions.WorkerCrashedError:
                code, message = -1, f"its worker died {self.retries + 1} times"
            except Exception as err:  # noqa: BLE001 - Ray's own failure (a lost node, ...), one line
                code, message = -1, describe(err)
            if line is not None:
                self.bar.update(line, visible=False)
            self.bar.advance(self.total)
            if code == 0:
                self.finished.add(i)
                self.report.ran.append(i)
                self.settled(i, f"finished: {self.steps[i].name}")
                shown = getattr(self.steps[i].job, "out", None) if self.steps[i].kind == "table" else None
                if shown and Path(shown).is_file():  # what the step printed in its log: the table
                    self.echo(Path(shown).read_text().rstrip("\n"))
            else:
                self.report.failed[i] = f"{message or f'exit code {code}'}; log: {self.steps[i].log}"
                self.echo(f"step {i + 1}/{self.n} failed: {self.steps[i].command} ({self.report.failed[i]})")

    def refresh(self) -> None:
        """Each running step's display line from the last progress line of its log."""
        from srtbench.progress import LINE

        for i, since, line in self.inflight.values():
            text = _tail(self.steps[i].log, since) if line is not None else None
            match = LINE.match(text) if text else None
            if match:
                self.bar.update(line, total=float(match["total"]), completed=float(match["completed"]),
                                info=match["description"])
            elif text is not None:
                self.bar.update(line, info="running")


def outcome(report: Report, total: int) -> None:
    """One line, and a non-zero exit through SrtbenchError, unless every step finished."""
    if report.ok:
        return
    raise SrtbenchError(f"{len(report.failed) + len(report.skipped)} of {total} steps did not finish "
                        f"({len(report.failed)} failed, {len(report.skipped)} skipped after a failure): "
                        + "; ".join(f"step {i + 1}" for i in sorted(report.failed)) + " failed")
