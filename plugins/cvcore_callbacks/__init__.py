"""Built-in callbacks. Light module: heavy imports happen inside factories."""

from __future__ import annotations

from typing import Literal

import cvcore


@cvcore.hookimpl
def register_callbacks(register):
    register("early_stopping", early_stopping)


def early_stopping(*, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                   mode: Literal["min", "max"] = "min"):
    """Stop training when a monitored metric has not improved for `patience` epochs.

    :param monitor: metric name from metrics.jsonl, e.g. val_loss or val_acc1.
    :param patience: epochs without improvement before stopping.
    :param min_delta: smallest change that counts as an improvement.
    :param mode: min if lower is better, max if higher is better.
    """
    from cvcore_callbacks.stopping import EarlyStopping

    return EarlyStopping(monitor, patience, min_delta, mode)
