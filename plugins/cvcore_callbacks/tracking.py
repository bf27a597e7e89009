"""Experiment tracking: a run's configuration, metrics and files sent to MLflow as it trains.

A tracking server that cannot be reached costs a run nothing: the first failure is one warning,
and the callback then stays silent (training goes on, the run directory has everything)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from cvcore import Callback

# MLflow retries an unreachable server for minutes by default; a run waits at most about this.
QUICK_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def flattened(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"optimizer.lr": "0.002", ...}``: MLflow parameters from a nested configuration."""
    params = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            params.update(flattened(value, f"{name}."))
        else:
            params[name] = str(value)[:6000]  # MLflow's limit on a parameter's value
    return params


class MlflowTracker(Callback):
    """Parameters (the resolved config), every epoch's metrics (step = epoch), and at the end
    config.toml and the best checkpoint as artifacts, from the main process. Its MLflow run id is
    kept in the checkpoint, so a resumed run goes on in the same MLflow run."""

    def __init__(self, tracking_uri: str, experiment: str, run_name: str | None) -> None:
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.run_id: str | None = None
        self.client = None
        self.broken = False

    def _call(self, what: str, method: str, *args, **kwargs) -> Any:
        """``self.client.method(...)``, or None once MLflow has failed (said once, on stderr)."""
        if self.broken or self.client is None:
            return None
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except Exception as exc:  # any failure of the tracking server or store: training goes on
            self.broken = True
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"warning: MLflow at '{self.tracking_uri}' failed while {what} ({first_line[:300]}); "
                  f"training goes on without tracking.", file=sys.stderr, flush=True)
            return None

    def on_fit_start(self, trainer) -> None:
        if not trainer.is_main:
            return
        import mlflow

        for key, value in QUICK_RETRIES.items():
            os.environ.setdefault(key, value)
        self.client = mlflow.MlflowClient(self.tracking_uri)
        if self.run_id is not None:  # resumed: the same MLflow run
            self._call("reopening its run", "update_run", self.run_id, status="RUNNING")
            return
        found = self._call("finding the experiment", "get_experiment_by_name", self.experiment)
        experiment_id = found.experiment_id if found else self._call("creating the experiment", "create_experiment",
                                                                        self.experiment)
        name = self.run_name or (Path(trainer.run_dir).name if trainer.run_dir else None)
        run = self._call("creating a run", "create_run", experiment_id, run_name=name) if experiment_id else None
        if run is None:
            return
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(key, value) for key, value in flattened(trainer.metadata.get("config", {})).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
            self._call("logging parameters", "log_batch", self.run_id, params=params[start:start + 100])

    def on_epoch_end(self, trainer, metrics: dict[str, float]) -> None:
        if not trainer.is_main or self.run_id is None:
            return
        import time

        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(metrics["epoch"])
        logged = [Metric(key, float(value), now, step) for key, value in metrics.items()
                  if key != "epoch" and isinstance(value, (int, float))]
        self._call("logging metrics", "log_batch", self.run_id, metrics=logged)

    def on_fit_end(self, trainer) -> None:
        if not trainer.is_main or self.run_id is None:
            return
        if trainer.run_dir is not None:
            for path in (Path(trainer.run_dir) / "config.toml", Path(trainer.run_dir) / "checkpoints" / "best.safetensors"):
                if path.is_file():
                    self._call(f"uploading {path.name}", "log_artifact", self.run_id, str(path))
        self._call("ending its run", "set_terminated", self.run_id, "FINISHED")

    def on_exception(self, trainer, exc: BaseException) -> None:
        """The MLflow run ends FAILED (an interrupted run, resumed later, reopens it)."""
        if trainer.is_main and self.run_id is not None:
            self._call("ending its run", "set_terminated", self.run_id, "FAILED")

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")
