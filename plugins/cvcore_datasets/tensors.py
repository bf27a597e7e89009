"""A data set held in memory as one uint8 tensor, normalised when read."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorImages(Dataset):
    """uint8 images (N, C, H, W) and integer targets; items are normalised float tensors."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, mean, std) -> None:
        self.images, self.targets = images, targets
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return (self.images[index].float() / 255 - self.mean) / self.std, self.targets[index]
