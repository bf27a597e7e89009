"""Signals and non-finite losses: the run stops cleanly and the checkpoints on disk stay good."""

import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from cvcore import checkpoint as ckpt
from cvcore.cli import cli
from cvcore.testing import plugin_registered
from plugins_for_tests import plugin


def start_long_run(run_dir):
    return subprocess.Popen([sys.executable, "-m", "cvcore.cli", "train", "--epochs", "500", "--device", "cpu",
                             "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.mark.parametrize(("signals", "code", "gap"), [
    ([signal.SIGINT], 130, 0), ([signal.SIGTERM], 143, 0),
    ([signal.SIGINT, signal.SIGINT], 130, 0.002), ([signal.SIGINT, signal.SIGINT], 130, 0.2)])
def test_signal_finishes_the_step_saves_and_exits(tmp_path, signals, code, gap):
    process = start_long_run(tmp_path / "run")
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    wait_for(last, process)
    for sig in signals:  # a second Ctrl-C while saving must not corrupt the save
        process.send_signal(sig)
        time.sleep(gap)
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert "Interrupted by SIG" in err and "cv train --resume" in err
    saved = ckpt.load(last)
    assert saved.document["interrupted"] is True
    assert saved.state()["global_step"] > 0


def make_nan_loss(*, after: int = 60):
    """Cross-entropy that turns NaN after a number of calls."""
    import torch

    calls = [0]

    def loss(logits, target):
        calls[0] += 1
        value = torch.nn.functional.cross_entropy(logits, target)
        return value * float("nan") if calls[0] > after else value

    return loss


def test_non_finite_loss_stops_within_one_step_and_keeps_the_last_checkpoint(in_tmp):
    def register_losses(register):
        register("nan_later", make_nan_loss)

    with plugin_registered(plugin(register_losses=register_losses), name="faulty"):
        result = CliRunner().invoke(cli, ["train", "--loss", "nan_later", "--epochs", "3", "--run-dir", "r"])
    assert result.exit_code == 1
    # Epoch 1 calls the loss 45 times in training and 12 in validation: call 61 is batch 4 of epoch 2.
    assert "The loss became NaN or infinite at epoch 2, batch 4;" in result.output
    saved = ckpt.load(in_tmp / "r" / "checkpoints" / "last.safetensors")
    assert saved.document["epoch"] == 1
    weights = saved.model_weights()
    assert all(bool(value.isfinite().all()) for value in weights.values())


def test_stale_temporary_files_are_cleaned_at_the_next_run(in_tmp):
    folder = in_tmp / "r" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / ".last.safetensors.tmp-999").write_bytes(b"half a save")
    assert CliRunner().invoke(cli, ["train", "--epochs", "1", "--limit-train-batches", "1", "--run-dir", "r"]).exit_code == 0
    assert not list(folder.glob(".*tmp*"))
