"""Inputs a new user gets wrong: each is one clear message and exit status 1 (2 for click's usage
errors), never a traceback, and nothing is left behind."""

import os

import pytest
from click.testing import CliRunner
from fixtures import write_idx_gz, write_image_folder
from PIL import Image

from cvcore import checkpoint as ckpt
from cvcore.commands.cli import cli

QUICK = ["--epochs", "1", "--limit-train-batches", "2", "--limit-val-batches", "1"]


def cv(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env)


def refused(result, *fragments, code=1):
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for fragment in fragments:
        assert fragment in result.output, result.output
    return result.output


@pytest.fixture
def run_dir(in_tmp):
    assert cv("train", *QUICK, "--run-dir", "run").exit_code == 0
    return in_tmp / "run"


@pytest.mark.parametrize(("args", "fragments"), [
    (["--epochs", "-1"], ["epochs must be >= 1, got -1"]),
    (["--epochs", "0"], ["epochs must be >= 1, got 0"]),
    (["--batch-size", "0"], ["batch_size must be >= 1 or auto, got 0"]),
    (["--workers", "-1"], ["workers must be >= 0, got -1"]),
    (["--set", "trainer.accumulate=0"], ["accumulate must be >= 1, got 0"]),
    (["--set", "trainer.clip_norm=0.0"], ["clip_norm must be > 0, got 0.0"]),
    (["--lr", "-0.1"], ["optimizer 'optim:adam'", "Invalid learning rate: -0.1"]),
    (["--run-dir", "/proc/cvcore-cannot-be-here"], ["Cannot create run directory '/proc/cvcore-cannot-be-here'"]),
    (["--set", "trainer.monitor=val_accc"], ["[trainer] monitor is 'val_accc'", "'val_acc1'"]),
    (["--callback", "early_stopping", "--set", "callbacks.early_stopping.monitor=val_los"],
     ["callback 'early_stopping' monitor is 'val_los'", "Did you mean 'val_loss'"]),
    (["--model", "tv/vit_b_16", "--dry-run"], ["cannot take inputs of shape (2, 1, 32, 32)", "fixed input size"]),
    (["--scheduler", "step", "--set", "scheduler.step.step_size=0"],
     ["Option 'step_size' of scheduler 'step' must be at least 1, got 0."]),
    (["--scheduler", "warmup", "--set", "scheduler.warmup.epochs=-1"],
     ["Option 'epochs' of scheduler 'warmup' must be at least 0.01, got -1."]),
    (["--set", "callbacks.checkpoint.keep_last=-1"], ["Option 'keep_last' of callback", "checkpoint' must be at least 0, got -1."]),
    (["--callback", "early_stopping", "--set", "callbacks.early_stopping.patience=-1"],
     ["Option 'patience' of callback 'early_stopping' must be at least 0, got -1."]),
    (["--transform", "flip", "--set", "transforms.flip.p=1.5"],
     ["Option 'p' of transform 'flip' must be between 0.0 and 1.0, got 1.5."]),
    (["--set", "dataset.val_fraction=1"], ["Option 'val_fraction' of dataset", "between 0.001 and 0.999, got 1."]),
])
def test_bad_training_input_is_refused_and_leaves_no_run_directory(in_tmp, args, fragments):
    refused(cv("train", *QUICK, *args), *fragments)
    assert not (in_tmp / "runs").exists()


def test_a_misspelled_monitor_is_refused_before_any_data_is_read(in_tmp):
    result = cv("train", "--dataset", "mnist", "--data-dir", "nowhere", "--set", "trainer.monitor=val_accc")
    assert "val_accc" in refused(result) and "nowhere" not in result.output


@pytest.mark.parametrize(("args", "fragment"), [
    (["--transform", "random_resized_crop", "--set", "transforms.random_resized_crop.scale=[0.9, 0.1]"],
     "Option 'scale' of transform 'random_resized_crop' must be (low, high) with 0.0001 <= low <= high <= 1.0"),
    (["--transform", "mixup", "--set", "transforms.mixup.alpha=0"], "Option 'alpha' of transform 'mixup'"),
    (["--loss", "cross_entropy", "--set", "loss.label_smoothing=2"], "Option 'label_smoothing' of loss"),
    (["--scheduler", "step", "--set", "scheduler.step.gamma=-1"], "Option 'gamma' of scheduler 'step'"),
])
def test_option_ranges_are_refused_before_any_data_is_read(in_tmp, args, fragment):
    """Ranges are declared (cvcore.Between), so the plan checks them: the missing folder is never looked at."""
    result = cv("train", "--dataset", "imagefolder", "--data-dir", "nowhere", *args)
    assert fragment in refused(result) and "nowhere" not in result.output


@pytest.mark.parametrize(("args", "fragment"), [
    (["eval", "run", "--batch-size", "0"], "--batch-size"),
    (["predict", "run", "x.png", "--topk", "0"], "--topk"),
])
def test_bad_ranges_are_usage_errors(run_dir, args, fragment):
    refused(cv(*args), fragment, code=2)


def test_unknown_plugin_names_in_the_environment_are_named(in_tmp):
    listing = cv("list", env={"CVCORE_LOAD_PLUGINS": "nonexistent"})
    assert "CVCORE_LOAD_PLUGINS names 'nonexistent'" in listing.output
    training = refused(cv("train", env={"CVCORE_LOAD_PLUGINS": "nonexistent"}), "Unknown dataset")
    assert "CVCORE_LOAD_PLUGINS='nonexistent' loads only no plugin" in training
    assert "CVCORE_DISABLE_PLUGINS names 'bogus'" in cv("list", env={"CVCORE_DISABLE_PLUGINS": "bogus"}).output


def test_a_run_directory_in_use_is_refused_and_left_untouched(in_tmp):
    from cvcore.runs.rundir import RunDir

    (in_tmp / "busy").mkdir()
    claim = RunDir.claim({"trainer": {"run_dir": "busy"}})
    try:
        refused(cv("train", *QUICK, "--run-dir", "busy"), "is in use by another running `cv train`")
    finally:
        claim.release()
    assert list((in_tmp / "busy").iterdir()) == []
    assert cv("train", *QUICK, "--run-dir", "busy").exit_code == 0


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_its_config(in_tmp):
    (in_tmp / "early").mkdir()
    (in_tmp / "early" / "config.toml").write_text(cv("train", *QUICK, "--print-config").output)
    refused(cv("train", *QUICK, "--run-dir", "early"), "already holds a run", "cv train --resume early")
    result = cv("train", "--resume", "early")
    assert result.exit_code == 0, result.output
    assert ckpt.last_of(in_tmp / "early").is_file()


def test_commands_on_a_run_use_the_best_checkpoint_unless_told(run_dir):
    assert cv("export", "run", "--format", "safetensors").exit_code == 0
    assert (run_dir / "checkpoints" / "best.weights.safetensors").is_file()
    assert cv("export", "run", "--format", "safetensors", "--checkpoint", "last").exit_code == 0
    assert (run_dir / "checkpoints" / "last.weights.safetensors").is_file()


def test_an_opset_the_exporter_cannot_write_is_refused_or_honoured(run_dir):
    import onnx

    result = cv("export", "run", "--opset", "13")
    written = run_dir / "checkpoints" / "best.onnx"
    if result.exit_code == 0:
        assert {o.version for o in onnx.load(str(written)).opset_import if o.domain in ("", "ai.onnx")} == {13}
    else:
        refused(result, "could not write opset 13")
        assert not written.exists()


def test_an_export_prints_no_exporter_logs_or_tracebacks(run_dir):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cvcore.commands.cli", "export", str(run_dir), "--opset", "13"],
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr


def test_predict_names_an_unreadable_image_and_reads_folders(run_dir, in_tmp):
    folder = in_tmp / "pictures"
    folder.mkdir()
    for index in range(3):
        Image.new("L", (40, 40), color=index * 80).save(folder / f"{index}.png")
    result = cv("predict", "run", "pictures", "--json")
    assert result.exit_code == 0, result.output
    assert result.output.count('"image"') == 3
    truncated = in_tmp / "truncated.jpg"
    Image.new("RGB", (64, 64), "red").save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    refused(cv("predict", "run", str(truncated)), "truncated.jpg", "cannot be read")
    (in_tmp / "empty").mkdir()
    refused(cv("predict", "run", "empty"), "holds no image files")


@pytest.fixture
def damaged_folder(in_tmp):
    root = write_image_folder(in_tmp / "photos", per_class=3, size=40)
    (root / "train" / "ants" / "notes.jpg").write_text("not a picture")
    cut = root / "train" / "bees" / "cut.jpg"
    Image.open(next((root / "train" / "bees").glob("*"))).convert("RGB").save(cut)
    cut.write_bytes(cut.read_bytes()[:200])
    return root


def test_an_unreadable_image_in_a_folder_stops_training_with_its_name(damaged_folder):
    args = ["--dataset", "imagefolder", "--data-dir", str(damaged_folder), "--model", "tv/resnet18",
            "--set", "dataset.image_size=32", "--set", "dataset.resize=36", "--batch-size", "16",
            "--epochs", "1"]
    output = refused(cv("train", *args))
    assert "cannot be read" in output and ("notes.jpg" in output or "cut.jpg" in output)
    assert "skip_unreadable=true" in output
    result = cv("train", *args, "--set", "dataset.skip_unreadable=true")
    assert result.exit_code == 0, result.output
    assert "left out 2 unreadable image(s)" in result.stderr


def test_official_mnist_gz_files_placed_by_hand_are_read(in_tmp):
    raw = in_tmp / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx_gz(raw, "train", 12)
    write_idx_gz(raw, "t10k", 6)
    result = cv("train", *QUICK, "--dataset", "mnist", "--model", "mlp", "--run-dir", "r")
    assert result.exit_code == 0, result.output
    assert os.path.getsize(raw / "train-images-idx3-ubyte") == 16 + 12 * 28 * 28


def test_cv_info_writes_defaults_as_a_config_file_would(in_tmp):
    output = cv("info", "imagefolder").output
    assert '"data"' in output and "PosixPath" not in output


def test_cv_list_groups_families_and_a_pattern_lists_each():
    grouped = cv("list", "model").output
    assert "tv/resnet* (5)" in grouped and "tv/resnet152" not in grouped
    assert "tv/resnet152" in cv("list", "model", "tv/resnet*").output


@pytest.mark.parametrize("command", [
    ["export", "RUN", "--format", "safetensors", "--output", "FILE/w.safetensors"],
    ["export", "RUN", "--output", "FILE/m.onnx"],
    ["eval", "RUN", "--output", "FILE/c.png"],
    ["predict", "RUN", "IMAGE", "--output-dir", "FILE/masks"],
    ["plot", "RUN", "--output", "FILE/c.png"],
])
def test_an_output_that_cannot_be_written_is_one_paragraph(run_dir, in_tmp, command):
    (in_tmp / "a-file").write_text("not a folder")
    Image.new("L", (8, 8)).save(in_tmp / "digit.png")
    places = {"RUN": str(run_dir), "IMAGE": str(in_tmp / "digit.png")}
    args = [places.get(arg, arg).replace("FILE", str(in_tmp / "a-file")) for arg in command]
    result = cv(*args)
    if command[0] == "predict":  # a classifier writes no masks: nothing to refuse
        assert result.exit_code == 0, result.output
        return
    refused(result, str(in_tmp / "a-file"))


@pytest.mark.parametrize(("args", "fragment"), [
    (["bogus"], "No components match 'bogus'"), (["models"], "Did you mean 'model'"),
    (["transforms"], "Did you mean 'transform'"),
])
def test_cv_list_of_nothing_is_an_error_that_suggests_the_kind(args, fragment):
    refused(cv("list", *args), fragment)


def test_listing_a_kind_whose_plugin_is_disabled_names_the_variable():
    refused(cv("list", "task", env={"CVCORE_DISABLE_PLUGINS": "tasks,detection"}),
            "CVCORE_DISABLE_PLUGINS='tasks,detection' leaves out detection, tasks")


def test_data_dir_for_a_data_set_without_files_says_so(in_tmp):
    refused(cv("train", "--data-dir", "data", *QUICK), "Data set 'digits' reads no files of yours")
    assert not (in_tmp / "runs").exists()


@pytest.mark.parametrize("command", [["eval", "MODEL"], ["export", "MODEL"], ["predict", "IMAGE", "MODEL"]])
def test_a_file_of_another_kind_in_a_checkpoints_place_is_named(run_dir, in_tmp, command):
    assert cv("export", str(run_dir), "--output", str(in_tmp / "m.onnx")).exit_code == 0
    Image.new("L", (8, 8)).save(in_tmp / "digit.png")
    places = {"MODEL": str(in_tmp / "m.onnx"), "IMAGE": str(in_tmp / "digit.png")}
    expected = "is an image, not a checkpoint" if command[0] == "predict" else "is an ONNX model: cv predict takes it"
    refused(cv(*[places.get(arg, arg) for arg in command]), expected)


@pytest.mark.parametrize(("command", "fragment"), [
    (["export", "RUN", "--format", "safetensors", "--opset", "17"], "--opset applies to --format onnx"),
    (["export", "RUN/checkpoints/best.safetensors", "--checkpoint", "last"], "--checkpoint picks best or last"),
    (["eval", "RUN/checkpoints/best.safetensors", "--checkpoint", "best"], "--checkpoint picks best or last"),
    (["train", "--transform", "none", "--transform", "flip"], "--transform none turns augmentation off"),
    (["train", "--resume", "RUN", "--run-dir", "elsewhere"], "--run-dir 'elsewhere' does not apply"),
])
def test_an_option_that_does_not_apply_is_refused(run_dir, in_tmp, command, fragment):
    refused(cv(*[arg.replace("RUN", str(run_dir)) for arg in command]), fragment, code=2)
    assert not (in_tmp / "elsewhere").exists()


def test_a_finished_run_resumed_without_more_epochs_says_nothing_is_trained(run_dir):
    result = cv("train", "--resume", str(run_dir), "--transform", "flip")
    assert result.exit_code == 0 and "has already run its 1 epochs, so nothing is trained" in result.output


def test_a_dry_run_of_a_resume_loads_the_checkpoint_and_checks_what_the_resume_checks(run_dir):
    result = cv("train", "--resume", str(run_dir), "--epochs", "2", "--dry-run")
    assert result.exit_code == 0 and "resume    from epoch 1" in result.output, result.output
    refused(cv("train", "--resume", str(run_dir), "--epochs", "2", "--model", "resnet18", "--dry-run"),
            "Cannot resume")


def test_a_transform_size_that_contradicts_the_data_is_refused(in_tmp):
    refused(cv("train", *QUICK, "--dataset", "multilabel_shapes", "--set", "dataset.count=40", "--loss", "bce",
               "--transform", "random_resized_crop", "--set", "transforms.random_resized_crop.image_size=[64, 64]"),
            "transform 'random_resized_crop' is set to image_size=(64, 64)", "needs image_size=(32, 32)")


def test_focal_on_multilabel_data_takes_the_multilabel_mode_by_itself(in_tmp):
    result = cv("train", *QUICK, "--dataset", "multilabel_shapes", "--set", "dataset.count=40", "--loss", "focal")
    assert result.exit_code == 0, result.output


def test_a_segfolder_num_classes_below_its_mask_ids_is_refused_before_training(in_tmp):
    from test_data_mistakes import write_masks

    root = write_masks(in_tmp / "seg", lambda i: (3, 0))
    refused(cv("train", *QUICK, "--dataset", "segfolder", "--data-dir", str(root), "--model", "unet",
               "--set", "dataset.image_size=16", "--set", "dataset.num_classes=2"),
            "num_classes is 2, but the masks", "hold class id 3")
    assert not (in_tmp / "runs").exists()


def test_a_training_checkpoint_given_as_start_weights_gives_its_model_or_says_what_it_is(in_tmp):
    rgb = ["--dataset", "multilabel_shapes", "--set", "dataset.count=40", "--loss", "bce", "--model", "tv/resnet18"]
    assert cv("train", *rgb, *QUICK, "--run-dir", "rgb").exit_code == 0
    result = cv("train", *rgb, *QUICK, "--set", "model.weights=rgb/checkpoints/best.safetensors", "--run-dir", "again")
    assert result.exit_code == 0, result.output  # its model's weights, taken out of the checkpoint
    assert cv("train", "--model", "tv/resnet18", *QUICK, "--run-dir", "grey").exit_code == 0  # one channel: adapted
    refused(cv("train", "--model", "tv/resnet18", *QUICK, "--set", "model.weights=grey/checkpoints/best.safetensors"),
            "is a cvcore training checkpoint of model 'tv/resnet18' for 10 classes and 1 input channel(s)",
            "cv train --resume")


def test_a_monitor_is_checked_against_the_data_sets_own_task_before_its_data(in_tmp, monkeypatch):
    import cvcore_datasets

    monkeypatch.setattr(cvcore_datasets, "digits", lambda **_: pytest.fail("data was read"))
    output = refused(cv("train", *QUICK, "--set", "trainer.monitor=val_acc"),
                     "which no epoch logs for task classification", "'val_acc1'")
    assert "val_map" not in output and "val_miou" not in output and "val_f1" not in output
    refused(cv("train", *QUICK, "--set", "trainer.monitor=val_map"), "which no epoch logs for task classification")
    refused(cv("train", *QUICK, "--model", "unet"), "model 'unet' serves tasks that need a vector per pixel (output form 'map'), but data set 'digits'")
