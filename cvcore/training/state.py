"""What a run must save to continue exactly: every random number stream, and which part of a
scheduler's state is progress (kept from a checkpoint) rather than plan (taken from the new run)."""

from __future__ import annotations

import random
from typing import Any

import torch

from cvcore.training import distributed
from cvcore.training.progress import log

# What a learning-rate scheduler has done so far; everything else in its state is how it was built
# (base_lrs too: they follow the optimizer's learning rate, which a resumed run may change).
SCHEDULER_PROGRESS = ("last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial")


def numbers_of(row: Any) -> dict[str, float]:
    """A metrics row with only its numbers: history rows come from checkpoints, which may come from
    anyone, and end up in metrics.jsonl, metrics.csv and summary.json."""
    from cvcore.errors import DataError

    if not isinstance(row, dict):
        raise DataError(f"A checkpoint's history holds {type(row).__name__!r} where a row of metrics belongs.")
    return {key: value for key, value in row.items()
            if isinstance(key, str) and key.isidentifier() and isinstance(value, (int, float))
            and not isinstance(value, bool)}


def replanned(built: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    """A saved scheduler state continued under this run's settings: progress from ``saved``, the
    rest (a cosine's length, a warm-up's steps, ...) from the scheduler as ``built`` now. Resuming
    with more epochs thus re-plans a schedule sized by the run from where it stands."""
    return {**saved, **{key: value for key, value in built.items() if key not in SCHEDULER_PROGRESS}}


def capture_rng(loader: torch.Generator, device_loader: torch.Generator) -> dict[str, Any]:
    """This process's random streams: python, numpy, torch (and CUDA), the data order's and the
    augmentations' generators."""
    import numpy

    rng = {"python": random.getstate(), "numpy": numpy.random.get_state(), "torch": torch.get_rng_state(),
           "loader": loader.get_state(), "device_loader": device_loader.get_state().cpu()}
    if device_loader.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device_loader.device)
    return rng


def restore_rng(saved: list[dict[str, Any]] | dict[str, Any], loader: torch.Generator,
                device_loader: torch.Generator) -> None:
    """Put back this process's streams from ``saved`` (one entry per process, by rank)."""
    import numpy

    ranks = saved if isinstance(saved, list) else [saved]
    if len(ranks) != distributed.world_size():
        log(f"warning: the checkpoint was saved by {len(ranks)} process(es), this run has "
            f"{distributed.world_size()}: the data order and augmentations will not repeat exactly")
    rng = ranks[distributed.rank() % len(ranks)]
    random.setstate(rng["python"])
    numpy.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    loader.set_state(rng["loader"])
    device_loader.set_state(rng["device_loader"].to(device_loader.get_state().device))
    if "cuda" in rng and device_loader.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device_loader.device)
