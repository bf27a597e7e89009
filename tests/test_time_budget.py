"""`--time`: a run sizes its epochs from its first epoch's pace, re-plans its schedules over them,
records the count, and a resume keeps it."""

import json

import pytest
from click.testing import CliRunner

from cvcore.commands.cli import cli

BUDGETED = ["--time", "1.5s", "--limit-train-batches", "4", "--scheduler", "cosine", "--optimizer", "sgd",
            "--lr", "0.1", "--epochs", "50", "--set", "callbacks.checkpoint.keep_last=100"]


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_budgeted_run_takes_the_epochs_that_fit_at_its_first_pace_and_records_them(in_tmp):
    result = CliRunner().invoke(cli, ["train", *BUDGETED, "--run-dir", "r"])
    assert result.exit_code == 0, result.output
    logged = rows(in_tmp / "r")
    epochs = max(1, int(1.5 // logged[0]["seconds"]))  # what the first epoch's pace allows
    assert len(logged) == epochs and f"so the run has {epochs} epoch(s)" in result.output  # --epochs yields
    assert f"epochs = {epochs}" in (in_tmp / "r" / "config.toml").read_text()
    rates = [row["lr"] for row in logged]
    assert all(later < earlier for earlier, later in zip(rates, rates[1:]))  # the cosine spans the run decided
    if len(rates) >= 3:
        assert rates[-1] < 0.5 * rates[0]  # and ends low, not at a fiftieth of its course


def test_a_budgeted_run_resumed_is_the_same_run(in_tmp):
    assert CliRunner().invoke(cli, ["train", *BUDGETED, "--run-dir", "r"]).exit_code == 0
    logged = rows(in_tmp / "r")
    if len(logged) < 3:
        pytest.skip(f"this machine fits {len(logged)} epoch(s) in the budget: nothing to resume in between")
    resumed = CliRunner().invoke(cli, ["train", "--resume", "r/checkpoints/epoch-0002.safetensors"])
    assert resumed.exit_code == 0, resumed.output
    assert "so the run has" not in resumed.output  # decided once, by the first epoch
    drop = ("seconds", "images_per_second")
    assert [{k: v for k, v in row.items() if k not in drop} for row in rows(in_tmp / "r")] == \
           [{k: v for k, v in row.items() if k not in drop} for row in logged]


def test_a_time_budget_that_is_not_a_duration_is_refused_before_training(in_tmp):
    result = CliRunner().invoke(cli, ["train", "--time", "15x"])
    assert result.exit_code == 1
    assert "time_budget must be a duration such as 15m, 1h30m or 900s, got 15x." in result.output
    assert not (in_tmp / "runs").exists()
