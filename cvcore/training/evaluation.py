"""Validation: a model's metrics over batches, as its task measures them, summed across processes."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from cvcore.tasks import Metrics, guarded_metrics, task_for
from cvcore.training import distributed


def evaluate(model: nn.Module, loss_fn, batches, info, device: torch.device,
             autocast=contextlib.nullcontext) -> Metrics:
    """Validation metrics (with per-class scores, and a confusion matrix where the task has one) of
    ``model`` over ``batches``; used by the Trainer every epoch and by `cv eval`."""
    model.eval()
    metrics = guarded_metrics(info.task, info.num_classes, device, detailed=True)
    task = task_for(info.task)
    with torch.inference_mode(), autocast():
        for images, target in batches:
            loss, output = task.validation_step(model, images, target, loss_fn)
            metrics.update(output, target, loss)
    return combined(metrics)


def combined(metrics: Metrics) -> Metrics:
    """``metrics`` with every process's share: sums added, per-image rows concatenated."""
    distributed.all_reduce_sum(metrics.tensors())
    distributed.all_gather_rows(metrics.rows())
    return metrics
