"""What a finished run gives: export to ONNX and safetensors, evaluation, prediction, plots, log files."""

import json

import onnx
import onnxruntime
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file
from torchvision.datasets import ImageFolder

import cvcore
from cvcore.commands.cli import cli
from cvcore.training.preparation import Preparation


def cv(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One short digits run with every logging callback."""
    path = tmp_path_factory.mktemp("run") / "r"
    result = cv("train", "--epochs", "2", "--run-dir", str(path), "--callback", "onnx", "--callback", "csv",
                "--callback", "lr_monitor", "--callback", "predictions", "--callback", "tensorboard")
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def digit_image(tmp_path_factory):
    """A real validation digit, saved as a PNG the way a user would have it."""
    splits = cvcore.create("dataset", "digits")
    path = tmp_path_factory.mktemp("img") / "digit.png"
    Image.fromarray(splits.val.images[0, 0].numpy()).save(path)
    return path, int(splits.val.targets[0])


def test_export_onnx_checks_verifies_and_carries_metadata(run_dir, tmp_path):
    output = tmp_path / "m.onnx"
    result = cv("export", str(run_dir), "--format", "onnx", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "onnx.checker passed; verified with onnxruntime: max |difference| from PyTorch" in result.output
    model = onnx.load(str(output))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["class_names"]) == [str(d) for d in range(10)]
    assert len(json.loads(props["mean"])) == 1
    session = onnxruntime.InferenceSession(str(output))
    for batch in (1, 5):  # dynamic batch dimension
        assert session.run(None, {"images": torch.randn(batch, 1, 32, 32).numpy()})[0].shape == (batch, 10)


def test_export_safetensors_loads_into_plain_pytorch(run_dir, tmp_path):
    output = tmp_path / "w.safetensors"
    assert cv("export", str(run_dir), "--format", "safetensors", "--output", str(output)).exit_code == 0
    model = cvcore.create("model", "lenet", num_classes=10, in_channels=1)
    model.load_state_dict(load_file(str(output)))
    assert output.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # as every other file, not 0600


def current_umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_eval_of_the_last_checkpoint_keeps_the_best_ones_picture(run_dir):
    best = run_dir / "checkpoints" / "confusion.png"
    assert cv("eval", str(run_dir)).exit_code == 0
    before = best.read_bytes()
    result = cv("eval", str(run_dir), "--checkpoint", "last", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["confusion_png"].endswith("confusion-last.png")
    assert best.read_bytes() == before


def test_eval_reproduces_the_last_validation(run_dir):
    result = cv("eval", str(run_dir), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert report["metrics"]["val_acc1"] == pytest.approx(last["val_acc1"])
    assert sum(map(sum, report["confusion"])) == 359
    assert report["confusion_png"] and (run_dir / "checkpoints" / "confusion.png").exists()
    assert "per-class accuracy" in cv("eval", str(run_dir)).output


def test_predict_with_checkpoint_and_onnx_agree(run_dir, digit_image):
    path, label = digit_image
    from_checkpoint = json.loads(cv("predict", str(run_dir), str(path), "--json").output)
    from_onnx = json.loads(cv("predict", str(run_dir / "model.onnx"), str(path), "--json", "--topk", "3").output)
    assert from_checkpoint[0]["top"][0]["class"] == from_onnx[0]["top"][0]["class"] == str(label)
    assert len(from_onnx[0]["top"]) == 3
    assert sum(t["probability"] for t in from_checkpoint[0]["top"]) <= 1.0 + 1e-6


def test_predict_errors_are_clear(run_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert "does not exist" in cv("predict", str(run_dir), str(tmp_path / "missing.png")).output
    assert "is not an image file" in cv("predict", str(run_dir), str(tmp_path / "notes.txt")).output


def test_logging_callbacks_wrote_their_files(run_dir):
    assert (run_dir / "metrics.csv").read_text().splitlines()[0].startswith("epoch,train_loss")
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3
    steps = [json.loads(line) for line in (run_dir / "lr.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, 91))
    assert Image.open(run_dir / "predictions.png").size[0] == 8 * 96
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    onnx.checker.check_model(str(run_dir / "model.onnx"))


def test_plot_overlays_runs(run_dir, tmp_path):
    result = cv("plot", str(run_dir), str(run_dir), "--output", str(tmp_path / "c.png"))
    assert result.exit_code == 0 and Image.open(tmp_path / "c.png").size[0] > 500
    assert "has no metrics.jsonl" in cv("plot", str(tmp_path)).output


def test_predict_preprocesses_exactly_as_validation(tmp_path, monkeypatch):
    from fixtures import write_image_folder

    monkeypatch.chdir(tmp_path)
    write_image_folder(tmp_path / "data", size=40)  # 40 x 48 pictures: resize 44, then crop 32
    small = ["--dataset", "imagefolder", "--data-dir", "data", "--set", "dataset.image_size=32",
             "--set", "dataset.resize=44", "--model", "lenet", "--epochs", "1", "--batch-size", "2"]
    assert cv("train", *small, "--run-dir", "r", "--callback", "onnx").exit_code == 0
    data = cvcore.create("dataset", "imagefolder", root=tmp_path / "data", image_size=32, resize=44)
    path, _ = ImageFolder(tmp_path / "data" / "val").samples[0]  # the first validation image
    from cvcore.export import load_model

    model = load_model(tmp_path / "r").model
    images, _, _ = Preparation(data.info, torch.device("cpu"))(*data.val[0:1], train=False)
    with torch.inference_mode():
        expected = model(images).softmax(1)[0]
    for source in ("r", "r/model.onnx"):
        result = cv("predict", source, path, "--json", "--topk", "2")
        assert result.exit_code == 0, result.output
        top = {t["class"]: t["probability"] for t in json.loads(result.output)[0]["top"]}
        assert [top[name] for name in data.info.class_names] == pytest.approx(expected.tolist(), abs=1e-5)


def test_plot_draws_each_tasks_own_scores():
    from cvcore.commands.plot import panels

    multilabel = [{"epoch": 1, "train_loss": 0.5, "train_f1": 0.4, "val_loss": 0.6, "val_f1": 0.3, "val_map": 0.7,
                   "lr": 0.1, "seconds": 1.0, "images_per_second": 9.0}]
    shown = dict(panels(multilabel))
    assert shown["scores"] == ["train_f1", "val_f1", "val_map"] and shown["loss"] == ["train_loss", "val_loss"]
    assert dict(panels([{"epoch": 1, "val_loss": 1.0, "val_mae": 0.2, "lr": 0.1}]))["scores"] == ["val_mae"]


def test_json_documents_carry_their_format_version(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["format"] == "cvcore-summary/1" and summary["metrics_format"] == "cvcore-metrics/1"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(value, (int, float)) for row in rows for value in row.values())  # numbers only
    listing = json.loads(CliRunner().invoke(cli, ["list", "--json"]).output)
    assert listing["format"] == "cvcore-list/1" and listing["components"]
    info = json.loads(CliRunner().invoke(cli, ["info", "random_resized_crop", "--json"]).output)
    assert info["format"] == "cvcore-component/1" and info["qualified_name"] == "transforms:random_resized_crop"
    scale = next(option for option in info["options"] if option["name"] == "scale")
    assert scale == {"name": "scale", "type": "tuple[float, float] (low, high) with 0.0001 <= low <= high <= 1.0",
                     "required": False, "default": [0.08, 1.0],
                     "help": "share of the image's area that the crop covers, drawn uniformly from (low, high)."}
