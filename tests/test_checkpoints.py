"""Checkpoints and resume: exact continuation, refusal of a different model, atomic writes, no pickles."""

import errno
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import cvcore
from cvcore import checkpoint as ckpt
from cvcore.commands.cli import cli
from fixtures import Payload

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
    assert document["config"]["model"]["name"] == "models:lenet"
    assert document["info"]["class_names"] == [str(d) for d in range(10)]
    assert document["providers"]["model/models:lenet"].startswith("cvcore ")


def test_resume_refuses_a_different_model(in_tmp):
    assert cv("train", "--epochs", "1", "--limit-train-batches", "2", "--run-dir", "r").exit_code == 0
    result = cv("train", "--resume", "r", "--model", "mlp")
    assert result.exit_code == 1
    assert "Cannot resume" in result.output and "holds model 'models:lenet' for 10 classes, this run builds 'models:mlp'" in result.output


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


@pytest.mark.parametrize("name", ["evil.pt", "evil.safetensors"])
@pytest.mark.parametrize("command", [["eval"], ["export"], ["train", "--resume"]])
def test_pickle_offered_as_checkpoint_is_refused_unrun(in_tmp, name, command):
    (in_tmp / name).write_bytes(pickle.dumps({"model": Payload()}))
    result = cv(*command, name)
    assert result.exit_code == 1
    assert "is not a safetensors checkpoint" in result.output and "never unpickles" in result.output
    assert not (in_tmp / "PWNED").exists()


KILLS = 15
# Imports torch once, then for each kill forks a child that saves ever larger steps until killed
# at a random moment (most likely mid-save); it says "killed" and waits for the test's check. The
# parent runs no tensor operation, so forking it is safe.
SAVER = textwrap.dedent(f"""
    import os, random, signal, sys, time, torch
    from cvcore import checkpoint as ckpt
    target, rng = sys.argv[1], random.Random(0)
    for _ in range({KILLS}):
        saved, told = os.pipe()
        child = os.fork()
        if child == 0:
            step = 0
            while True:
                step += 1
                ckpt.save(target, {{"weights": torch.full((4_000_000,), float(step)), "step": step}}, step=step)
                os.write(told, b"s")
        os.read(saved, 1)  # one complete save exists
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        print("killed", flush=True)
        sys.stdin.readline()
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked savers")
def test_kill_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    target = tmp_path / "last.safetensors"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    process = subprocess.Popen([sys.executable, str(script), str(target)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    for _ in range(KILLS):
        assert process.stdout.readline() == "killed\n"
        loaded = ckpt.load(target)
        state = loaded.state()
        assert torch.all(state["weights"] == state["step"]) and loaded.document["step"] == state["step"]
        process.stdin.write("checked\n")
        process.stdin.flush()
    assert process.wait(timeout=60) == 0


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


LAUNCH = [sys.executable, str(Path(__file__).with_name("launch_cv.py")), "train", "--device", "cpu"]


def launch(tmp_path, *args):
    return subprocess.run([*LAUNCH, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PROBE_DIR": str(tmp_path)})


def test_run_interrupted_mid_epoch_resumes_into_the_same_run(tmp_path):
    # 8 steps per epoch; the signal comes after step 11, in the middle of epoch 2.
    assert launch(tmp_path, *RECIPE, "--epochs", "3", "--run-dir", "full").returncode == 0
    stopped = launch(tmp_path, *RECIPE, "--epochs", "3", "--run-dir", "cut", "--callback", "interrupt_at",
                     "--set", "callbacks.interrupt_at.step=11")
    assert stopped.returncode == 130, stopped.stderr
    saved = ckpt.load(tmp_path / "cut" / "checkpoints" / "last.safetensors").state()
    assert (saved["epoch"], saved["global_step"]) == (1, 8)  # the completed epoch, not 11 steps' updates
    resumed = launch(tmp_path, "--resume", "cut")
    assert resumed.returncode == 0, resumed.stderr
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")
    full, cut = (ckpt.load(tmp_path / d / "checkpoints" / "last.safetensors") for d in ("full", "cut"))
    assert full.state()["global_step"] == cut.state()["global_step"] == 24
    assert all(torch.equal(value, cut.model_weights()[key]) for key, value in full.model_weights().items())


def test_resume_with_loader_workers_is_exact(in_tmp):
    # The DataLoader path with 2 persistent workers and random crops/flips drawn in the workers.
    recipe = [*RECIPE, "--workers", "2", "--set", "trainer.tensor_loader=false", "--dataset", "ids", "--model",
              "id_recorder", "--set", "dataset.crop_padding=1", "--set", "dataset.flip=true"]
    assert launch(in_tmp, *recipe, "--epochs", "4", "--run-dir", "full").returncode == 0
    assert launch(in_tmp, *recipe, "--epochs", "2", "--run-dir", "half").returncode == 0
    assert launch(in_tmp, "--resume", "half", "--epochs", "4").returncode == 0
    assert rows(in_tmp / "half") == rows(in_tmp / "full")
    full, half = (ckpt.load(in_tmp / d / "checkpoints" / "last.safetensors").model_weights() for d in ("full", "half"))
    assert all(torch.equal(full[key], half[key]) for key in full)


def test_checkpoint_holds_early_stopping_state_of_its_epoch_and_a_stopped_run_stays_stopped(in_tmp):
    # min_delta 100: the first epoch improves on infinity, the second cannot improve; patience 1 stops it.
    stop = ["--callback", "early_stopping", "--set", "callbacks.early_stopping.min_delta=100",
            "--set", "callbacks.early_stopping.patience=1", "--limit-train-batches", "2"]
    assert cv("train", *stop, "--epochs", "5", "--run-dir", "r").exit_code == 0
    saved = ckpt.load(in_tmp / "r" / "checkpoints" / "last.safetensors").state()
    assert saved["epoch"] == 2 and "early stopping" in saved["stop_reason"]
    assert saved["callbacks"]["cvcore_callbacks.stopping.EarlyStopping"] == {"best": pytest.approx(rows(in_tmp / "r")[0]["val_loss"]), "best_epoch": 1,
                                     "waited": 1}
    result = cv("train", "--resume", "r", "--epochs", "6")
    assert result.exit_code == 0, result.output
    assert len(rows(in_tmp / "r")) == 2 and "early stopping" in result.output


def test_extending_a_finished_cosine_run_restarts_its_schedule_over_the_added_epochs(in_tmp):
    base = ["--limit-train-batches", "2", "--optimizer", "sgd", "--lr", "0.1", "--scheduler", "cosine"]
    assert cv("train", *base, "--epochs", "4", "--run-dir", "r").exit_code == 0
    finished = ckpt.load(in_tmp / "r" / "checkpoints" / "last.safetensors").model_weights()
    result = cv("train", "--resume", "r", "--epochs", "7")
    assert result.exit_code == 0, result.output
    assert "restarts over the added epochs from 0.1 x the base rate" in result.output
    lrs = [row["lr"] for row in rows(in_tmp / "r")]
    assert lrs[4:] == pytest.approx([0.01, 0.0075, 0.0025], abs=1e-9)  # a cosine over 3 epochs from 0.01
    extended = ckpt.load(in_tmp / "r" / "checkpoints" / "last.safetensors")
    assert not all(torch.equal(extended.model_weights()[k], v) for k, v in finished.items())  # it trained
    assert extended.document["config"]["trainer"]["schedule_start"] == 4  # recorded: a resume is the same run
    # Resumed from epoch 2 of 4 (lr 0.05) and extended to 8, the cosine stretches to the new end.
    assert cv("train", *base, "--epochs", "4", "--run-dir", "t", "--set", "callbacks.checkpoint.keep_last=4").exit_code == 0
    assert cv("train", "--resume", "t/checkpoints/epoch-0002.safetensors", "--epochs", "8").exit_code == 0
    stretched = [row["lr"] for row in rows(in_tmp / "t")]
    assert stretched[:3] == pytest.approx([0.1, 0.085355, 0.05], abs=1e-6)
    assert all(later < earlier for earlier, later in zip(stretched, stretched[1:])), stretched
    final = ckpt.load(in_tmp / "t" / "checkpoints" / "last.safetensors").state()["optimizer"]["param_groups"][0]
    assert final["lr"] == pytest.approx(0.0, abs=1e-12)


def test_the_readme_extend_example_trains_the_default_job_further(in_tmp):
    assert cv("train", "--epochs", "3", "--limit-train-batches", "4", "--run-dir", "r").exit_code == 0
    assert cv("train", "--resume", "r", "--epochs", "5").exit_code == 0
    logged = rows(in_tmp / "r")
    assert all(row["lr"] > 0 for row in logged[3:]) and logged[3]["train_loss"] != logged[4]["train_loss"]


def test_plus_n_epochs_extends_a_run_by_n_as_the_absolute_number_does(in_tmp):
    for run in ("plus", "absolute"):
        assert cv("train", "--epochs", "2", "--limit-train-batches", "3", "--run-dir", run).exit_code == 0
    added = cv("train", "--resume", "plus", "--epochs", "+3")
    assert added.exit_code == 0, added.output
    assert cv("train", "--resume", "absolute", "--epochs", "5").exit_code == 0
    assert rows(in_tmp / "plus") == rows(in_tmp / "absolute") and len(rows(in_tmp / "plus")) == 5
    assert ckpt.load(in_tmp / "plus" / "checkpoints" / "last.safetensors").document["config"]["trainer"]["epochs"] == 5
    again = cv("train", "--resume", "plus", "--epochs", "+1")  # relative to what it has done now: 6
    assert again.exit_code == 0 and len(rows(in_tmp / "plus")) == 6


@pytest.mark.parametrize("args, message", [
    (["--epochs", "+2"], "--epochs +2 adds epochs to a run: give it with --resume RUN"),
    (["--resume", "r", "--epochs", "+0"], "'+0' is not a number of epochs (N) or epochs to add to a resumed run (+N, N"),
    (["--resume", "r", "--epochs", "+x"], "'+x' is not a number of epochs"),
])
def test_relative_epochs_need_a_resumed_run_and_a_positive_count(in_tmp, args, message):
    assert cv("train", "--epochs", "1", "--limit-train-batches", "2", "--run-dir", "r").exit_code == 0
    result = cv("train", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(rows(in_tmp / "r")) == 1


def test_a_run_with_ema_resumes_exactly_and_cv_eval_measures_the_average(in_tmp):
    averaged = ["--ema", "0.9", "--limit-train-batches", "3", "--scheduler", "step"]
    assert cv("train", *averaged, "--epochs", "4", "--run-dir", "full").exit_code == 0
    assert cv("train", *averaged, "--epochs", "2", "--run-dir", "half").exit_code == 0
    assert cv("train", "--resume", "half", "--epochs", "4").exit_code == 0
    assert rows(in_tmp / "half") == rows(in_tmp / "full")
    full, half = (ckpt.load(in_tmp / d / "checkpoints" / "last.safetensors") for d in ("full", "half"))
    assert all(torch.equal(full.state()["ema"]["weights"][k], v) for k, v in half.state()["ema"]["weights"].items())
    evaluated = cv("eval", "full", "--checkpoint", "last", "--json")
    assert "holds the average of the weights" in evaluated.output
    text = evaluated.output  # the note goes to stderr, which the runner gives after the JSON
    metrics = json.loads(text[text.index("{"):text.rindex("}") + 1])["metrics"]
    assert metrics["val_loss"] == pytest.approx(rows(in_tmp / "full")[-1]["val_loss"], abs=1e-6)


def test_fewer_epochs_than_already_run_are_refused_and_change_nothing(in_tmp):
    assert cv("train", "--epochs", "2", "--limit-train-batches", "2", "--run-dir", "r").exit_code == 0
    before = {p.name: p.read_bytes() for p in (in_tmp / "r").iterdir() if p.is_file()}
    result = cv("train", "--resume", "r", "--epochs", "1")
    assert result.exit_code == 1 and "has already run 2 epochs; --epochs 1 would undo them" in result.output
    assert {p.name: p.read_bytes() for p in (in_tmp / "r").iterdir() if p.is_file()} == before


def test_optimizer_options_changed_on_resume_take_effect(in_tmp):
    assert cv("train", *RECIPE, "--epochs", "2", "--run-dir", "r").exit_code == 0
    saved = ckpt.load(in_tmp / "r" / "checkpoints" / "last.safetensors").state()["optimizer"]["param_groups"][0]
    result = cv("train", "--resume", "r", "--epochs", "3", "--lr", "0.2", "--set", "optimizer.weight_decay=0.01")
    assert result.exit_code == 0, result.output
    assert "lr 0.05 -> 0.2" in result.output and "weight_decay 0.0 -> 0.01" in result.output
    # The step schedule's factor at epoch 3 is kept: the learning rate is 4x the saved one.
    assert rows(in_tmp / "r")[2]["lr"] == pytest.approx(saved["lr"] * 4)
    group = ckpt.load(in_tmp / "r" / "checkpoints" / "last.safetensors").state()["optimizer"]["param_groups"][0]
    assert group["weight_decay"] == 0.01 and group["initial_lr"] == 0.2


def test_scheduler_options_changed_on_resume_take_effect(in_tmp):
    assert cv("train", *RECIPE, "--epochs", "2", "--run-dir", "r").exit_code == 0
    result = cv("train", "--resume", "r", "--epochs", "4", "--set", "scheduler.step.gamma=0.1")
    assert result.exit_code == 0, result.output
    lrs = [row["lr"] for row in rows(in_tmp / "r")]
    assert lrs[3] == pytest.approx(lrs[2] * 0.1)  # the new gamma at the next step, not the saved 0.5


def test_another_optimizer_or_schedule_on_resume_is_refused_before_anything_changes(in_tmp):
    assert cv("train", *RECIPE, "--epochs", "2", "--run-dir", "r").exit_code == 0
    config = (in_tmp / "r" / "config.toml").read_text()
    for change in (["--optimizer", "adam"], ["--scheduler", "cosine"]):
        result = cv("train", "--resume", "r", "--epochs", "3", *change)
        assert result.exit_code == 1 and "it was saved with" in result.output, result.output
        assert (in_tmp / "r" / "config.toml").read_text() == config and len(rows(in_tmp / "r")) == 2


@pytest.mark.parametrize("change", [["--callback", "csv"], ["--set", "callbacks.name=[]"],
                                    ["--set", 'callbacks.name=["checkpoint"]']])
def test_callbacks_may_be_added_or_removed_on_resume(in_tmp, change):
    assert cv("train", "--epochs", "2", "--limit-train-batches", "2", "--callback", "early_stopping",
              "--run-dir", "r").exit_code == 0
    result = cv("train", "--resume", "r", "--epochs", "3", *change)
    assert result.exit_code == 0, result.output
    assert len(rows(in_tmp / "r")) == 3


def test_a_run_with_a_fresh_seed_keeps_it_when_resumed(in_tmp):
    loader = ["--seed", "none", "--no-tensor-loader", "--limit-train-batches", "3", "--transform", "flip",
              "--set", "scheduler.name=[]"]
    assert cv("train", *loader, "--epochs", "1", "--run-dir", "r").exit_code == 0
    seed = json.loads((in_tmp / "r" / "summary.json").read_text())["seed"]
    assert cv("train", "--resume", "r", "--epochs", "2").exit_code == 0
    assert json.loads((in_tmp / "r" / "summary.json").read_text())["seed"] == seed
    assert cv("train", *loader[2:], "--seed", str(seed), "--epochs", "2", "--run-dir", "straight").exit_code == 0
    assert rows(in_tmp / "r") == rows(in_tmp / "straight")


def test_resuming_from_best_keeps_best_the_best_epochs_weights(in_tmp):
    # lr 0 after epoch 1: every later epoch equals it, so epoch 1 stays best and later ones do not improve.
    base = ["--limit-train-batches", "2", "--optimizer", "sgd", "--lr", "0.1", "--scheduler", "step",
            "--set", "scheduler.step.step_size=1", "--set", "scheduler.step.gamma=0.0"]
    assert cv("train", *base, "--epochs", "3", "--run-dir", "r").exit_code == 0
    folder = in_tmp / "r" / "checkpoints"
    assert ckpt.load(folder / "best.safetensors").document["epoch"] == 1
    assert cv("train", "--resume", str(folder / "best.safetensors"), "--epochs", "3").exit_code == 0
    assert ckpt.load(folder / "best.safetensors").document["epoch"] == 1
    assert json.loads((in_tmp / "r" / "summary.json").read_text())["best_epoch"] == 1


def test_kill_between_last_and_best_is_repaired_when_resumed(in_tmp, monkeypatch):
    original = ckpt.link_atomically

    def killed(source, target):
        raise SystemExit("killed after saving last, before linking best")

    monkeypatch.setattr(ckpt, "link_atomically", killed)
    cv("train", "--epochs", "1", "--limit-train-batches", "2", "--run-dir", "r")
    folder = in_tmp / "r" / "checkpoints"
    assert (folder / "last.safetensors").exists() and not (folder / "best.safetensors").exists()
    monkeypatch.setattr(ckpt, "link_atomically", original)
    assert cv("train", "--resume", "r").exit_code == 0
    assert ckpt.load(folder / "best.safetensors").document["epoch"] == 1


def test_full_disk_is_a_clear_error_and_leaves_no_partial_file(in_tmp, monkeypatch):
    fsync = os.fsync

    def no_space(fd):  # the disk fills up as the first checkpoint is written
        if ".safetensors.tmp-" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", no_space)
    result = cv("train", "--epochs", "1", "--limit-train-batches", "1", "--run-dir", "r")
    assert result.exit_code == 1
    assert "Could not write" in result.output and "No space left on device" in result.output
    assert list((in_tmp / "r" / "checkpoints").iterdir()) == []


def test_resume_from_a_file_outside_a_run_directory_is_refused_and_writes_nothing(in_tmp):
    assert cv("train", "--epochs", "1", "--limit-train-batches", "1", "--run-dir", "r").exit_code == 0
    (in_tmp / "elsewhere" / "sub").mkdir(parents=True)
    (in_tmp / "elsewhere" / "metrics.jsonl").write_text("precious\n")
    copy = in_tmp / "elsewhere" / "sub" / "model.safetensors"
    copy.write_bytes((in_tmp / "r" / "checkpoints" / "last.safetensors").read_bytes())
    result = cv("train", "--resume", str(copy))
    assert result.exit_code == 1 and "is not inside a run directory" in result.output
    assert (in_tmp / "elsewhere" / "metrics.jsonl").read_text() == "precious\n"


@pytest.mark.parametrize("absolute", [False, True])
def test_checkpoint_folder_stays_inside_the_run_directory(in_tmp, absolute):
    folder = str(in_tmp / "outside") if absolute else "../outside"  # both name in_tmp/outside
    result = cv("train", "--set", f"callbacks.checkpoint.folder={folder}", "--run-dir", "r")
    assert result.exit_code == 1 and "folder must be a relative path inside the run directory" in result.output
    assert not (in_tmp / "outside").exists()


def test_checkpoints_are_self_contained_without_the_start_weights(in_tmp):
    from safetensors.torch import save_file

    from fixtures import write_image_folder

    write_image_folder(in_tmp / "data")
    start = cvcore.create("model", "tv/resnet18", num_classes=2)
    save_file(start.state_dict(), "start.safetensors")
    small = ["--dataset", "imagefolder", "--data-dir", "data", "--set", "dataset.image_size=32",
             "--set", "dataset.resize=36", "--model", "tv/resnet18", "--batch-size", "2"]
    assert cv("train", *small, "--set", "model.weights=start.safetensors", "--epochs", "1", "--run-dir", "r").exit_code == 0
    Path("start.safetensors").unlink()
    image = str(in_tmp / "data" / "val" / "ants" / "0.jpg")
    for command in (["eval", "r"], ["export", "r", "--format", "safetensors"], ["predict", "r", image],
                    ["train", "--resume", "r", "--epochs", "2"]):
        result = cv(*command)
        assert result.exit_code == 0, (command, result.output)
