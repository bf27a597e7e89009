"""`cv plot`: loss, accuracy and learning-rate curves per epoch from metrics.jsonl, runs overlaid."""

from __future__ import annotations

import json
from pathlib import Path

from cvcore.errors import DataError
from cvcore.tasks import is_loss

BOOKKEEPING = {"epoch", "lr", "seconds", "images_per_second"}


def panels(rows: list[dict]) -> tuple[tuple[str, list[str]], ...]:
    """Losses, the task's own scores (whatever else each epoch logs: accuracy, mIoU, mAP, MAE, ...)
    and the learning rate: the kernel names no task's metrics."""
    keys = list(dict.fromkeys(key for row in rows for key in row if key not in BOOKKEEPING))
    return (("loss", [k for k in keys if is_loss(k)]), ("scores", [k for k in keys if not is_loss(k)]),
            ("learning rate", ["lr"]))


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"'{run_dir}' has no metrics.jsonl; give run directories written by cv train.")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_runs(run_dirs: list[Path], output: Path) -> Path:
    """One PNG with a panel per quantity; each run gets one colour, train dashed, validation solid."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DataError("cv plot needs matplotlib: pip install 'cvcore[plot]'.") from None
    runs = {Path(d).name: read_metrics(Path(d)) for d in run_dirs}
    shown = panels([row for rows in runs.values() for row in rows])
    figure, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 4))
    for colour, (name, rows) in enumerate(runs.items()):
        epochs = [row["epoch"] for row in rows]
        for axis, (title, keys) in zip(axes, shown):
            for key in keys:
                if rows and key in rows[0]:
                    style = "--" if key.startswith("train") else "-"
                    axis.plot(epochs, [row[key] for row in rows], style, color=f"C{colour}", label=f"{name} {key}")
            axis.set_title(title)
            axis.set_xlabel("epoch")
    axes[-1].set_yscale("log")
    for axis in axes:
        axis.legend(fontsize=7)
    figure.tight_layout()
    from cvcore.files import save_figure

    save_figure(figure, output, dpi=100)
    plt.close(figure)
    return output
