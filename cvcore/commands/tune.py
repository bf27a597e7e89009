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


# -- hyperparameter search (Optuna) ------------------------------------------------------------------


def read_space(path: Path) -> dict[str, dict]:
    """The search space of a TOML file: one table per option, named by its --set key, e.g.
    ``["optimizer.lr"] type = "float", low = 1e-4, high = 0.1, log = true``; ``type = "int"`` takes
    ``step``; ``choices = [...]`` makes a categorical. Every bad entry is named in one error."""
    import tomllib

    from cvcore.errors import ConfigError

    try:
        space, problems = tomllib.loads(Path(path).read_text(encoding="utf-8")), []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Search space '{path}' cannot be read ({exc}).") from None
    for key, spec in space.items():
        if "." not in key or not isinstance(spec, dict):
            problems.append(f"'{key}': expected a table named by a --set key (\"optimizer.lr\")")
        elif "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                problems.append(f"'{key}': choices must be a non-empty list")
        elif spec.get("type") not in ("float", "int"):
            problems.append(f"'{key}': type must be \"float\" or \"int\" (or give choices), got {spec.get('type')!r}")
        elif not all(isinstance(spec.get(end), (int, float)) for end in ("low", "high")) or spec["low"] >= spec["high"]:
            problems.append(f"'{key}': needs numbers low < high, got low={spec.get('low')!r}, high={spec.get('high')!r}")
        elif spec.get("log") and spec["low"] <= 0:
            problems.append(f"'{key}': log = true needs low > 0, got {spec['low']}")
    if not space:
        problems.append("it names no option to search")
    if problems:
        raise ConfigError(f"Search space '{path}': " + "; ".join(problems) + ".")
    return space


def suggested(trial, space: dict[str, dict]) -> dict:
    """One value per option of ``space``, drawn by the Optuna ``trial``."""
    values = {}
    for key, spec in space.items():
        if "choices" in spec:
            values[key] = trial.suggest_categorical(key, spec["choices"])
        elif spec["type"] == "int":
            values[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)),
                                            log=bool(spec.get("log", False)))
        else:
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return values


def check_ends(base: dict, space: dict[str, dict]) -> None:
    """Refuse, before any trial runs or is recorded, a space the run cannot take: ``base`` is planned
    with each option at both ends of its range, and at each of its choices (an unknown option, a
    value out of an option's range, an unknown model name: one error naming the key)."""
    from cvcore.errors import ConfigError, CvcoreError
    from cvcore.runs.plan import plan

    for key, spec in space.items():
        kind = int if spec.get("type") == "int" else float
        for value in spec.get("choices") or (kind(spec["low"]), kind(spec["high"])):
            try:
                plan(with_values(base, {key: value}))
            except CvcoreError as exc:
                raise ConfigError(f"The search space's {key} = {value!r} does not fit the run: {exc}") from None


def monitored(config: dict) -> tuple[str, str]:
    """The metric a run picks its best epoch by, and "max" or "min": what a search optimises."""
    from cvcore.runs.plan import declared_task, plan
    from cvcore.tasks import task_for

    checked = plan(config)
    return task_for(declared_task(checked)).monitored(checked.trainer.get("monitor"), checked.trainer.get("monitor_mode"))


def pruning_callback(trial, monitor: str):
    """A callback that reports the monitored metric to the Optuna ``trial`` after each validation
    and, when the pruner says so, ends the run after that epoch (a shorter run, its directory whole)."""
    from cvcore.callbacks import Callback

    class Pruning(Callback):
        pruned = False

        def on_validation_end(self, trainer, metrics: dict[str, float]) -> None:
            value = metrics.get(monitor)
            if value is None or not math.isfinite(value):
                return
            trial.report(value, int(metrics["epoch"]))
            if trial.should_prune():
                self.pruned = True
                trainer.request_stop(f"pruned by the search after epoch {int(metrics['epoch'])}")

    return Pruning()


def search(base: dict, space: dict[str, dict], trials: int, study_name: str, storage: str, runs: Path, echo):
    """Trials of ``base`` with values from ``space`` until the study holds ``trials`` finished ones
    (several processes may share one study through ``storage``); returns the study."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from cvcore.runs import job

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failing trial is our one error, not its traceback too
    check_ends(base, space)
    monitor, mode = monitored(base)
    study = joined(study_name, storage, "maximize" if mode == "max" else "minimize")

    def objective(trial) -> float:
        values = suggested(trial, space)
        config = with_values(base, {**values, "trainer.run_dir": str(runs / f"trial-{trial.number:04d}")})
        pruning = pruning_callback(trial, monitor)
        summary, run_dir = job.train(config, callbacks=(pruning,))
        trial.set_user_attr("run_dir", str(run_dir))
        best = summary["best_value"]
        echo(f"trial {trial.number}: {', '.join(f'{k}={v}' for k, v in values.items())} -> {monitor} "
             f"{best if best is None else round(best, 4)}{' (pruned)' if pruning.pruned else ''}; run in {run_dir}")
        if pruning.pruned:
            raise optuna.TrialPruned()
        return best if best is not None else float("nan")

    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.get_trials(deepcopy=False))
    if finished < trials:
        study.optimize(objective, callbacks=[MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))])
    return study, monitor


def joined(study_name: str, storage: str, direction: str, attempts: int = 5):
    """The study, made or loaded. Processes starting together on a new SQLite file race to create
    its tables; the one that loses waits a moment and loads what the other made."""
    import time

    import optuna

    def create():
        return optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True, direction=direction,
                                   pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))

    for attempt in range(attempts - 1):
        try:
            return create()
        except Exception:  # sqlalchemy's IntegrityError / OperationalError from the other process's creation
            time.sleep(0.5 + attempt)
    return create()


def with_values(base: dict, values: dict) -> dict:
    """``base`` with each option named by a --set key set to its value (the best trial's values give
    the configuration that re-runs it)."""
    from cvcore.runs import config as cfg

    config = base
    for key, value in values.items():
        config = cfg.set_value(config, key, value)
    return config
