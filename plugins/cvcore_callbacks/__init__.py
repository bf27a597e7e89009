"""Built-in callbacks. Light module: heavy imports happen inside factories."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Literal

import cvcore
from cvcore import Between

Count = Annotated[int, Between(0)]


@cvcore.hookimpl
def register_callbacks(register):
    register("early_stopping", early_stopping)
    register("checkpoint", checkpoint)
    register("csv", csv_logger)
    register("lr_monitor", lr_monitor)
    register("onnx", onnx_export)
    register("predictions", predictions)
    register("mlflow", mlflow_tracking)
    if importlib.util.find_spec("tensorboard") is not None:  # only offered when it can work
        register("tensorboard", tensorboard)


def csv_logger():
    """Write metrics.csv beside metrics.jsonl (the same rows, for spreadsheets)."""
    from cvcore_callbacks.writers import CsvLogger

    return CsvLogger()


def lr_monitor():
    """Write lr.jsonl: the learning rate of each parameter group after every optimizer step."""
    from cvcore_callbacks.writers import LrMonitor

    return LrMonitor()


def mlflow_tracking(*, tracking_uri: str | None = None, experiment: str = "cvcore", run_name: str | None = None):
    """Track the run in MLflow: the resolved config as parameters, every epoch's metrics, and
    config.toml and the best checkpoint as artifacts (the `mlflow` extra).

    :param tracking_uri: where MLflow keeps runs: a database URL or a server's http(s) address
        (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the current folder).
    :param experiment: the MLflow experiment the run joins (made if missing).
    :param run_name: the MLflow run's name (default: the run directory's name).
    """
    import os

    if importlib.util.find_spec("mlflow") is None:
        raise cvcore.OptionError("callback 'mlflow' needs MLflow: pip install 'cvcore[mlflow]'.")
    from cvcore_callbacks.tracking import MlflowTracker

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"
    return MlflowTracker(uri, experiment, run_name)


def tensorboard():
    """Log every epoch metric to TensorBoard (RUN_DIR/tensorboard)."""
    from cvcore_callbacks.writers import TensorBoardLogger

    return TensorBoardLogger()


def onnx_export(*, opset: int | None = None, task: str | None = None):
    """Export the final (best) model to RUN_DIR/model.onnx, checked, and verified with onnxruntime if installed.

    :param opset: ONNX opset version (default: the exporter's).
    :param task: the data's task (filled in): one whose models cannot be exported is refused before training.
    """
    from cvcore_callbacks.writers import OnnxExport

    refusal = cvcore.task_for(task).onnx_refusal if task is not None else None
    if refusal:
        raise cvcore.OptionError(f"callback 'onnx' cannot export this run's model: {refusal}")
    return OnnxExport(opset)


def predictions(*, count: int = 16):
    """Save predictions.png after each validation: images with predicted and true labels.

    :param count: number of validation images in the grid.
    """
    from cvcore_callbacks.writers import PredictionGrid

    return PredictionGrid(count)


def checkpoint(*, folder: str = "checkpoints", monitor: str | None = None, mode: Literal["min", "max"] | None = None,
               keep_last: Count = 0, every: Annotated[int, Between(1)] = 1):
    """Save last.safetensors each epoch and best.safetensors when the monitored metric improves.

    Weights and trainer state (optimizer, schedulers, scaler, counters, RNG states) go into one
    safetensors file with a JSON document; writes are atomic. Also saves when SIGINT/SIGTERM stop a run.

    :param folder: sub-folder of the run directory (a relative path inside it).
    :param monitor: metric that decides best (default: the Trainer's monitor).
    :param mode: min or max (default: as the data set's task says; min for losses).
    :param keep_last: also keep the last k epochs as epoch-NNNN.safetensors (0: none).
    :param every: save every N epochs (the last epoch is always saved).
    """
    from cvcore import OptionError
    from cvcore_callbacks.checkpointing import CheckpointCallback

    if Path(folder).is_absolute() or ".." in Path(folder).parts or not folder.strip():
        raise OptionError(f"checkpoint: folder must be a relative path inside the run directory, got {folder!r}.")

    return CheckpointCallback(folder, monitor, mode, keep_last, every)


def early_stopping(*, monitor: str = "val_loss", patience: Count = 5, min_delta: Annotated[float, Between(0.0)] = 0.0,
                   mode: Literal["min", "max"] | None = None):
    """Stop training when a monitored metric has not improved for `patience` epochs.

    :param monitor: metric name from metrics.jsonl, e.g. val_loss or val_acc1.
    :param patience: epochs without improvement before stopping.
    :param min_delta: smallest change that counts as an improvement.
    :param mode: min if lower is better, max if higher is better (default: as the data set's task
        says; min for losses).
    """
    from cvcore_callbacks.stopping import EarlyStopping

    return EarlyStopping(monitor, patience, min_delta, mode)
