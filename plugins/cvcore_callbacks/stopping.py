"""Stop a run whose monitored metric has stopped improving."""

from __future__ import annotations

from cvcore import Callback, ConfigError, Monitor


class EarlyStopping(Callback):
    def __init__(self, monitor: str, patience: int, min_delta: float, mode: str | None) -> None:
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.tracker = Monitor(monitor, mode, min_delta)
        self.waited = 0

    def on_fit_start(self, trainer) -> None:
        self.tracker.mode = self.mode or trainer.task.mode(self.monitor)  # the task knows its metrics

    def on_epoch_end(self, trainer, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            raise ConfigError(f"early_stopping monitors '{self.monitor}', which this run does not log; "
                              f"logged: {', '.join(sorted(metrics))}.")
        if self.tracker.update(metrics[self.monitor], trainer.epoch):
            self.waited = 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            trainer.request_stop(f"early stopping: {self.monitor} did not improve for {self.patience} epochs")

    def state_dict(self) -> dict:
        return {**self.tracker.state_dict(), "waited": self.waited}

    def load_state_dict(self, state: dict) -> None:
        self.tracker.load_state_dict(state)
        self.waited = state["waited"]
