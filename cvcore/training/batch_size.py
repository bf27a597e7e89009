"""`--batch-size auto`: the largest batch whose training step fits in the accelerator's memory.

On CUDA the step (forward and backward, with the run's precision and memory format) is tried at
doubling sizes until one runs out of memory, then between the last two by bisection; the run
takes nine tenths of the largest that fitted (room for what a probe does not allocate: the real
batches, the metrics), the same on every process of a torchrun (their smallest). The CPU and MPS
have nothing to probe: memory is not what limits a batch there."""

from __future__ import annotations

from collections.abc import Callable

DEFAULT = 64  # the batch size where there is nothing to probe (TrainerOptions' default)
MARGIN = 0.9


def largest_fitting(fits: Callable[[int], bool], limit: int) -> int:
    """The largest n in 1..``limit`` with ``fits(n)``, assuming every smaller size fits too: doubling
    from 1, then bisection between the last size that fitted and the first that did not. 0 if even
    1 does not fit."""
    low, high = 0, 1
    while high <= limit and fits(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def with_margin(largest: int) -> int:
    """Nine tenths of ``largest``, from 16 up rounded down to a multiple of 8."""
    chosen = max(1, int(largest * MARGIN))
    return chosen - chosen % 8 if chosen >= 16 else chosen


def probed(model, loss_fn, info, options, device) -> int:
    """The batch size for ``--batch-size auto``: probed on CUDA (the smallest of every process's
    under torchrun), else DEFAULT with a note saying why."""
    import torch

    from cvcore.tasks import task_for
    from cvcore.training import distributed
    from cvcore.training.progress import log
    from cvcore.training.trainer import AUTOCAST_DTYPES

    if device.type != "cuda":
        log(f"note: --batch-size auto has nothing to probe on {device.type.upper()} (memory does not limit a "
            f"batch there); using {DEFAULT}.")
        return DEFAULT
    memory_format = torch.channels_last if options.channels_last else torch.preserve_format
    model.to(device, memory_format=memory_format).train()
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn.to(device)
    task, dtype = task_for(info.task), AUTOCAST_DTYPES.get(options.precision)

    def fits(size: int) -> bool:
        return step_fits(model, loss_fn, task, info, device, dtype, memory_format, size)

    largest = largest_fitting(fits, limit=65536)
    chosen = min(distributed.gather(with_margin(largest)))
    log(f"note: --batch-size auto: a training step fits with up to {largest} images on {device}; using {chosen} "
        f"(recorded in config.toml).")
    return chosen


def step_fits(model, loss_fn, task, info, device, dtype, memory_format, size: int) -> bool:
    """Whether one training step (forward and backward) on ``size`` example images runs without
    exhausting CUDA memory; gradients are dropped after it."""
    import contextlib

    import torch

    images = torch.zeros(size, info.in_channels, *info.image_size, device=device).contiguous(memory_format=memory_format)
    targets = task.example_target(info, size)
    targets = targets.to(device) if isinstance(targets, torch.Tensor) else targets
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    try:
        with autocast:
            loss, _ = task.training_step(model, images, targets, loss_fn)
        loss.backward()
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        model.zero_grad(set_to_none=True)
        del images, targets
        torch.cuda.empty_cache()
