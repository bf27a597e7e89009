"""`cv train`: the default job, configuration files, overrides, dry runs and clear errors."""

import json
import tomllib

import pytest
from click.testing import CliRunner

from cvcore.commands.cli import cli


def cv(*args):
    return CliRunner().invoke(cli, list(args))


def test_default_job_reaches_95_percent(in_tmp):
    result = cv("train")
    assert result.exit_code == 0, result.output
    (run_dir,) = (in_tmp / "runs").iterdir()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(row["val_acc1"] for row in rows) >= 0.95
    assert "done: best val_acc1" in result.output and str(run_dir.name) in result.output
    assert json.loads((run_dir / "summary.json").read_text())["best_value"] >= 0.95


def test_saved_config_runs_again_and_repeats(in_tmp):
    args = ("--epochs", "1", "--limit-train-batches", "5", "--seed", "3")
    assert cv("train", *args, "--run-dir", "first").exit_code == 0
    result = cv("train", "-c", "first/config.toml", "--run-dir", "second")
    assert result.exit_code == 0, result.output
    first, second = ((in_tmp / d / "metrics.jsonl").read_text() for d in ("first", "second"))
    drop = lambda text: {k: v for k, v in json.loads(text).items() if k not in ("seconds", "images_per_second")}  # noqa: E731
    assert drop(first) == drop(second)


def test_print_config_shows_precedence(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('[trainer]\nepochs = 3\nbatch_size = 16\n[dataset]\nname = "digits"\n[model]\nname = "mlp"\n'
                      '[optimizer]\nname = "sgd"\nlr = 0.5\nmomentum = 0.8\n')
    result = cv("train", "-c", str(config), "--epochs", "4", "--set", "optimizer.momentum=0.9",
                "--scheduler", "warmup", "--scheduler", "multistep", "--set", "scheduler.multistep.milestones=[2, 3]",
                "--print-config")
    assert result.exit_code == 0, result.output
    resolved = tomllib.loads(result.output)
    assert resolved["trainer"] == {"epochs": 4, "batch_size": 16}
    assert resolved["optimizer"] == {"name": "sgd", "lr": 0.5, "momentum": 0.9}
    assert resolved["scheduler"] == {"name": ["warmup", "multistep"], "multistep": {"milestones": [2, 3]}}
    assert resolved["loss"] == {"name": "losses:cross_entropy"}


def test_dry_run_reports_providers_parameters_and_one_batch():
    result = cv("train", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dataset   digits" in result.output and "<- datasets (cvcore" in result.output
    assert "parameters" in result.output and "backward ok on cpu" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "lenett"], "Unknown model 'lenett'. Did you mean 'lenet'"),
    (["--set", "optimizer.momentun=0.9", "--optimizer", "sgd"], "Unknown option 'momentun' for optimizer 'sgd'. Did you mean 'momentum'?"),
    (["--set", "trainer.epoch=3"], "Unknown option 'epoch' for [trainer]. Did you mean 'epochs'?"),
    (["--set", "optimzer.lr=1"], "Unknown section [optimzer] in --set. Did you mean 'optimizer'?"),
    (["--set", "lr"], "--set expects SECTION.OPTION=VALUE"),
    (["--set", "optimizer.lr=fast"], "Option 'lr' of optimizer 'optim:adam' must be float, got 'fast'"),
    (["-c", "missing.toml"], "Configuration file 'missing.toml' does not exist."),
    (["--set", "model.num_classes=5"], "model 'lenet' is set to num_classes=5, but data set 'digits' needs num_classes=10"),
    (["--model", "tv/alexnet"], "model 'tv/alexnet' cannot take inputs of shape (2, 1, 32, 32)"),
    (["--dataset", "cifar10", "--data-dir", "nowhere"], "expected nowhere/cifar-10-batches-py/data_batch_1..5"),
    (["--scheduler", "warmup", "--set", "scheduler.cosine.min_lr=0"], "[scheduler] has options for 'cosine', which is not in its name list ['warmup']"),
    (["--device", "tpu"], "Unknown device 'tpu'"),
])
def test_bad_input_is_one_clear_message(in_tmp, args, message):
    result = cv("train", *args, "--epochs", "1", "--limit-train-batches", "1")
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[trainer\nepochs = 1")
    result = cv("train", "-c", str(bad))
    assert result.exit_code == 1 and f"'{bad}' is not valid TOML" in result.output


def test_existing_run_is_never_overwritten(in_tmp):
    assert cv("train", "--epochs", "1", "--limit-train-batches", "1", "--run-dir", "r").exit_code == 0
    before = (in_tmp / "r" / "metrics.jsonl").read_text()
    result = cv("train", "--epochs", "1", "--run-dir", "r")
    assert result.exit_code == 1 and "already holds a run" in result.output
    assert (in_tmp / "r" / "metrics.jsonl").read_text() == before
