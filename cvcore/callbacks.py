"""The callback protocol: objects whose no-op methods the Trainer calls at fixed points of a run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvcore.training.trainer import Trainer


class Callback:
    """Override the events you need; each receives the Trainer, whose state is public.

    Methods are called on every process; use ``trainer.is_main`` to write files only once.
    ``state_dict``/``load_state_dict`` let a callback's state travel with checkpoints.
    """

    #: Callbacks run in increasing ``order``, then as configured. A callback that saves the run's
    #: state (the checkpoint callback: 100) runs after the others have seen the epoch.
    order: int = 0

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer) -> None: ...

    def on_batch_end(self, trainer: Trainer, loss: Any) -> None:
        """Called after every optimizer step; ``loss`` is a tensor (no host sync has happened)."""

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
