"""Progress of long work (training steps, attacks, recipe steps): a rich bar on a terminal, plain lines elsewhere.

On a terminal, `progress_bar` is rich's live display on stderr.  Where no one watches a terminal (a batch job's log,
`srtbench evaluate ... > log`, a recipe step's log file) it writes plain lines instead, one per finished task (an
attack), one per epoch of a training run (its `info` starts `epoch k/n`) and otherwise at most one every
$SRTBENCH_PROGRESS_SECONDS (default 60) per task, each with the elapsed time and an ETA:

    pgd × 1 | 1000/1000 (100%) | done in 12.3 s
    standard pixel | 80/400 (20%) | elapsed 21 s | ETA 1 min 24 s | epoch 2/5 loss 1.234

The lines go to stdout when stdout is not a terminal (the log; a live bar may then still show on stderr), else to
stderr when stderr is not one.  SRTBENCH_PROGRESS=plain forces plain lines (on stderr), =off silences both.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from srtbench.errors import SrtbenchError

console = Console(stderr=True)
DEFAULT_INTERVAL_S = 60.0
EPOCH = re.compile(r"^epoch (\d+)/")
# a plain progress line, as `PlainProgress` writes it and the recipe scheduler reads it back from a step's log
LINE = re.compile(r"^(?P<description>.*) \| (?P<completed>\d+)/(?P<total>\d+) \(\d+%\) \| (?P<rest>.*)$")


class RateColumn(ProgressColumn):
    """Items per second (images for attacks, steps for training), once rich has measured it."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "", style="progress.data.speed")


def duration(seconds: float) -> str:
    """`12.3 s`, `4 min 05 s`, `2 h 07 min`."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    info: str = ""
    start: float = field(default_factory=time.monotonic)
    start_completed: float = 0.0  # a resumed run starts part-way: its rate counts only what this process did
    last_line: float = field(default_factory=time.monotonic)
    epoch: str | None = None
    finished: bool = False


class PlainProgress:
    """The part of rich's `Progress` that srtbench uses (context manager, `add_task`, `update`, `advance`), written
    as plain lines to `stream`; `live`, when given, is a rich bar that receives every call as well."""

    def __init__(self, stream: TextIO, live: Progress | None = None, interval_s: float | None = None):
        self.stream, self.live = stream, live
        self.interval_s = interval_s if interval_s is not None else _interval()
        self.tasks: dict[int, _Task] = {}

    def __enter__(self) -> PlainProgress:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def add_task(self, description: str, total: float | None = 100.0, completed: float = 0, **fields: Any) -> TaskID:
        task_id = TaskID(len(self.tasks))
        if self.live is not None:
            task_id = self.live.add_task(description, total=total, completed=completed, **fields)
        self.tasks[task_id] = _Task(str(description), total, float(completed), str(fields.get("info", "")),
                                    start_completed=float(completed))
        return task_id

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: TaskID, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, description: str | None = None, **fields: Any) -> None:
        if self.live is not None:
            self.live.update(task_id, total=total, completed=completed, advance=advance, description=description,
                             **fields)
        task = self.tasks[task_id]
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = float(completed)
        if advance is not None:
            task.completed += advance
        if description is not None:
            task.description = str(description)
        if "info" in fields:
            task.info = str(fields["info"])
        self._maybe_write(task)

    def _maybe_write(self, task: _Task) -> None:
        now = time.monotonic()
        if task.finished:
            return
        if task.total is not None and task.completed >= task.total:
            task.finished = True
            self._write(task, f"done in {duration(now - task.start)}")
            return
        epoch = EPOCH.match(task.info)
        new_epoch = epoch is not None and task.epoch is not None and epoch.group(1) != task.epoch
        if epoch is not None:
            task.epoch = epoch.group(1)
        if new_epoch or now - task.last_line >= self.interval_s:
            self._write(task, f"elapsed {duration(now - task.start)} | ETA {self._eta(task, now)}"
                        + (f" | {task.info}" if task.info else ""))

    @staticmethod
    def _eta(task: _Task, now: float) -> str:
        done = task.completed - task.start_completed
        if task.total is None or done <= 0:
            return "?"
        return duration((task.total - task.completed) * (now - task.start) / done)

    def _write(self, task: _Task, text: str) -> None:
        task.last_line = time.monotonic()
        total = task.total if task.total is not None else task.completed
        percent = 100.0 * task.completed / total if total else 100.0
        line = f"{task.description} | {task.completed:.0f}/{total:.0f} ({percent:.0f}%) | {text}"
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not stop a training run
            pass


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _rich(disable: bool) -> Progress:
    # descriptions hold checkpoint labels, free text from downloaded files: shown as text, never as markup
    return Progress(
        TextColumn("{task.description}", markup=False, style="bold"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
        transient=False,
    )


MODES = ("", "plain", "off")


def _interval() -> float:
    """$SRTBENCH_PROGRESS_SECONDS: a positive number of seconds (a mistyped one is an error, not ignored)."""
    text = os.environ.get("SRTBENCH_PROGRESS_SECONDS", "").strip()
    if not text:
        return DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SrtbenchError(f"SRTBENCH_PROGRESS_SECONDS must be a positive number of seconds, got {text!r}")
    return value


def progress_bar(disable: bool = False) -> Progress | PlainProgress:
    """A rich bar on a terminal; plain lines where output goes to a file or pipe (see the module's doc)."""
    mode = os.environ.get("SRTBENCH_PROGRESS", "").strip().lower()
    if mode not in MODES:
        raise SrtbenchError(f"SRTBENCH_PROGRESS must be plain or off (or unset), got {mode!r}")
    if disable or mode == "off":
        return _rich(disable=True)
    if mode == "plain":
        return PlainProgress(sys.stderr)
    live = _is_terminal(sys.stderr)
    if not _is_terminal(sys.stdout):
        return PlainProgress(sys.stdout, _rich(False) if live else None)
    if not live:
        return PlainProgress(sys.stderr)
    return _rich(disable=False)
