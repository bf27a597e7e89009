"""Data mistakes that used to score perfectly or train on the wrong thing without a word: each is a
clear error before training, or a warning naming the likely cause."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from cvcore_tasks.segmentation import SegmentationMetrics
from PIL import Image

from cvcore.commands.cli import cli
from fixtures import write_image_folder


def cv(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])  # output holds stderr too (click >= 8.2)


def write_masks(root: Path, paint, count: int = 6, size: int = 16) -> Path:
    """images/ and masks/ where ``paint(index)`` gives each mask's (foreground value, background value)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index in range(count):
        foreground, background = paint(index)
        mask = np.full((size, size), background, dtype=np.uint8)
        mask[:, : 4 + index] = foreground
        Image.fromarray(np.stack([mask] * 3, -1)).save(root / "images" / f"{index}.png")
        Image.fromarray(mask).save(root / "masks" / f"{index}.png")
    return root


SEG = ["--dataset", "segfolder", "--model", "unet", "--set", "dataset.image_size=16",
       "--epochs", "1", "--run-dir", "r"]


def test_binary_masks_saved_as_0_and_255_are_refused_with_the_likely_cause(in_tmp):
    root = write_masks(in_tmp / "seg", lambda i: (255, 0))
    result = cv("train", *SEG, "--data-dir", root)
    assert result.exit_code == 1 and "binary masks saved as 0/255? store the foreground as 1" in result.output
    assert not (in_tmp / "r").exists()


def test_masks_mostly_ignored_or_with_a_stray_id_are_warned_about(in_tmp):
    root = write_masks(in_tmp / "seg", lambda i: (1 if i else 77, 255), count=4)
    result = cv("train", *SEG, "--data-dir", root, "--dry-run")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "of the mask pixels in" in text and "are 255, the ignore value" in text
    assert "use class ids [1, 77], so 78 classes, of which 76" in text and "a stray value?" in text


def test_segmentation_metrics_over_no_counted_pixel_are_undefined_not_perfect():
    metrics = SegmentationMetrics(2, torch.device("cpu"), detailed=True)
    logits = torch.zeros(2, 2, 4, 4)
    logits[:, 0] = 1.0  # predicts class 0 everywhere
    metrics.update(logits, torch.full((2, 4, 4), 255), torch.tensor(0.3))
    metrics.tensors()
    values = metrics.compute("val")
    assert math.isnan(values["val_miou"]) and math.isnan(values["val_pixel_acc"]) and math.isnan(values["val_mdice"])


def test_an_image_folder_with_one_class_is_refused(in_tmp):
    root = write_image_folder(in_tmp / "data", classes=("cats",))
    result = cv("train", "--dataset", "imagefolder", "--data-dir", root, "--model", "lenet", "--epochs", "1",
                "--run-dir", "r")
    assert result.exit_code == 1 and "has 1 class folder(s) (cats): classification needs at least two" in result.output
    assert not (in_tmp / "r").exists()


@pytest.mark.parametrize("labels, message", [
    ('"cat,dog"', "label 'cat,dog' holds a separator; multilabel_csv separates labels by spaces"),
    ("", "gives none of its 2 images a label"),
])
def test_multilabel_csv_mistakes_are_one_clear_error(in_tmp, labels, message):
    root = in_tmp / "csv"
    root.mkdir()
    for split in ("train", "val"):
        (root / f"{split}.csv").write_text(f"image,labels\na.png,{labels}\nb.png,{labels}\n")
    for name in ("a.png", "b.png"):
        Image.new("RGB", (20, 20)).save(root / name)
    result = cv("train", "--dataset", "multilabel_csv", "--data-dir", root, "--model", "lenet", "--loss", "bce",
                "--epochs", "1", "--run-dir", "r")
    assert result.exit_code == 1 and message in result.output, result.output
