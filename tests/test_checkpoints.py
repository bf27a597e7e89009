"""Checkpoints and resume: exact continuation, refusal of a different model, atomic writes, no pickles."""

import json
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from click.testing import CliRunner

from cvcore import checkpoint as ckpt
from cvcore.cli import cli

RECIPE = ["--optimizer", "sgd", "--lr", "0.05", "--set", "optimizer.momentum=0.9", "--scheduler", "warmup",
          "--scheduler", "step", "--set", "scheduler.step.step_size=1", "--set", "scheduler.step.gamma=0.5",
          "--seed", "5", "--limit-train-batches", "8"]


def cv(*args):
    return CliRunner().invoke(cli, list(args))


def rows(run_dir):
    drop = ("seconds", "images_per_second")
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resumed_run_ends_exactly_like_an_uninterrupted_one(in_tmp):
    assert cv("train", *RECIPE, "--epochs", "4", "--run-dir", "full").exit_code == 0
    assert cv("train", *RECIPE, "--epochs", "2", "--run-dir", "half").exit_code == 0
    result = cv("train", "--resume", "half", "--epochs", "4")
    assert result.exit_code == 0, result.output
    assert rows(in_tmp / "half") == rows(in_tmp / "full")
    full, half = (ckpt.load(in_tmp / d / "checkpoints" / "last.safetensors") for d in ("full", "half"))
    for key, value in full.model_weights().items():
        assert torch.equal(value, half.model_weights()[key]), key
    assert full.state()["optimizer"]["param_groups"][0]["lr"] == half.state()["optimizer"]["param_groups"][0]["lr"]


def test_checkpoint_carries_config_classes_and_providers(in_tmp):
    assert cv("train", "--epochs", "1", "--limit-train-batches", "2", "--run-dir", "r").exit_code == 0
    document = ckpt.load(in_tmp / "r" / "checkpoints" / "best.safetensors").document
    assert document["config"]["model"]["name"] == "lenet"
    assert document["info"]["class_names"] == [str(d) for d in range(10)]
    assert document["providers"]["model/models:lenet"].startswith("cvcore ")


def test_resume_refuses_a_different_model(in_tmp):
    assert cv("train", "--epochs", "1", "--limit-train-batches", "2", "--run-dir", "r").exit_code == 0
    result = cv("train", "--resume", "r", "--model", "mlp")
    assert result.exit_code == 1
    assert "Cannot resume" in result.output and "holds model 'lenet' for 10 classes, this run builds 'mlp'" in result.output


def test_resume_warns_when_a_plugin_version_changed(in_tmp):
    assert cv("train", "--epochs", "1", "--limit-train-batches", "2", "--run-dir", "r").exit_code == 0
    path = in_tmp / "r" / "checkpoints" / "last.safetensors"
    saved = ckpt.load(path)
    document = {k: v for k, v in saved.document.items() if k not in ("state", "format")}
    document["providers"]["model/models:lenet"] = "cvcore 0.0.1"
    ckpt.save(path, saved.state(), **document)
    result = cv("train", "--resume", "r", "--epochs", "2", "--limit-train-batches", "2")
    assert result.exit_code == 0, result.output
    assert "warning: model/models:lenet was provided by cvcore 0.0.1 when saved" in result.output


class Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').touch()",))


@pytest.mark.parametrize("name", ["evil.pt", "evil.safetensors"])
@pytest.mark.parametrize("command", [["eval"], ["export"], ["train", "--resume"]])
def test_pickle_offered_as_checkpoint_is_refused_unrun(in_tmp, name, command):
    (in_tmp / name).write_bytes(pickle.dumps({"model": Payload()}))
    result = cv(*command, name)
    assert result.exit_code == 1
    assert "is not a safetensors checkpoint" in result.output and "never unpickles" in result.output
    assert not (in_tmp / "PWNED").exists()


SAVER = textwrap.dedent("""
    import sys, torch
    from cvcore import checkpoint as ckpt
    target = sys.argv[1]
    step = 0
    while True:
        step += 1
        state = {"weights": torch.full((4_000_000,), float(step)), "step": step}
        ckpt.save(target, state, step=step)
        print(step, flush=True)
""")


def test_kill_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    target = tmp_path / "last.safetensors"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    rng = random.Random(0)
    for _ in range(15):
        process = subprocess.Popen([sys.executable, str(script), str(target)], stdout=subprocess.PIPE, text=True)
        process.stdout.readline()  # one complete save exists
        time.sleep(rng.uniform(0.0, 0.3))  # then die at a random point, most likely mid-save
        process.send_signal(signal.SIGKILL)
        process.wait()
        loaded = ckpt.load(target)
        state = loaded.state()
        assert torch.all(state["weights"] == state["step"]) and loaded.document["step"] == state["step"]


def test_best_survives_replacement_of_last(tmp_path):
    last, best = tmp_path / "last.safetensors", tmp_path / "best.safetensors"
    ckpt.save(last, {"w": torch.ones(3)})
    ckpt.link_atomically(last, best)
    ckpt.save(last, {"w": torch.zeros(3)})
    assert torch.equal(ckpt.load(best).state()["w"], torch.ones(3))
    assert torch.equal(ckpt.load(last).state()["w"], torch.zeros(3))


def test_state_round_trip_keeps_types():
    import numpy

    state = {"t": (1, 2.5, None), "d": {3: "x"}, "a": numpy.arange(4, dtype=numpy.uint32), "x": torch.eye(2)}
    tensors = {}
    back = ckpt.unflatten(json.loads(json.dumps(ckpt.flatten(state, tensors))), tensors)
    assert back["t"] == (1, 2.5, None) and back["d"] == {3: "x"}
    assert back["a"].dtype == numpy.uint32 and back["a"].tolist() == [0, 1, 2, 3]
    assert torch.equal(back["x"], torch.eye(2))
