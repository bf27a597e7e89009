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


class StopVote:
    """Whether to stop, agreed by every process of a run, so that all stop after the same step (a
    process that stopped alone would leave the others waiting in a collective, or cut them off).

    Each step starts an all-reduce (max) of the signal this process noted, on a gloo group of its
    own, and reads the one started a step before: no process waits on the network, or on the GPU,
    to learn the outcome. ``group`` None (one process): the signal noted here is the answer."""

    def __init__(self, group=None) -> None:
        self.group, self.pending = group, None

    def step(self, signum: int | None) -> int:
        """Vote ``signum`` (None: no signal) and return the outcome of the previous step's vote (0: go on)."""
        if self.group is None:
            return signum or 0
        agreed, self.pending = self._outcome(), self._start(signum)
        return agreed

    def settle(self, signum: int | None) -> int:
        """The outcome of every vote so far and of ``signum`` now, waited for (at an epoch's end)."""
        if self.group is None:
            return signum or 0
        earlier = self._outcome()
        self.pending = self._start(signum)
        return max(earlier, self._outcome())

    def _start(self, signum: int | None):
        import torch
        import torch.distributed as dist

        flag = torch.tensor([signum or 0])
        return dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group, async_op=True), flag

    def _outcome(self) -> int:
        if self.pending is None:
            return 0
        work, flag = self.pending
        self.pending = None
        work.wait()
        return int(flag.item())  # a CPU tensor: no device sync
