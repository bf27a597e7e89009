"""The example plugin installed for real with pip (no network) into a throwaway virtual environment."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from venvs import make_venv, run_cv

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cvcore-example-plugin"


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    return make_venv(tmp_path_factory.mktemp("venv"), EXAMPLE)


def cv_in(venv, *args, check=False, env=None):
    done = run_cv(venv, *args, env=env)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_installed_plugin_is_listed_with_its_provider(venv):
    done = cv_in(venv, "list", "--json", check=True)
    mine = [e for e in json.loads(done.stdout)["components"] if e["plugin"] == "example"]
    assert {e["kind"] for e in mine} == {"dataset", "model", "loss", "optimizer", "scheduler", "callback", "task"}
    assert {(e["distribution"], e["version"]) for e in mine} == {("cvcore-example-plugin", "0.1.0")}
    table = cv_in(venv, "list", "model", check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "example (cvcore-example-plugin 0.1.0)" in table


def test_installed_plugin_components_are_created_through_cvcore(venv):
    code = ("import cvcore\n"
            "model = cvcore.create('model', 'tiny_cnn', num_classes=3)\n"
            "opt = cvcore.create('optimizer', 'example:signsgd', model.parameters(), lr=0.1)\n"
            "print(type(model).__name__, model[-1].out_features, type(opt).__name__)")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["Sequential", "3", "SignSGD"]


def test_installed_plugin_trains_from_the_command_line(venv, tmp_path):
    done = cv_in(venv, "train", "--dataset", "stripes", "--model", "tiny_cnn", "--loss", "focal_ce",
                 "--optimizer", "signsgd", "--scheduler", "halving", "--callback", "epoch_timer", "--epochs", "2",
                 "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_example_plugin_own_test_suite_passes(venv):
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(EXAMPLE / "tests")], capture_output=True, text=True, cwd=EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("model", ["lenet", "resnet18", "tv/resnet18"])
def test_its_regression_task_trains_with_built_in_models_and_its_suggested_loss(venv, tmp_path, model):
    """The task needs a vector per image: every built-in classifier gives one, sized by the task."""
    done = cv_in(venv, "train", "--dataset", "stripe_period", "--model", model, "--epochs", "1",
                 "--set", "dataset.size=64", "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert "val_mae" in row and "val_acc1" not in row
    config = (tmp_path / "run" / "config.toml").read_text()
    assert 'name = "example:huber"' in config  # the task's suggested loss, recorded for a resume
