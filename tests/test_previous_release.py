"""The previous release's example plugin (cvcore 0.1, frozen in tests/previous_release: written from
that release's CONTRIBUTING.md) installed with pip: it must keep training against every later
commit, with deprecation warnings where it uses an old form."""

import subprocess
from pathlib import Path

import pytest
from venvs import make_venv, run_cv

PREVIOUS = Path(__file__).resolve().parent / "previous_release" / "example-plugin-544277b"


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    return make_venv(tmp_path_factory.mktemp("venv"), PREVIOUS)


def test_its_own_test_suite_passes(venv):
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          capture_output=True, text=True, cwd=PREVIOUS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CvcoreDeprecationWarning: TensorImages(images, targets, mean, std) is deprecated" in done.stdout


def test_it_trains_from_the_command_line_with_its_flips_and_a_warning(venv, tmp_path):
    done = run_cv(venv, "train", "--dataset", "stripes", "--model", "tiny_cnn", "--loss", "focal_ce",
                  "--optimizer", "signsgd", "--scheduler", "halving", "--callback", "epoch_timer", "--epochs", "2",
                  "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert "will be removed in cvcore 0.3.0" in done.stderr
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    config = (tmp_path / "run" / "config.toml").read_text()
    assert 'name = ["transforms:flip"]' in config  # what its TensorImages(flip=True) asked for
