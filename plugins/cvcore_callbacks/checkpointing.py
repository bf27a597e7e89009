"""The `checkpoint` callback: last, best and the last k epochs, written atomically as safetensors."""

from __future__ import annotations

import math
from pathlib import Path

from cvcore import checkpoint as ckpt
from cvcore.callbacks import Callback
from cvcore.trainer import Interrupted


class CheckpointCallback(Callback):
    def __init__(self, folder: str, monitor: str | None, mode: str | None, keep_last: int, every: int) -> None:
        self.folder, self.monitor, self.mode, self.keep_last, self.every = folder, monitor, mode, keep_last, every
        self.best: float | None = None
        self.directory: Path | None = None

    def on_fit_start(self, trainer) -> None:
        if trainer.run_dir is None or not trainer.is_main:
            return
        self.directory = Path(trainer.run_dir) / self.folder
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(".*.tmp-*"):  # left by a process killed while saving
            stale.unlink(missing_ok=True)

    def on_epoch_end(self, trainer, metrics: dict[str, float]) -> None:
        if self.directory is None or trainer.epoch % self.every and trainer.epoch != trainer.options.epochs:
            return
        last = ckpt.save_trainer(self.directory / "last.safetensors", trainer)
        if self._improved(trainer, metrics):
            ckpt.link_atomically(last, self.directory / "best.safetensors")
        if self.keep_last:
            ckpt.link_atomically(last, self.directory / f"epoch-{trainer.epoch:04d}.safetensors")
            for old in sorted(self.directory.glob("epoch-*.safetensors"))[:-self.keep_last]:
                old.unlink()

    def _improved(self, trainer, metrics: dict[str, float]) -> bool:
        monitor = self.monitor or trainer.monitor
        if monitor == trainer.monitor and self.mode is None:
            return trainer.best["epoch"] == metrics["epoch"]
        mode = self.mode or ("min" if monitor.endswith("loss") else "max")
        value = metrics[monitor]
        better = self.best is None or (value < self.best if mode == "min" else value > self.best)
        if better and math.isfinite(value):
            self.best = value
        return better

    def on_exception(self, trainer, exc: BaseException) -> None:
        if isinstance(exc, Interrupted) and self.directory is not None:
            ckpt.save_trainer(self.directory / "last.safetensors", trainer)

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]
