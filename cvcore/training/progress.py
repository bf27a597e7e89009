"""Progress for people and for logs: a rich bar on a terminal, nothing per step otherwise."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cvcore.tasks import Metrics
    from cvcore.training.trainer import Trainer

# Reading metrics for the bar is a host-device sync: do it a few times per second at most.
REFRESH_SECONDS = 0.5


def log(line: str) -> None:
    print(line, flush=True)


def write_epoch(metrics: dict[str, float], run_dir: Path | None, epochs: int) -> None:
    """The run log of one epoch: a row of metrics.jsonl (the source of truth) and the printed line."""
    if run_dir is not None:
        from cvcore.files import append_text

        append_text(Path(run_dir) / "metrics.jsonl", json.dumps(metrics) + "\n")
    log(format_epoch(metrics, epochs))


def format_epoch(metrics: dict[str, float], epochs: int) -> str:
    """One log line: every metric, in the order logged."""
    parts = [f"epoch {metrics['epoch']}/{epochs}"]
    for key, value in metrics.items():
        if key == "epoch":
            continue
        if key == "images_per_second":
            parts.append(f"{value:.0f} img/s")
        elif key == "seconds":
            parts.append(f"{value:.1f}s")
        else:
            parts.append(f"{key} {value:.3g}" if key == "lr" else f"{key} {value:.4f}")
    return "  ".join(parts)


class EpochProgress:
    """A per-epoch rich progress bar with loss, accuracy, lr, images/s and ETA (terminal, main process)."""

    def __init__(self, trainer: Trainer, total: int) -> None:
        self.trainer, self.total = trainer, total
        self.enabled = trainer.is_main and sys.stdout.isatty()
        self.last_refresh = 0.0

    def __enter__(self) -> EpochProgress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                                TextColumn("{task.fields[stats]}"), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("train", total=self.total, epoch=self.trainer.epoch + 1, stats="")
            self.start = time.perf_counter()
        return self

    def advance(self, metrics: Metrics) -> None:
        if not self.enabled:
            return
        self.bar.advance(self.task)
        now = time.perf_counter()
        if now - self.last_refresh >= REFRESH_SECONDS:
            self.last_refresh = now
            loss, score = metrics.running()
            stats = (f"loss {loss:.4f}  {metrics.headline} {score:.4f}  lr {self.trainer.lr:.3g}  "
                     f"{metrics.seen / (now - self.start):.0f} img/s")
            self.bar.update(self.task, stats=stats)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.stop()
