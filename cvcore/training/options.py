"""How to train, as options: read by `cv train` (its flags are made from them), the TOML [trainer]
table and the Trainer. Kept free of torch so that `cv --help` stays fast."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import attrs

Precision = Literal["32", "16-mixed", "bf16-mixed"]


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def seconds_of(duration: str) -> float:
    """Seconds in a duration such as ``15m``, ``1h30m``, ``90s`` or ``900`` (seconds); ValueError if
    it is not one or is not positive."""
    found = _DURATION.fullmatch(str(duration).strip())
    if not str(duration).strip() or found is None:
        raise ValueError(duration)
    hours, minutes, seconds = (float(part) if part else 0.0 for part in found.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(duration)
    return total


def _time_budget(instance, attribute, value) -> None:
    if value is None:
        return
    try:
        seconds_of(value)
    except ValueError:
        raise ValueError(f"'time_budget' must be a duration such as 15m, 1h30m or 900s: {value}") from None


def _batch_size(instance, attribute, value) -> None:
    if value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"'batch_size' must be >= 1 or auto: {value}")


@attrs.frozen(kw_only=True)
class TrainerOptions:
    """How to train: length, precision, device, data loading, reproducibility and smoke limits.

    :param epochs: number of epochs.
    :param batch_size: images per batch (per process), or auto: the largest whose training step fits
        in CUDA memory, less a tenth (probed before training, recorded in config.toml).
    :param workers: DataLoader worker processes.
    :param pin_memory: pin host memory for faster copies (default: on when training on CUDA).
    :param precision: 32, 16-mixed (float16 autocast + GradScaler) or bf16-mixed.
    :param device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.
    :param seed: seed of python, numpy, torch and the data order and augmentations; none for a
        fresh random seed each run (printed, and kept in summary.json).
    :param deterministic: use deterministic algorithms (slower on GPU); an operation that has none
        (AdaptiveAvgPool2d's backward on CUDA) warns, naming itself, instead of failing.
    :param channels_last: NHWC memory format for model and inputs (faster convs with AMP on GPU).
    :param compile: wrap the model in torch.compile.
    :param accumulate: micro-batches per optimizer step (gradient accumulation).
    :param clip_norm: clip the global gradient norm to this value.
    :param limit_train_batches: train on at most this many batches per epoch (smoke runs).
    :param limit_val_batches: validate on at most this many batches per epoch.
    :param monitor: metric that picks the best epoch, whose weights are restored at the end
        (default: the task's, e.g. val_acc1; see 'cv info TASK').
    :param monitor_mode: max if higher is better, min if lower is better (default: as the task says:
        min for losses and the task's minimized metrics, else max).
    :param run_dir: where config.toml, metrics.jsonl and summary.json go (default: runs/<time>-<data>-<model>).
    :param tensor_loader: keep in-memory data sets (cvcore.TensorImages) on the device and build
        batches there; false serves them through a DataLoader like any other data set.
    :param schedule_start: epoch at which the learning-rate schedule starts; schedules sized by the
        run span epochs - schedule_start. Set by `cv train --resume` when a finished run is extended.
    :param restart_lr: a finished run extended with its learning rate decayed below this share of
        the base rate restarts its schedule over the added epochs from this share.
    :param ema: keep an exponential moving average of the weights with this decay (e.g. 0.999):
        validation, the best epoch's weights and cv eval / predict / export then use the average.
    :param ema_warmup: let the average's decay grow with its updates, 1 - (1 + n) ** -2/3 up to
        ema (timm's warm-up), so that it forgets the initial weights early.
    :param ema_every: average the weights in after every this many optimizer steps.
    :param time_budget: a wall-clock budget such as 15m or 1h30m: after the first epoch the run
        takes as many epochs as fit in it at that epoch's pace, every schedule sized by the run
        re-planned over them, and records the count in config.toml (a resume keeps it).
    """

    epochs: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    batch_size: int | Literal["auto"] = attrs.field(default=64, validator=_batch_size)
    workers: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    pin_memory: bool | None = None
    precision: Precision = "32"
    device: str = "auto"
    seed: int | None = 0
    deterministic: bool = False
    channels_last: bool = False
    compile: bool = False
    accumulate: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    clip_norm: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))
    limit_train_batches: int | None = attrs.field(default=None, validator=attrs.validators.optional(
        attrs.validators.ge(1)))
    limit_val_batches: int | None = attrs.field(default=None, validator=attrs.validators.optional(
        attrs.validators.ge(1)))
    monitor: str | None = None
    monitor_mode: Literal["min", "max"] | None = None
    run_dir: Path | None = None
    tensor_loader: bool = True
    schedule_start: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    restart_lr: float = attrs.field(default=0.1, validator=[attrs.validators.gt(0), attrs.validators.le(1)])
    ema: float | None = attrs.field(default=None, validator=attrs.validators.optional(
        [attrs.validators.gt(0), attrs.validators.lt(1)]))
    ema_warmup: bool = True
    ema_every: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    time_budget: str | None = attrs.field(default=None, validator=_time_budget)

    def __attrs_post_init__(self) -> None:
        if self.schedule_start >= self.epochs:
            raise ValueError(f"'schedule_start' must be < epochs ({self.epochs}): {self.schedule_start}")
