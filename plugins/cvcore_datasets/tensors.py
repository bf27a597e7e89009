"""A data set held in memory as one uint8 tensor, normalised (and optionally flipped) when read."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorImages(Dataset):
    """uint8 images (N, C, H, W) with class ids (N,) or masks (N, H, W); items are normalised floats.

    With ``flip``, each item is mirrored left-right with probability 1/2, its mask with it.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, mean, std, flip: bool = False) -> None:
        self.images, self.targets, self.flip = images, targets, flip
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, target = self.images[index], self.targets[index]
        if self.flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
            target = target.flip(-1) if target.dim() == 2 else target
        return (image.float() / 255 - self.mean) / self.std, target
