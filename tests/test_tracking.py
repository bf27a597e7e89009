"""The mlflow callback against real MLflow stores: a database on disk, a tracking server on the
loopback interface, and a server that is not there (training goes on)."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner

from cvcore.commands.cli import cli

mlflow = pytest.importorskip("mlflow")  # the `mlflow` extra, part of `dev`

QUICK = ["--limit-train-batches", "3", "--callback", "mlflow"]


def train(*args):
    result = CliRunner().invoke(cli, ["train", *QUICK, *args])
    assert result.exit_code == 0, result.output
    return result


def only_run(uri: str):
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cvcore").experiment_id])
    return client, run


def metrics_of(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_is_tracked_in_a_local_database_and_a_resume_goes_on_in_the_same_mlflow_run(in_tmp):
    uri = f"sqlite:///{in_tmp / 'track.db'}"
    train("--epochs", "2", "--run-dir", "r", "--set", f"callbacks.mlflow.tracking_uri={uri}")
    client, run = only_run(uri)
    assert run.info.status == "FINISHED" and run.info.run_name == "r"
    assert run.data.params["optimizer.name"] == "optim:adam" and run.data.params["trainer.epochs"] == "2"
    logged = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "val_acc1"), key=lambda m: m.step)]
    assert logged == [row["val_acc1"] for row in metrics_of(in_tmp / "r")]
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["best.safetensors", "config.toml"]
    train("--resume", "r", "--epochs", "+1")
    client, resumed = only_run(uri)  # still one MLflow run
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_acc1")) == [1, 2, 3]


def test_a_tracking_server_that_is_not_there_costs_one_warning_and_no_training(in_tmp):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the probe is: nothing listens
    started = time.monotonic()
    result = train("--epochs", "2", "--run-dir", "r", "--set", f"callbacks.mlflow.tracking_uri=http://127.0.0.1:{port}")
    assert result.output.count("training goes on without tracking") == 1
    assert len(metrics_of(in_tmp / "r")) == 2 and time.monotonic() - started < 60


def test_without_mlflow_the_callback_says_which_extra_to_install(in_tmp, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    result = CliRunner().invoke(cli, ["train", *QUICK, "--epochs", "1"])
    assert result.exit_code == 1 and "pip install 'cvcore[mlflow]'" in result.output
    assert not (in_tmp / "runs").exists()


@pytest.mark.slow
def test_a_run_is_tracked_on_a_local_mlflow_server(in_tmp):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{in_tmp / 'server.db'}", "--artifacts-destination", str(in_tmp / "store")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        train("--epochs", "1", "--run-dir", "r", "--set", f"callbacks.mlflow.tracking_uri={url}")
        client, run = only_run(url)
        assert run.info.status == "FINISHED" and run.data.metrics["val_acc1"] == metrics_of(in_tmp / "r")[-1]["val_acc1"]
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["best.safetensors", "config.toml"]
    finally:
        server.terminate()
        server.wait(timeout=30)
