"""The Trainer: one loop for CPU, CUDA and MPS, fp32 or mixed precision, one or many processes."""

from __future__ import annotations

import contextlib
import gc
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from cvcore.api import create_transforms
from cvcore.callbacks import Callback
from cvcore.data import DataSplits
from cvcore.errors import ConfigError, CvcoreError
from cvcore.tasks import Monitor, guarded_metrics, task_for
from cvcore.training import distributed
from cvcore.training.batching import (DeviceLoader, batches_of, data_loader, num_batches, set_epoch,
                                     shutdown_workers)
from cvcore.training.ema import WeightAverage
from cvcore.training.evaluation import combined, evaluate
from cvcore.training.interrupts import Interrupted, StopVote, signals_noted
from cvcore.training.options import TrainerOptions, seconds_of
from cvcore.training.preparation import Preparation
from cvcore.training.progress import EpochProgress, log, write_epoch
from cvcore.training.state import capture_rng, numbers_of, replanned, restore_rng
from cvcore.training.tensor_data import TensorImages
from cvcore.transforms import Transform

AUTOCAST_DTYPES = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}  # by precision; none for "32"


class NonFiniteLossError(CvcoreError):
    """The loss became NaN or infinite; the run stops and the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; under torchrun each process takes its local GPU."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"Unknown device '{name}': use auto, cpu, cuda, cuda:N or mps.") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"Device '{name}' asked for, but CUDA is not available here; use --device cpu.")
        if device.index is None:
            device = torch.device("cuda", distributed.local_rank())
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"Device '{name}' asked for, but MPS is not available here; use --device cpu.")
    return device


# The generators a run owns, each derived from its one seed (numpy's SeedSequence), so that neither
# starts from the state of the other or of torch's global generator: the data order (shared by every
# process) and the augmentations (per process).
_STREAMS = {"data_order": 1, "augment": 2}


def stream_seed(seed: int, stream: str, rank: int = 0) -> int:
    """The seed of one random stream of a run seeded ``seed``, for the process ``rank``."""
    import numpy

    return int(numpy.random.SeedSequence([seed, _STREAMS[stream], rank]).generate_state(1, numpy.uint64)[0] >> 1)


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch (weight init, dropout) with ``seed + rank``: process 0 then
    initialises a model as a plain script after ``torch.manual_seed(seed)`` does."""
    import numpy

    random.seed(seed + rank)
    numpy.random.seed((seed + rank) % 2**32)
    if torch.accelerator.is_available():
        torch.manual_seed(seed + rank)  # every device's generator too
    else:  # the same, without queueing a seeding (and its stack, 0.5 ms) for devices this machine lacks
        torch.default_generator.manual_seed(seed + rank)


def callback_keys(callbacks: Sequence[Callback]) -> list[str]:
    """A name per callback, from its class, numbered where a class repeats: checkpoints keep each
    callback's state under it, so callbacks may be added or removed when a run is resumed."""
    keys: list[str] = []
    for callback in callbacks:
        name = f"{type(callback).__module__}.{type(callback).__qualname__}"
        seen = sum(key == name or key.startswith(f"{name}#") for key in keys)
        keys.append(f"{name}#{seen + 1}" if seen else name)
    return keys


def apply_optimizer_options(optimizer: torch.optim.Optimizer, built: list[dict[str, Any]],
                            restarted: bool) -> list[str]:
    """Put the hyperparameters of the optimizer as ``built`` now back over those a checkpoint loaded;
    returns what changed. The learning rate is scaled by new / saved base rate, so that a schedule
    keeps its current factor; where the schedule ``restarted``, the built rates hold as they are."""
    changes = []
    for index, (group, fresh) in enumerate(zip(optimizer.param_groups, built)):
        where = f" (group {index})" if len(built) > 1 else ""
        saved_base, base = group.get("initial_lr", group["lr"]), fresh.get("initial_lr", fresh["lr"])
        if restarted:
            group["lr"] = fresh["lr"]
        elif base != saved_base:
            group["lr"] = group["lr"] * base / saved_base
            changes.append(f"lr {saved_base:g} -> {base:g}{where}")
        for key, value in fresh.items():
            if key not in ("lr", "initial_lr") and group.get(key) != value:
                changes.append(f"{key} {group.get(key)} -> {value}{where}")
                group[key] = value
        if "initial_lr" in fresh:
            group["initial_lr"] = base
    return changes


def detached(output: Any) -> Any:
    """A step's output without its graph: a tensor, or the dicts, lists and tuples of tensors that
    models computing their own losses or detections return."""
    if isinstance(output, torch.Tensor):
        return output.detach()
    if isinstance(output, dict):
        return {key: detached(value) for key, value in output.items()}
    if isinstance(output, (list, tuple)):
        return type(output)(detached(value) for value in output)
    return output


def steps_per_epoch(num_train: int, options: TrainerOptions) -> int:
    """Optimizer steps in one epoch (what per-step schedulers are sized with)."""
    batches = math.ceil(num_train / (options.batch_size * distributed.world_size()))
    if options.limit_train_batches is not None:
        batches = min(batches, options.limit_train_batches)
    return max(1, math.ceil(batches / options.accumulate))


def reads_cost_no_sync(device: torch.device) -> bool:
    """Whether reading a tensor's value on ``device`` is free (the CPU), rather than a wait for the
    device's queue: flags are then read at once instead of a step late."""
    return device.type == "cpu"


class Trainer:
    """Fits a model to a data set; every component arrives built, so the Trainer holds no registry."""

    def __init__(
        self,
        *,
        model: nn.Module,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        data: DataSplits,
        schedulers: Sequence[tuple[Any, str]] = (),
        callbacks: Sequence[Callback] = (),
        transforms: Sequence[Transform] | None = None,
        options: TrainerOptions = TrainerOptions(),
        metadata: dict[str, Any] | None = None,
        replan: Callable[[int], list[tuple[Any, str]]] | None = None,
    ) -> None:
        """``replan(epochs)``: the schedulers built anew for a run of ``epochs`` (a time budget
        re-plans them once it knows the run's length)."""
        self.module, self.loss_fn, self.optimizer, self.data = model, loss, optimizer, data
        self.replan, self.budget_epochs = replan, None
        self.schedulers, self.options = list(schedulers), options
        # None: what the data set suggests (its default augmentation); [] for none.
        self.transforms = list(create_transforms(data.transforms, data.info) if transforms is None else transforms)
        # Stable sort: callbacks that save state (order > 0) see the epoch after every other one.
        self.callbacks = sorted(callbacks, key=lambda callback: getattr(callback, "order", 0))
        self.device = resolve_device(options.device)
        self.autocast_dtype = AUTOCAST_DTYPES.get(options.precision)
        self.reads_free = reads_cost_no_sync(self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=options.precision == "16-mixed")
        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] = {"value": None, "epoch": None, "per_class": None, "per_class_name": None}
        self.stop_reason: str | None = None
        self.interrupted: int | None = None
        self._pending_finite: tuple[torch.Tensor, int] | None = None
        self._unsettled_step: torch.Tensor | bool | None = None  # see _settle_step
        self._one = torch.ones((), device=self.device)
        self._rank_rngs: list[dict[str, Any]] | None = None
        self.metadata = metadata or {}  # JSON stored with checkpoints (the run's config, providers)
        self.is_main = distributed.is_main()
        self.run_dir = options.run_dir
        self.task = task_for(data.info.task)
        self.monitor, self.monitor_mode = self.task.monitored(options.monitor, options.monitor_mode)
        self._best_tracker = Monitor(self.monitor, self.monitor_mode)

    # -- public hooks for callbacks ---------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Finish the current epoch, then stop (early stopping, faults)."""
        self.stop_reason = reason

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # -- set-up -----------------------------------------------------------------------------------

    def _setup(self) -> None:
        opts = self.options
        distributed.setup(self.device)
        self.seed = distributed.shared_seed(opts.seed)
        seed_everything(self.seed, distributed.rank())
        if opts.deterministic:
            import os

            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            # warn_only: an operation with no deterministic kernel (the backward of torchvision
            # ResNets' AdaptiveAvgPool2d on CUDA) warns, naming itself, instead of stopping the run.
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        memory_format = torch.channels_last if opts.channels_last else torch.preserve_format
        self.module.to(self.device, memory_format=memory_format)
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.to(self.device)
        self.ddp = None
        if distributed.world_size() > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.module, device_ids=device_ids)
        self.ema = WeightAverage(self.module, opts.ema, opts.ema_warmup, opts.ema_every) if opts.ema else None
        self.model = self.ddp or self.module
        if opts.compile:
            self.model = torch.compile(self.model)
        # Validation runs no collective in the forward pass, so processes may hold unequal shares.
        self.eval_model = self.module if self.ddp else self.model
        self.stop_vote = StopVote(distributed.side_group() if self.ddp else None)
        # The data order: the same generator state on every process. Augmentations: each its own.
        self.generator = torch.Generator().manual_seed(stream_seed(self.seed, "data_order"))
        self.device_generator = torch.Generator(self.device).manual_seed(
            stream_seed(self.seed, "augment", distributed.rank()))
        self.prepare = Preparation(self.data.info, self.device, self.transforms, self.device_generator)
        self.train_loader = self._loader(self.data.train, train=True)
        self.val_loader = self._loader(self.data.val, train=False)

    def _loader(self, dataset, *, train: bool):
        """Batches of ``dataset``, shuffled in training: built on the device for an in-memory set."""
        opts = self.options
        if opts.tensor_loader and isinstance(dataset, TensorImages):
            device_data = dataset.on_device(self.device)
            if not (train and self.transforms):  # its batches go to the model as stored
                device_data.normalise_once(self.prepare.normalised, self.data.info.image_size)
            return DeviceLoader(device_data, opts.batch_size, shuffle=train, generator=self.generator)
        pin = opts.pin_memory if opts.pin_memory is not None else self.device.type == "cuda"
        return data_loader(dataset, batch_size=opts.batch_size, shuffle=train, workers=opts.workers,
                           pin_memory=pin, seed=self.seed, generator=self.generator)

    def trial_step(self, checkpoint: Any = None) -> tuple[int, float]:
        """Set up (continuing ``checkpoint``, as :meth:`fit` would), then run forward and backward on
        one training batch without stepping the optimizer: what `cv train --dry-run` checks. Returns
        the batch size and the loss."""
        self._setup()
        if checkpoint is not None:
            self.load_state_dict(checkpoint.state())
        images, target, _ = next(self._batches(self.train_loader, 1, train=True))
        with self._autocast():
            loss, _ = self.task.training_step(self.model, images, target, self.loss_fn)
        loss.backward()
        self.optimizer.zero_grad(set_to_none=True)
        return len(images), loss.item()

    def lr_range(self, low: float, high: float, steps: int, stop) -> tuple[list[float], list[float]]:
        """The learning-rate range test (Smith, 2017): up to ``steps`` optimizer steps, the learning
        rate growing geometrically from ``low`` to ``high`` (each parameter group keeping its ratio to
        the first), the training loss after each; ``stop(losses)`` ends it early (divergence). No
        schedule, metric or callback runs; the model and optimizer are changed, so a run needs a
        fresh Trainer. Returns (learning rates, losses)."""
        self._setup()
        self.model.train()
        bases = [group["lr"] for group in self.optimizer.param_groups]
        ratios = [base / bases[0] if bases[0] else 1.0 for base in bases]
        lrs, losses = [], []
        while len(losses) < steps:
            set_epoch(self.train_loader, len(losses))
            for images, target, _ in self._batches(self.train_loader, steps - len(losses), train=True):
                lr = low * (high / low) ** (len(losses) / max(steps - 1, 1))
                for group, ratio in zip(self.optimizer.param_groups, ratios):
                    group["lr"] = lr * ratio
                with self._autocast():
                    loss, _ = self.task.training_step(self.model, images, target, self.loss_fn)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                lrs.append(lr)
                losses.append(loss.item())  # the test's measurement: one read per step
                if stop(losses):
                    return lrs, losses
        return lrs, losses

    # -- the loop ---------------------------------------------------------------------------------

    def fit(self, checkpoint: Any = None) -> dict[str, Any]:
        """Train up to ``options.epochs`` epochs, restore the best weights, and return a summary.

        ``checkpoint`` (a :class:`cvcore.checkpoint.Checkpoint`) continues a saved run exactly
        where it stopped. SIGINT/SIGTERM finish the step in flight, then raise :class:`Interrupted`.
        """
        self._setup()
        if checkpoint is not None:
            self.load_state_dict(checkpoint.state())
        with signals_noted(self._note_signal):
            try:
                self._emit("on_fit_start")
                while self.epoch < self.options.epochs and self.stop_reason is None:
                    self._run_and_record_epoch()
                    if self._agreed_stop(self.stop_vote.settle):  # during validation or the epoch's end: saved
                        raise Interrupted(self.interrupted, self.epoch, self.run_dir)
                self._restore_best()
                self._emit("on_fit_end")
                distributed.barrier()  # no process tears the group down while another still uses it
            except BaseException as exc:
                for callback in self.callbacks:
                    callback.on_exception(self, exc)
                raise
            finally:
                self._leave_process_group()
        return self.summary()

    def _run_and_record_epoch(self) -> None:
        self._emit("on_epoch_start")
        metrics = self._run_epoch()
        self._emit("on_validation_end", metrics)
        self.epoch += 1
        self._record(metrics)
        if self.options.time_budget and self.budget_epochs is None:
            self._fit_to_budget(metrics["seconds"])
        if self.ddp:  # every process's random state, for the checkpoint the epoch's end may write
            self._rank_rngs = distributed.gather(capture_rng(self.generator, self.device_generator))
        self._emit("on_epoch_end", metrics)

    def _fit_to_budget(self, first_epoch_seconds: float) -> None:
        """Size the run to its time budget from its first epoch (the slowest process's): as many
        epochs as fit at that pace, at least the one run; every schedule sized by the run is built
        for them and continues from where it stands (as a resume with more epochs does); the count
        goes into the run's config, which its checkpoints and config.toml record."""
        budget = seconds_of(self.options.time_budget)
        pace = max(distributed.gather(first_epoch_seconds))
        epochs = max(1, self.options.schedule_start + 1, int(budget // pace))
        self.budget_epochs = epochs
        self.options = attrs.evolve(self.options, epochs=epochs)
        if self.replan is not None:
            rates = [group["lr"] for group in self.optimizer.param_groups]  # building a scheduler resets them
            rebuilt = self.replan(epochs)
            for (fresh, _), (old, _) in zip(rebuilt, self.schedulers, strict=True):
                fresh.load_state_dict(replanned(fresh.state_dict(), old.state_dict()))
            for group, rate in zip(self.optimizer.param_groups, rates):
                group["lr"] = rate
            self.schedulers = rebuilt
        if isinstance(self.metadata.get("config"), dict):
            self.metadata["config"].setdefault("trainer", {})["epochs"] = epochs
        if self.is_main:
            log(f"note: time budget {self.options.time_budget}: the first epoch took {pace:.1f} s, so the run has "
                f"{epochs} epoch(s), recorded in its config")

    def _agreed_stop(self, vote) -> bool:
        """Whether every process stops now, by ``vote`` (StopVote.step or .settle); the signal
        agreed on (the largest: SIGTERM over SIGINT) becomes this process's."""
        agreed = vote(self.interrupted)
        if agreed:
            self.interrupted = agreed
        return bool(agreed)

    def _note_signal(self, signum: int) -> None:
        """Finish the step in flight, then stop; a second signal changes nothing."""
        self.interrupted = self.interrupted or signum

    def _leave_process_group(self) -> None:
        """Stop the loaders' worker processes, drop DDP's hold on the process group, then destroy it.
        Gloo work that is still referenced when the interpreter exits aborts the process (SIGABRT)
        after a successful run."""
        for loader in (getattr(self, "train_loader", None), getattr(self, "val_loader", None)):
            shutdown_workers(loader)
        if self.ddp is not None:
            self.ddp = None
            self.model = self.eval_model = self.module
            gc.collect()
        distributed.teardown()

    def _run_epoch(self) -> dict[str, float]:
        start = time.perf_counter()
        set_epoch(self.train_loader, self.epoch)
        train = self._train_epoch()
        train_seconds = time.perf_counter() - start
        val = self._validate()
        metrics = {"epoch": self.epoch + 1, **train.compute("train"), **val.compute("val"), "lr": self.lr,
                   "seconds": time.perf_counter() - start,
                   "images_per_second": train.seen * distributed.world_size() / max(train_seconds, 1e-9)}
        self._last_per_class, self._per_class_name = val.per_class(), val.per_class_name
        for scheduler, interval in self.schedulers:
            if interval == "epoch":
                scheduler.step()
        return metrics

    def _batches(self, loader, limit: int | None, *, train: bool):
        """(images, loss targets, metric targets) on the device, prepared and, in training, transformed."""
        for index, batch in enumerate(batches_of(loader)):  # (images, targets) or (images, targets, extents)
            if limit is not None and index >= limit:
                return
            images, target, labels = self.prepare(*batch, train=train)
            if self.options.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, target, labels

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _train_epoch(self):
        self.model.train()
        metrics = guarded_metrics(self.data.info.task, self.data.info.num_classes, self.device, detailed=False)
        total = num_batches(self.train_loader, self.options.limit_train_batches)
        accumulate = self.options.accumulate
        with EpochProgress(self, total) as progress:
            for index, (images, target, labels) in enumerate(self._batches(self.train_loader, total, train=True)):
                stepping = (index + 1) % accumulate == 0 or index + 1 == total
                # The last group may be shorter; each of its micro-batches then weighs more.
                group = min(accumulate, total - index // accumulate * accumulate)
                sync = self.ddp.no_sync() if self.ddp and not stepping else contextlib.nullcontext()
                with sync:
                    with self._autocast():
                        loss, output = self.task.training_step(self.model, images, target, self.loss_fn)
                    self.scaler.scale(loss / group if group > 1 else loss).backward()
                self._check_finite(loss, index)
                if stepping:
                    self._optimizer_step(last=index + 1 == total)
                metrics.update(detached(output), labels, loss)
                for callback in self.callbacks:
                    callback.on_batch_end(self, loss)
                progress.advance(metrics)
                if self._agreed_stop(self.stop_vote.step):
                    raise Interrupted(self.interrupted, self.epoch, self.run_dir)
        if self._agreed_stop(self.stop_vote.settle):  # a signal in the last step: the epoch re-runs
            raise Interrupted(self.interrupted, self.epoch, self.run_dir)
        self._check_finite(None, total)  # the last step's flag, on accelerators
        return combined(metrics)

    def _check_finite(self, loss: torch.Tensor | None, index: int) -> None:
        """Stop on a NaN/inf loss. On CPU the check is immediate, before the weights are updated; on an
        accelerator the flag is read one step late, so that reading it never stalls the queue."""
        if self.reads_free:
            finite = loss is None or math.isfinite(loss.item())
            pending = None if finite else (False, index)
        else:
            pending = self._pending_finite
            self._pending_finite = None if loss is None else (torch.isfinite(loss.detach()), index)
        if pending is not None and not bool(pending[0]):
            kept = (f"the checkpoints hold epoch {self.epoch}, the last completed" if self.epoch else
                    "no epoch had completed, so there is no checkpoint")
            raise NonFiniteLossError(
                f"The loss became NaN or infinite at epoch {self.epoch + 1}, batch {pending[1] + 1}; training "
                f"stopped ({kept}). Lower the learning rate, clip gradients (clip_norm) or check the data."
            )

    def _optimizer_step(self, last: bool) -> None:
        self._settle_step()  # the previous step's, before this step's learning rate is used
        if self.options.clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.options.clip_norm)
        # With fp16 the GradScaler skips a step whose gradients hold inf/NaN and backs off its scale:
        # its scale, as a device tensor (scale() of a one), tells, without reading it now.
        before = self.scaler.scale(self._one) if self.scaler.is_enabled() else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.step()
        self._unsettled_step = False if before is None else self.scaler.scale(self._one) < before
        if last or self.reads_free:  # and an epoch ends settled
            self._settle_step()

    def _settle_step(self) -> None:
        """Count the last optimizer step and advance per-step schedules, unless the GradScaler skipped
        it. On accelerators its flag is read one step late (before the next step, or at the epoch's
        end), so that reading it never stalls the queue; the learning rate each step uses is the same."""
        skipped, self._unsettled_step = self._unsettled_step, None
        if skipped is None or bool(skipped):  # bool(tensor) reads a flag computed a step ago
            return
        self.global_step += 1
        for scheduler, interval in self.schedulers:
            if interval == "step":
                scheduler.step()

    def _validate(self):
        model = self.eval_model if self.ema is None else self.ema.model
        distributed.broadcast_buffers(self.inference_module)
        batches = ((images, target) for images, target, _ in
                   self._batches(self.val_loader, self.options.limit_val_batches, train=False))
        return evaluate(model, self.loss_fn, batches, self.data.info, self.device, self._autocast)

    @property
    def inference_module(self) -> nn.Module:
        """The weights validation measures and checkpoints offer for inference: the average of the
        weights with ``ema``, else the model itself."""
        return self.module if self.ema is None else self.ema.model

    # -- bookkeeping ------------------------------------------------------------------------------

    def _emit(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)

    def _record(self, metrics: dict[str, float]) -> None:
        """Track the best epoch, append to metrics.jsonl and print the epoch line."""
        self.history.append(metrics)
        if self.monitor not in metrics:
            raise ConfigError(f"monitor '{self.monitor}' is not a logged metric; "
                              f"logged: {', '.join(sorted(metrics))}.")
        value = metrics[self.monitor]
        if self._best_tracker.update(value, metrics["epoch"]):
            state = {k: v.detach().clone() for k, v in self.inference_module.state_dict().items()}
            self.best = {"value": value, "epoch": metrics["epoch"], "per_class": self._last_per_class,
                         "per_class_name": self._per_class_name, "state": state}
        if self.is_main:
            write_epoch(metrics, self.run_dir, self.options.epochs)

    def _restore_best(self) -> None:
        """End with the best epoch's weights (the average's, with ema); with no best epoch, the
        average itself."""
        if self.best.get("state") is not None:
            self.module.load_state_dict(self.best["state"])
        elif self.ema is not None:
            self.module.load_state_dict(self.ema.model.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly: weights, optimizer, schedulers, scaler,
        counters, best epoch, history, callback state (by callback) and every random number generator."""
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedulers": [scheduler.state_dict() for scheduler, _ in self.schedulers],
            "schedule_start": self.options.schedule_start,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "planned_epochs": self.options.epochs,
            "global_step": self.global_step,
            "seed": getattr(self, "seed", self.options.seed),
            "history": self.history,
            "best": {key: value for key, value in self.best.items()},
            "stop_reason": self.stop_reason,
            "callbacks": dict(zip(callback_keys(self.callbacks), (c.state_dict() for c in self.callbacks))),
            "rng": self._rank_rngs or [capture_rng(self.generator, self.device_generator)],  # one per process
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            **({"budget_epochs": self.budget_epochs} if self.budget_epochs is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (call after set-up: optimizer state follows the weights' device).

        Options set now win over saved ones: optimizer hyperparameters that changed since the save
        take effect (a changed learning rate keeps the schedule's current factor), and a schedule
        that starts at another epoch than the saved one (an extended run) starts afresh."""
        self.module.load_state_dict(state["model"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        elif self.ema is not None:  # a run that kept no average starts one from its weights now
            self.ema.model.load_state_dict(state["model"])
        built = [{k: v for k, v in group.items() if k != "params"} for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        restarted = state.get("schedule_start", 0) != self.options.schedule_start
        changes = apply_optimizer_options(self.optimizer, built, restarted)
        if changes and self.is_main:
            log(f"note: optimizer options changed since the checkpoint, now in effect: {', '.join(changes)}")
        if not restarted:
            for (scheduler, _), saved in zip(self.schedulers, state["schedulers"], strict=True):
                scheduler.load_state_dict(replanned(scheduler.state_dict(), saved))
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.budget_epochs = state.get("budget_epochs")  # a budgeted run sized itself once: kept
        self.history, self.best = [numbers_of(row) for row in state["history"]], dict(state["best"])
        self._best_tracker.load_state_dict({"best": self.best["value"], "best_epoch": self.best["epoch"]})
        self.stop_reason = state.get("stop_reason")
        saved = state["callbacks"]
        if isinstance(saved, list):  # checkpoints written before states were kept by name: by position
            saved = dict(zip(callback_keys(self.callbacks), saved)) if len(saved) == len(self.callbacks) else {}
        for callback, key in zip(self.callbacks, callback_keys(self.callbacks)):
            if key in saved:  # a callback added since the save starts fresh; a removed one is dropped
                callback.load_state_dict(saved[key])
        restore_rng(state["rng"], self.generator, self.device_generator)

    def summary(self) -> dict[str, Any]:
        """What the run achieved: the best epoch, its metric and per-class accuracy, the last metrics."""
        return {
            "monitor": self.monitor,
            "seed": getattr(self, "seed", self.options.seed),
            "best_value": self.best["value"],
            "best_epoch": self.best["epoch"],
            "epochs_run": self.epoch,
            "stop_reason": self.stop_reason,
            "per_class_metric": self.best.get("per_class_name"),
            "per_class": dict(zip(self.data.info.class_names, self.best["per_class"] or [])),
            "last": self.history[-1] if self.history else {},
            "ema": self.options.ema,
        }
