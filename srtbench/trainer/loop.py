"""The training loop: `train` steps a _Training through its epochs, with a progress line and a clean stop."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from srtbench import data
from srtbench.defenses import ramp_lambda
from srtbench.distributed import all_sum, barrier
from srtbench.outcomes import accuracy, pack
from srtbench.progress import progress_bar
from srtbench.trainer.guards import _PaceCheck, _StopFlag
from srtbench.trainer.held_out import held_out_outcomes
from srtbench.trainer.resume import _SaveClock, _Saving, _write_metrics
from srtbench.trainer.run import Run, TrainResult
from srtbench.trainer.schedules import learning_rate
from srtbench.trainer.setup import _Setup
from srtbench.trainer.totals import Totals

# under torchrun, the ranks agree on a stop request or a due save every this many steps (a collective, a GPU sync)
VOTE_EVERY = 10


def _channels_last(batch: data.Batch) -> data.Batch:
    cl = torch.channels_last
    xu = None if batch.x_unlabeled is None else batch.x_unlabeled.contiguous(memory_format=cl)
    return data.Batch(batch.x_labeled.contiguous(memory_format=cl), batch.y_labeled, xu)


def _held_out(t: _Training, last: bool) -> dict[str, float | str]:
    """The epoch end's held-out check when due (on rank 0 every `check_every` epochs and after the last): clean and
    robust accuracy in percent, NaN otherwise, and whether each image stayed correct under attack (`pack`ed; ""
    otherwise), which lets two checks be compared image by image."""
    row: dict[str, float | str] = {"clean_acc": float("nan"), "robust_acc": float("nan"), "robust_correct": ""}
    if t.d.main and len(t.check) and ((t.epoch + 1) % t.cfg.check_every == 0 or last):
        with t.autocast:
            clean, robust = held_out_outcomes(t.model, t.check, t.neighborhood, t.cfg.check_steps, t.cfg.seed,
                                              t.device)
        row = {"clean_acc": accuracy(clean), "robust_acc": accuracy(robust), "robust_correct": pack(robust)}
    return row


class _Training(_Setup, _Saving):
    """One run between SGD steps: its model, optimizer, batch stream and generator, where it is (epoch, batch
    within it, step, time), its metrics rows and running totals (built and restored by _Setup, setup.py); and how
    it is saved (_Saving, resume.py)."""

    def __init__(self, run: Run, sets: tuple, resume: bool, force: bool):
        super().__init__(run, sets, resume, force)
        self.saver = _SaveClock(self.cfg.save_every, self.cfg.save_every_steps, self.step)
        self.pace = _PaceCheck(run, self.total, self.d.main and self.device.type == "cpu"
                               and not torch.cuda.is_available() and not (run.preset or "").endswith("-cpu"))

    def sgd_step(self, batch: data.Batch) -> dict[str, torch.Tensor]:
        lr = learning_rate(self.cfg, self.schedule, self.step, self.total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = batch.to(self.device)
        if self.channels_last:
            batch = _channels_last(batch)
        self.net.train()
        with self.autocast:
            params = ramp_lambda(self.params, self.step / self.total)
            out = self.defense.objective(self.net, batch, self.neighborhood, params, self.gen)
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.optimizer.step()
        self.step, self.batch = self.step + 1, self.batch + 1
        self.totals.add(out)
        return out

    def vote(self, flag: _StopFlag) -> tuple[bool, bool]:
        """(stop now, save now): a stop request or a due save on any rank holds for all."""
        local = (flag.requested, self.saver.due(self.step))
        if self.d.world == 1:
            return local
        if self.step % VOTE_EVERY:
            return False, False
        asked = all_sum(torch.tensor([float(v) for v in local]), self.d)
        return bool(asked[0] > 0), bool(asked[1] > 0)

    def run_epoch(self, flag: _StopFlag, show: Callable, on_step: Callable | None) -> bool:
        """The epoch from where the run stands; False when a stop request ended the run early (state saved)."""
        start = time.perf_counter()
        for batch in self.batches.epoch(self.epoch, start=self.batch):
            if self.step >= self.total:
                break
            out = self.sgd_step(batch)
            show(self, out)
            self.pace.step(self.step)
            if on_step is not None:
                on_step(self.step, flag.request)
            stop, save = self.vote(flag)
            mid_epoch = self.step < self.total and self.batch < len(self.batches)  # an epoch's end saves anyway
            if stop and mid_epoch:
                self.train_time += time.perf_counter() - start
                self.save_resume()
                return False
            if save and mid_epoch:
                self.save_resume(time_s=self.train_time + time.perf_counter() - start)
        self.train_time += time.perf_counter() - start
        last = self.end_epoch(time.perf_counter() - start)
        return last or not flag.requested

    def end_epoch(self, epoch_time: float) -> bool:
        """The epoch's metrics row (the held-out check when due), the metrics CSV and the resume state; whether
        this was the run's last epoch."""
        self.check_finite()
        totals = Totals.of(all_sum(self.totals.tensor(), self.d))
        last = self.epoch + 1 == self.n_epochs or self.step >= self.total
        self.rows.append({"epoch": self.epoch + 1, "step": self.step,
                          "lr": learning_rate(self.cfg, self.schedule, self.step - 1, self.total), **totals.means(),
                          **_held_out(self, last), "epoch_time_s": epoch_time, "total_time_s": self.train_time})
        self.epoch, self.batch = self.epoch + 1, 0
        self.totals = Totals.zeros(self.device)
        if self.d.main:
            _write_metrics(self.metrics_path, self.rows)
        self.check_collapse()
        self.save_resume(finished=last)
        barrier(self.d)
        return last


def _shower(bar, task) -> Callable:
    """The progress line's update after each step: the step count always, the loss once a second (reading it
    back is a device sync)."""
    shown = {"at": 0.0}

    def show(t: _Training, out: dict[str, torch.Tensor]) -> None:
        now = time.perf_counter()
        if now - shown["at"] < 1.0 and t.step < t.total:
            bar.update(task, completed=t.step)
            return
        shown["at"] = now
        bar.update(task, completed=t.step, info=f"epoch {t.epoch + 1}/{t.n_epochs} loss {out['loss'].item():.3f}")

    return show


def train(
    run: Run,
    *,
    labeled: data.ImageSet | None = None,
    unlabeled: data.UnlabeledSet | None = None,
    check: data.ImageSet | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    on_step=None,
) -> TrainResult:
    """Train `run.defense` and write the final checkpoint, the `.resume` state and the per-epoch metrics
    CSV beside `run.out`.

    `labeled` / `unlabeled` / `check` replace the sets named by `run.data` (tests use subsets);
    `on_step(step, stop)` is called after every SGD step, and `stop()` asks for the same clean exit as
    SIGINT.  A finished run at `run.out` is never overwritten unless `force`.  The resume state is saved
    at each epoch end, on a stop, and every `save_every` seconds (or `save_every_steps` steps) between, so
    a kill -9 loses at most that much.  Resuming replays the interrupted epoch from its next batch with the
    saved random states, so on CPU the result equals the uninterrupted run's bit for bit.
    """
    t = _Training(run, (labeled, unlabeled, check), resume, force)
    shown = progress and t.d.main
    with _StopFlag() as flag, progress_bar(disable=not shown) as bar:
        task = bar.add_task(f"{run.defense} {run.threat.threat}", total=t.total, completed=t.step, info="")
        show = _shower(bar, task) if shown else (lambda *_: None)
        while t.epoch < t.n_epochs and t.step < t.total:
            if not t.run_epoch(flag, show, on_step):
                return TrainResult(None, t.resume_path, t.rows, True, t.train_time)
    return t.finish()
