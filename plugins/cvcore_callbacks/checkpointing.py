"""The `checkpoint` callback: last, best and the last k epochs, written atomically as safetensors."""

from __future__ import annotations

from pathlib import Path

from cvcore import Callback, Monitor
from cvcore import checkpoint as ckpt
from cvcore.files import make_directory


class CheckpointCallback(Callback):
    """Saves after every other callback has seen the epoch (``order``), so that the saved state
    (early stopping's patience, a stop reason) is the state of the completed epoch."""

    order = 100

    def __init__(self, folder: str, monitor: str | None, mode: str | None, keep_last: int, every: int) -> None:
        self.folder, self.monitor, self.mode, self.keep_last, self.every = folder, monitor, mode, keep_last, every
        self.tracker: Monitor | None = None  # own monitor; None: follow the Trainer's best epoch
        self.saved: dict = {}  # the tracker's state from a checkpoint, until the tracker exists
        self.best_epoch: int | None = None
        self.directory: Path | None = None

    def on_fit_start(self, trainer) -> None:
        if trainer.run_dir is None or not trainer.is_main:
            return
        self.directory = make_directory(Path(trainer.run_dir) / self.folder)
        for stale in self.directory.glob(".*.tmp-*"):  # left by a process killed while saving
            stale.unlink(missing_ok=True)
        last = self.directory / "last.safetensors"
        if self.best_epoch is not None and self.best_epoch == trainer.epoch == ckpt.saved_epoch(last):
            # A kill between saving `last` and linking `best` in an improving epoch: link it now. Only
            # a whole `last` of this very epoch: a run resumed from `best` has a later `last`.
            ckpt.link_atomically(last, self.directory / "best.safetensors")

    def on_epoch_end(self, trainer, metrics: dict[str, float]) -> None:
        if self.directory is None or trainer.epoch % self.every and trainer.epoch != trainer.options.epochs:
            return
        improved = self._improved(trainer, metrics)
        last = ckpt.save_trainer(self.directory / "last.safetensors", trainer)
        if improved:
            ckpt.link_atomically(last, self.directory / "best.safetensors")
        if self.keep_last:
            ckpt.link_atomically(last, self.directory / f"epoch-{trainer.epoch:04d}.safetensors")
            for old in sorted(self.directory.glob("epoch-*.safetensors"))[:-self.keep_last]:
                old.unlink()

    def _improved(self, trainer, metrics: dict[str, float]) -> bool:
        """Whether this epoch is the best so far; recorded before the save, so `last` knows it."""
        monitor = self.monitor or trainer.monitor
        if monitor == trainer.monitor and self.mode is None:
            better = trainer.best["epoch"] == metrics["epoch"]
        else:
            if self.tracker is None:
                self.tracker = Monitor(monitor, self.mode or trainer.task.mode(monitor))
                self.tracker.load_state_dict(self.saved)
            better = self.tracker.update(metrics[monitor], metrics["epoch"])
        self.best_epoch = trainer.epoch if better else self.best_epoch
        return better

    def state_dict(self) -> dict:
        best = self.tracker.best if self.tracker else None
        return {"best": best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best_epoch, self.saved = state.get("best_epoch"), state
