"""SIGINT and SIGTERM during training: noted, so that the step in flight finishes and the run stops
between steps with its last epoch saved, instead of dying mid-update."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the step in flight finished. ``epoch`` epochs were completed: the
    checkpoints hold the last of them, and a resumed run re-runs the interrupted epoch from its start."""

    def __init__(self, signum: int, epoch: int, run_dir=None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum, self.epoch, self.run_dir = signum, epoch, run_dir


@contextmanager
def signals_noted(note: Callable[[int], None]) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM call ``note(signum)`` instead of their handlers.
    Only the main thread can catch signals: elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: note(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
