"""Multi-label data: generated shapes with several shapes per image, and image files listed in CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from cvcore import DataError, DataInfo, DataSplits, TensorImages
from cvcore_datasets.segmentation import SHAPES, draw_shapes
from cvcore.cache import image_split
from cvcore_datasets import CROP_AND_FLIP, FLIP_AND_SHIFT
from cvcore_datasets.vision import IMAGENET_MEAN, IMAGENET_STD

MIN_PIXELS = 12  # a shape hidden behind others but for a few pixels is not labelled


def load_shapes(count: int, size: int, val_fraction: float, seed: int, augment: bool) -> DataSplits:
    """The segmentation shapes with up to three per image; the label of an image is which kinds of
    shape are visible in it (at least MIN_PIXELS pixels)."""
    images, masks = draw_shapes(count, size, seed)
    kinds = torch.arange(1, len(SHAPES)).view(1, -1, 1, 1)
    labels = ((masks.unsqueeze(1) == kinds).sum(dim=(2, 3)) >= MIN_PIXELS).float()
    n_val = max(1, int(round(count * val_fraction)))
    scaled = images[n_val:].float() / 255
    mean, std = tuple(scaled.mean(dim=(0, 2, 3)).tolist()), tuple(scaled.std(dim=(0, 2, 3)).tolist())
    info = DataInfo(task="multilabel", num_classes=len(SHAPES) - 1, class_names=SHAPES[1:], in_channels=3,
                    image_size=(size, size), mean=mean, std=std)
    return DataSplits(TensorImages(images[n_val:], labels[n_val:]), TensorImages(images[:n_val], labels[:n_val]), info,
                      transforms=FLIP_AND_SHIFT if augment else ())


def read_rows(path: Path) -> list[tuple[str, list[str]]]:
    """(file name, labels) per row of a CSV with columns ``image`` and ``labels`` (space-separated)."""
    if not path.is_file():
        raise DataError(f"'{path}' does not exist: multilabel_csv needs train.csv and val.csv with columns "
                        f"image,labels (labels separated by spaces).")
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if not reader.fieldnames or not {"image", "labels"} <= set(reader.fieldnames):
            raise DataError(f"'{path}' needs the header 'image,labels', found {reader.fieldnames}.")
        rows = [(row["image"], (row["labels"] or "").split()) for row in reader]
    for line, (image, labels) in enumerate(rows, start=2):
        joined = next((label for label in labels if any(mark in label for mark in ",;|")), None)
        if joined:
            raise DataError(f"'{path}' line {line} ({image}): label '{joined}' holds a separator; multilabel_csv "
                            f"separates labels by spaces (\"cat dog\", not \"cat,dog\"), or every joined "
                            f"name would be one class.")
    if rows and not any(labels for _, labels in rows):
        raise DataError(f"'{path}' gives none of its {len(rows)} images a label: the labels column is empty.")
    return rows


def load_csv(root: Path, image_size: int, resize: int, augment: bool, cache: str,
             interpolation: str) -> DataSplits:
    root = Path(root)
    splits = {split: read_rows(root / f"{split}.csv") for split in ("train", "val")}
    names = sorted({label for rows in splits.values() for _, labels in rows for label in labels})
    if resize < image_size:
        raise DataError(f"resize ({resize}) must be at least image_size ({image_size}).")
    sets = []
    for split, rows in splits.items():
        files = [root / name for name, _ in rows]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise DataError(f"{split}.csv in '{root}' lists {len(missing)} missing image(s), e.g. '{missing[0]}'.")
        labels = torch.tensor([[float(name in row) for name in names] for _, row in rows])
        sets.append(image_split(files, labels, resize, split=split, cache=cache, interpolation=interpolation))
    info = DataInfo(task="multilabel", num_classes=len(names), class_names=names, in_channels=3,
                    image_size=(image_size, image_size), mean=IMAGENET_MEAN, std=IMAGENET_STD, eval_resize=resize,
                    interpolation=interpolation)
    return DataSplits(*sets, info, transforms=CROP_AND_FLIP if augment else ())
