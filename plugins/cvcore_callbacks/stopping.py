"""Stop a run whose monitored metric has stopped improving."""

from __future__ import annotations

import math

from cvcore import Callback, ConfigError


class EarlyStopping(Callback):
    def __init__(self, monitor: str, patience: int, min_delta: float, mode: str) -> None:
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, min_delta, mode
        self.best = math.inf if mode == "min" else -math.inf
        self.waited = 0

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            raise ConfigError(f"early_stopping monitors '{self.monitor}', which this run does not log; "
                              f"logged: {', '.join(sorted(metrics))}.")
        value = metrics[self.monitor]
        if self.improved(value):
            self.best, self.waited = value, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            trainer.request_stop(f"early stopping: {self.monitor} did not improve for {self.patience} epochs")

    def state_dict(self) -> dict:
        return {"best": self.best, "waited": self.waited}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.waited = state["best"], state["waited"]
