"""_Setup: what a run starts from, built before its first step (process group, defense, sets and batch
stream, model, optimizer, generator) and, on --resume, where the saved run stood."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from srtbench import checkpoint, data
from srtbench.defenses import DEFENSES, Setup
from srtbench.distributed import init_distributed
from srtbench.errors import SrtbenchError
from srtbench.models import create_model
from srtbench.runtime import exact_fp32, notice, set_deterministic
from srtbench.trainer.guards import _check_memory, _fit_batch_size
from srtbench.trainer.resume import _fingerprint, _resume_state, _set_rng_state
from srtbench.trainer.run import Run
from srtbench.trainer.totals import Totals


def _held_out_images(run: Run) -> data.ImageSet:
    """The first `check_size` test images (none when 0)."""
    cfg, spec = run.train, run.data.spec
    if not cfg.check_size:
        return data.ImageSet(torch.zeros(0, *spec.shape, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    test = data.load(run.data.dataset, False, run.data.data_dir, run.data.download)
    return test.subset(torch.arange(min(cfg.check_size, len(test))))


class _Setup:
    """A run's parts: its process group and device, defense and neighborhood, sets, batch stream and length, model
    (DDP-wrapped under torchrun), optimizer and generator, the files it writes, and where it stands (epoch, batch
    within it, step, time, metrics rows and running totals: zero, or the resume state's)."""

    def __init__(self, run: Run, sets: tuple, resume: bool, force: bool):
        self.run = run
        self.d, self.device = init_distributed(run.train.device)
        set_deterministic(self.device)
        self.defense = DEFENSES.get(run.defense)
        self.neighborhood = run.threat.build()
        self.params = self.defense.resolve(run.params, run.threat.threat, run.data.dataset, run.threat.epsilon)
        self.final_path, self.resume_path, self.metrics_path = run.paths
        self.fingerprint = _fingerprint(run, self.params, self.defense.params)
        state, self.legacy = _resume_state(run, self.fingerprint, resume, force, self.d.main)
        self._data(*sets)
        self._model()
        self.epoch, self.batch, self.step, self.train_time = 0, 0, 0, 0.0
        self.rows: list[dict[str, float]] = []
        self.totals = Totals.zeros(self.device)
        self.threads = [torch.get_num_threads()]  # the torch thread counts the run used, the current one last
        if state is not None:
            self._restore(state)
        self.net: nn.Module = self.model
        if self.d.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    def _data(self, labeled: data.ImageSet | None, unlabeled: data.UnlabeledSet | None,
              check: data.ImageSet | None) -> None:
        """The sets (the run's, unless given), the batch size that fits them, the defense's own preparation and
        the batch stream: D_L and D_U in proportion (Section 4) unless the defense fixes its split."""
        run, d = self.run, self.d
        if labeled is None:
            labeled, loaded = data.load_split(run.data)
            unlabeled = loaded if unlabeled is None else unlabeled
        if not self.defense.uses_unlabeled:
            unlabeled = None
        self.check = check if check is not None else _held_out_images(run)
        n_unlabeled = len(unlabeled) if unlabeled is not None else 0
        self.cfg = _fit_batch_size(run.train, len(labeled) + n_unlabeled, d.world, d.main)
        setup = Setup(self.params, run.data, self.device, self.cfg.batch_size, n_unlabeled > 0)
        self.defense.prepare(setup)
        split = {}
        if setup.unlabeled_per_batch is not None:
            split = {"labeled_per_batch": self.cfg.batch_size - setup.unlabeled_per_batch,
                     "unlabeled_per_batch": setup.unlabeled_per_batch}
        self.batches = data.ProportionalBatches(labeled, unlabeled, self.cfg.batch_size, self.cfg.seed,
                                                run.data.spec.augment, d.rank, d.world, **split)
        self.total = self.cfg.iterations or self.cfg.epochs * len(self.batches)
        self.n_epochs = math.ceil(self.total / len(self.batches))
        self.schedule = self.cfg.schedule or self.defense.schedule

    def _model(self) -> None:
        """Identical initial weights on every rank, then per-rank randomness (dropout masks, inner maximizers)."""
        cfg, spec, d, device = self.cfg, self.run.data.spec, self.d, self.device
        torch.manual_seed(cfg.seed)
        model = create_model(cfg.model, spec.shape, spec.num_classes, spec.mean, spec.std).to(device)
        _check_memory(model, spec.shape, cfg.batch_size // d.world, device, d)
        cuda = device.type == "cuda"
        if not cfg.amp:
            exact_fp32(device)
        self.channels_last = cuda and cfg.channels_last
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 17 + d.rank)
        torch.manual_seed(cfg.seed + 7_919 * d.rank)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and cfg.amp else contextlib.nullcontext()

    def _restore(self, state: checkpoint.Checkpoint) -> None:
        r = state.resume
        self.model.load_state_dict(state.state_dict)
        self.optimizer.load_state_dict(r["optimizer"])
        if len(r["rng"]) != self.d.world:
            raise SrtbenchError(f"{self.resume_path}: saved by {len(r['rng'])} processes; resume with as many")
        _set_rng_state(self.gen, r["rng"][self.d.rank])
        self.epoch, self.batch, self.step = r["epoch"], r["batch"], r["step"]
        self.train_time, self.rows = r["train_time_s"], list(r["rows"])
        self.totals = Totals.of(r["acc"][self.d.rank].to(self.device))
        kept, now = state.meta.get("threads"), self.threads[0]
        before = [t for t in kept if isinstance(t, int)] if isinstance(kept, list) else []  # older files: none
        if before and before[-1] != now and self.d.main:
            notice(f"{self.resume_path}: trained so far with {before[-1]} torch threads, continued with {now}; "
                   "float sums depend on the thread count, so the weights will not match a run trained at one "
                   "count bit for bit")
        self.threads = [*(t for t in before if t != now), now]
        if r.get("finished"):
            self.epoch = self.n_epochs
