"""`cv tune lr`: Smith's (2017) learning-rate range test on a run's configuration, nothing saved
but a plot: a few hundred steps with the learning rate growing geometrically, the loss after each."""

from __future__ import annotations

import math
from pathlib import Path

from cvcore.errors import DataError

SMOOTHING = 0.98  # of the loss curve, as fastai's and Lightning's range tests smooth it
DIVERGED = 4.0  # the test stops once the smoothed loss exceeds this many times its lowest


def smoothed(losses: list[float]) -> list[float]:
    """An exponential moving average of ``losses`` with bias correction (the first values are not
    pulled towards 0)."""
    average, out = 0.0, []
    for step, loss in enumerate(losses, 1):
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        out.append(average / (1 - SMOOTHING**step))
    return out


def diverged(losses: list[float]) -> bool:
    """Whether the test should stop: the last loss is not finite, or the smoothed loss has risen
    above DIVERGED times its lowest."""
    if not math.isfinite(losses[-1]):
        return True
    curve = smoothed(losses)
    return len(curve) > 1 and curve[-1] > DIVERGED * min(curve)


def suggestion(lrs: list[float], losses: list[float], skip_start: int = 10, skip_end: int = 5) -> float:
    """The learning rate where the smoothed loss falls fastest against log(lr), leaving out the
    first and last few steps (noise, divergence), as Lightning's and fastai's range tests suggest."""
    curve = smoothed([loss for loss in losses if math.isfinite(loss)])
    end = max(len(curve) - skip_end, skip_start + 2)
    window = range(skip_start, min(end, len(curve)) - 1)
    if not window:
        raise DataError(f"The range test ran {len(curve)} steps before the loss diverged: too few to suggest "
                        f"a learning rate. Lower --min-lr or --max-lr.")
    slopes = {i: (curve[i + 1] - curve[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in window}
    return lrs[min(slopes, key=slopes.get)]


def plot_range(lrs: list[float], losses: list[float], suggested: float, output: Path) -> Path | None:
    """Loss (raw and smoothed) against the learning rate on a log axis, the suggestion marked; None
    without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from cvcore.files import save_figure

    finite = [(lr, loss) for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([lr for lr, _ in finite], [loss for _, loss in finite], color="C0", alpha=0.3, label="loss")
    axis.plot([lr for lr, _ in finite], smoothed([loss for _, loss in finite]), color="C0", label="smoothed")
    axis.axvline(suggested, color="C3", linestyle="--", label=f"suggested {suggested:.2g}")
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("training loss")
    axis.legend()
    figure.tight_layout()
    save_figure(figure, output, dpi=100)
    plt.close(figure)
    return output
