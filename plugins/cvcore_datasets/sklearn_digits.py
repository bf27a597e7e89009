"""The `digits` data set: real handwriting that ships with scikit-learn, so it works offline."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cvcore import DataError, DataInfo, DataSplits, TensorImages


def load_digits(image_size: int, val_fraction: float, seed: int) -> DataSplits:
    digits, labels = _digits()
    pixels = torch.as_tensor(digits, dtype=torch.float32).unsqueeze(1) / 16.0
    pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
    targets = torch.as_tensor(labels, dtype=torch.long)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(images) * val_fraction))
    train_idx, val_idx = order[n_val:], order[:n_val]
    scaled = images[train_idx].float() / 255
    mean, std = (scaled.mean().item(),), (scaled.std().item(),)
    info = DataInfo(num_classes=10, class_names=[str(d) for d in range(10)], in_channels=1,
                    image_size=(image_size, image_size), mean=mean, std=std)
    return DataSplits(TensorImages(images[train_idx], targets[train_idx]),
                      TensorImages(images[val_idx], targets[val_idx]), info)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 images (8, 8) of 0-16 and their labels, read from the file scikit-learn ships
    (as its load_digits reads it) without importing scikit-learn, which takes a second of every
    default job's start; through load_digits where a release keeps the file elsewhere."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise DataError("The 'digits' data set needs scikit-learn: pip install 'cvcore[digits]'.")
    shipped = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not shipped.is_file():
        from sklearn.datasets import load_digits as sklearn_digits

        bunch = sklearn_digits()
        return bunch.images, bunch.target
    with gzip.open(shipped, "rt", encoding="utf-8") as rows:
        table = np.loadtxt(rows, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)
