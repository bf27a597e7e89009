"""Segmentation as a task: data sets, models, metrics, the Trainer, and the shapes recipe."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner
from PIL import Image
from torchvision.models import _api as torchvision_weights

import cvcore
from cvcore.commands.cli import cli
from cvcore_tasks.segmentation import SegmentationMetrics, mask_over_photo
from cvcore.testing import check_component
from cvcore.training.preparation import Preparation
from fixtures import augmented

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "shapes_unet_dice.toml"


def test_shapes_is_deterministic_and_has_every_class():
    first, again = (cvcore.create("dataset", "shapes", count=40, size=32, seed=3) for _ in range(2))
    assert torch.equal(first.train.images, again.train.images) and torch.equal(first.val.targets, again.val.targets)
    other = cvcore.create("dataset", "shapes", count=40, size=32, seed=4)
    assert not torch.equal(first.train.images, other.train.images)
    assert first.info.task == "segmentation" and first.info.class_names == ("background", "circle", "square", "triangle")
    assert set(first.train.targets.unique().tolist()) == {0, 1, 2, 3}


def test_shapes_flip_moves_image_and_mask_together():
    splits = cvcore.create("dataset", "shapes", count=20, size=32)
    assert splits.transforms == ("transforms:flip",)
    images, masks = augmented(splits.train, splits.transforms, info=splits.info)
    plain, original, _ = Preparation(splits.info, torch.device("cpu"))(splits.train.images, splits.train.targets,
                                                                      train=False)
    flipped = [not torch.equal(mask, target) for mask, target in zip(masks, original)]
    assert any(flipped) and not all(flipped)
    for image, mask, raw, target, turned in zip(images, masks, plain, original, flipped):
        assert torch.equal(mask, target.flip(-1) if turned else target)
        assert torch.allclose(image, raw.flip(-1) if turned else raw, atol=1e-5)


def write_segfolder(root: Path, count: int = 6, size: int = 20) -> Path:
    """images/*.png and masks/*.png: the left columns are class 1 and painted red, the rest class 0."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index in range(count):
        edge = 4 + index
        pixels = np.zeros((size, size, 3), dtype=np.uint8)
        pixels[:, :edge, 0] = 255
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[:, :edge] = 1 if index % 2 else 2
        Image.fromarray(pixels).save(root / "images" / f"{index}.png")
        Image.fromarray(mask).save(root / "masks" / f"{index}.png")
    return root


def test_segfolder_augments_image_and_mask_together(tmp_path):
    splits = cvcore.create("dataset", "segfolder", root=write_segfolder(tmp_path), image_size=16)
    assert splits.info.num_classes == 3 and splits.info.task == "segmentation"
    sides = set()
    for seed in range(5):
        images, masks = augmented(splits.train, splits.transforms, seed=seed, info=splits.info)
        assert masks.shape == (len(splits.train), 16, 16) and masks.dtype == torch.int64
        # Same crop and flip: the labelled columns are the red ones, give or take the one column
        # where bilinear (image) and nearest (mask) resampling round differently.
        assert ((masks > 0) != (images[:, 0] > 0)).sum(dim=2).max() <= 1
        sides |= {bool(mask[:, 0].any()) for mask in masks}
    assert sides == {True, False}  # flipped sometimes, not always


def test_segfolder_missing_mask_is_named(tmp_path):
    root = write_segfolder(tmp_path)
    (root / "masks" / "3.png").unlink()
    with pytest.raises(cvcore.DataError, match="1 image\\(s\\) .* have no mask .*'3.png' for '3.png'"):
        cvcore.create("dataset", "segfolder", root=root)


@pytest.mark.parametrize("name", ["unet", "tv/lraspp_mobilenet_v3_large", "tv/deeplabv3_mobilenet_v3_large"])
def test_segmentation_models_give_per_pixel_logits(name):
    model = check_component("model", name, num_classes=4)
    assert model.eval()(torch.randn(1, 3, 40, 40)).shape == (1, 4, 40, 40)


@pytest.mark.parametrize("arch", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50"])
def test_pretrained_segmentation_heads_are_resized(arch, monkeypatch):
    def offline(self, *args, **kwargs):  # no network here: random weights of the published shapes
        aux = {} if arch.startswith("lraspp") else {"aux_loss": True}
        return torchvision.models.get_model(arch, num_classes=21, weights_backbone=None, **aux).state_dict()

    monkeypatch.setattr(torchvision_weights.WeightsEnum, "get_state_dict", offline)
    model = cvcore.create("model", f"tv/{arch}", num_classes=5, pretrained=True)
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)


def test_segmentation_metrics_match_a_hand_count():
    metrics = SegmentationMetrics(3, torch.device("cpu"), detailed=True)
    target = torch.tensor([[0, 0, 1, 1, 255]])
    prediction = torch.tensor([[0, 1, 1, 1, 2]])
    logits = torch.nn.functional.one_hot(prediction, 3).permute(0, 2, 1).float()  # (1, 3, 5)
    metrics.update(logits, target, torch.tensor(0.5))
    metrics.tensors()
    values = metrics.compute("val")
    # class 0: hits 1, union 2 -> IoU 1/2, Dice 2/3; class 1: hits 2, union 3 -> 2/3, 4/5; class 2 absent (255 ignored)
    assert values["val_pixel_acc"] == pytest.approx(3 / 4)
    assert values["val_miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert values["val_mdice"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert metrics.per_class() == pytest.approx([1 / 2, 2 / 3, None])


def test_trainer_logs_segmentation_metrics(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--dataset", "shapes", "--model", "unet", "--loss", "dice_bce",
                                      "--set", "dataset.count=64", "--set", "dataset.size=32", "--set", "model.width=4",
                                      "--set", "model.depth=2", "--epochs", "1", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "r" / "metrics.jsonl").read_text())
    assert {"train_loss", "train_pixel_acc", "val_loss", "val_pixel_acc", "val_miou", "val_mdice"} <= set(row)
    assert "best val_miou" in result.output and "per-class IoU" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "shapes", "--model", "lenet"], "model 'lenet' serves tasks that need a vector per image (output form 'vector'), but data set 'shapes' "
                                           "is a segmentation task, which needs a vector per pixel (output form 'map')"),
    (["--model", "unet"], "model 'unet' serves tasks that need a vector per pixel (output form 'map'), but data set 'digits' "
                                  "is a classification task, which needs a vector per image"),
    (["--dataset", "shapes", "--model", "unet", "--loss", "bce"], "loss 'bce' serves classification and multilabel, but data set 'shapes'"),
])
def test_task_mismatch_is_refused(args, message):
    result = CliRunner().invoke(cli, ["train", *args, "--epochs", "1"])
    assert result.exit_code == 1 and message in result.output


@pytest.mark.slow
def test_shapes_recipe_reaches_the_documented_mean_iou(tmp_path):
    result = CliRunner().invoke(cli, ["train", "-c", str(RECIPE), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert max(row["val_miou"] for row in rows) >= 0.80


def test_predict_writes_masks_from_checkpoint_and_onnx(tmp_path):
    run = tmp_path / "r"
    result = CliRunner().invoke(cli, ["train", "--dataset", "shapes", "--model", "unet", "--loss", "dice_bce",
                                      "--set", "dataset.count=64", "--set", "dataset.size=32", "--set", "model.width=4",
                                      "--set", "model.depth=2", "--epochs", "1", "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    splits = cvcore.create("dataset", "shapes", count=64, size=32)
    picture = tmp_path / "shape.png"
    Image.fromarray(splits.val.images[0].permute(1, 2, 0).numpy()).save(picture)
    assert CliRunner().invoke(cli, ["export", str(run), "--output", str(tmp_path / "m.onnx")]).exit_code == 0
    masks = []
    for model, folder in ((run, "torch"), (tmp_path / "m.onnx", "onnx")):
        out = CliRunner().invoke(cli, ["predict", str(model), str(picture), "--output-dir", str(tmp_path / folder), "--json"])
        assert out.exit_code == 0, out.output
        report = json.loads(out.output)[0]
        assert set(report["pixels"]) == {"background", "circle", "square", "triangle"}
        assert sum(report["pixels"].values()) == pytest.approx(1.0)
        masks.append(np.array(Image.open(report["mask"])))
    assert masks[0].shape == (32, 32) and masks[0].max() < 4
    assert (masks[0] == masks[1]).mean() > 0.99  # onnxruntime and PyTorch agree pixel for pixel (ties aside)
    wide = tmp_path / "wide.png"  # a photo that is not square: 40 high, 64 wide, for a 32 x 32 model
    Image.fromarray(splits.val.images[0].permute(1, 2, 0).numpy()).resize((64, 40)).save(wide)
    out = CliRunner().invoke(cli, ["predict", str(run), str(wide), "--output-dir", str(tmp_path / "w"), "--json"])
    report = json.loads(out.output)[0]
    mask = np.array(Image.open(report["mask"]))
    # resized to 51 x 32, centre crop from column 10: photo columns 12.5 to 52.7 were seen
    assert mask.shape == (40, 64) and report["predicted_box"] == pytest.approx([12.55, 0.0, 52.71, 40.0], abs=0.01)
    assert (mask[:, :12] == 255).all() and (mask[:, 53:] == 255).all() and (mask[:, 13:52] < 4).all()
    assert sum(report["pixels"].values()) == pytest.approx(1.0)


def test_a_mask_lies_over_the_photo_where_the_model_saw_it():
    """Logits whose class changes at input column 10 and row 20 give a photo mask that changes at the
    photo pixels those input pixels came from."""
    placement = cvcore.Placement(original_size=(90, 200), input_size=(32, 32), box=(40.0, 5.0, 130.0, 85.0))
    columns, rows = torch.arange(32).view(1, -1).expand(32, 32), torch.arange(32).view(-1, 1).expand(32, 32)
    classes = (columns >= 10).long() + 2 * (rows >= 20).long()
    mask = mask_over_photo(torch.nn.functional.one_hot(classes, 4).permute(2, 0, 1).float() * 10, placement)
    edge_x, edge_y = placement.to_original(10, 20)  # 68.125, 55.0
    assert mask.shape == (90, 200)
    assert (mask[:, :40] == 255).all() and (mask[:, 130:] == 255).all() and (mask[:5] == 255).all()
    assert (mask[6:84, 41:int(edge_x) - 2] % 2 == 0).all() and (mask[6:84, int(edge_x) + 2:129] % 2 == 1).all()
    assert (mask[6:int(edge_y) - 2, 41:129] < 2).all() and (mask[int(edge_y) + 2:84, 41:129] >= 2).all()


def test_segfolder_masks_with_ignored_pixels_train_with_the_default_loss(in_tmp):
    root = write_segfolder(in_tmp / "data")
    for mask_path in (root / "masks").iterdir():  # a border of 255 (ignore) around every mask
        mask = np.array(Image.open(mask_path))
        mask[0, :] = mask[-1, :] = 255
        Image.fromarray(mask).save(mask_path)
    splits = cvcore.create("dataset", "segfolder", root=root, image_size=16)
    assert splits.info.ignore_index == 255
    loss = cvcore.create("loss", "cross_entropy", ignore_index=splits.info.ignore_index)
    logits, mask = torch.zeros(1, 3, 2, 2, requires_grad=True), torch.tensor([[[0, 255], [255, 255]]])
    assert loss(logits, mask).item() == pytest.approx(math.log(3))  # the one valid pixel alone
    result = CliRunner().invoke(cli, ["train", "--dataset", "segfolder", "--data-dir", "data", "--set",
                                      "dataset.image_size=16", "--model", "unet", "--set", "model.width=4",
                                      "--set", "model.depth=2", "--epochs", "1", "--run-dir", "r"])
    assert result.exit_code == 0, result.output


def test_plugin_kit_checks_segmentation_data_sets(tmp_path):
    splits = check_component("dataset", "segfolder", root=write_segfolder(tmp_path), image_size=16)
    assert splits.info.task == "segmentation"
    check_component("dataset", "shapes", count=10, size=16)
