"""The `digits` data set: real handwriting that ships with scikit-learn, so it works offline."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cvcore import DataError, DataInfo, DataSplits, TensorImages


def load_digits(image_size: int, val_fraction: float, seed: int) -> DataSplits:
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as exc:
        raise DataError("The 'digits' data set needs scikit-learn: pip install 'cvcore[digits]'.") from exc
    bunch = sklearn_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
    targets = torch.as_tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(images) * val_fraction))
    train_idx, val_idx = order[n_val:], order[:n_val]
    scaled = images[train_idx].float() / 255
    mean, std = (scaled.mean().item(),), (scaled.std().item(),)
    info = DataInfo(num_classes=10, class_names=[str(d) for d in range(10)], in_channels=1,
                    image_size=(image_size, image_size), mean=mean, std=std)
    return DataSplits(TensorImages(images[train_idx], targets[train_idx]),
                      TensorImages(images[val_idx], targets[val_idx]), info)
