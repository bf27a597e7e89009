"""Two processes on CPU with gloo, launched by torchrun exactly as users launch multi-GPU runs."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path):
    run_dir = tmp_path / "ddp"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "cvcore.cli", "train", "--epochs", "2", "--device", "cpu", "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]  # written once, by rank 0
    assert done.stdout.count("epoch 2/2") == 1  # printed once
    assert rows[-1]["val_acc1"] > 0.8  # metrics all-reduced over both halves of the data
    assert list(tmp_path.glob("runs")) == []  # rank 1 created no run directory of its own
