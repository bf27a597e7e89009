"""Data sets that fit in memory, kept as one uint8 tensor and batched on the training device.

A :class:`TensorImages` is an ordinary map-style dataset (items are normalised, augmented float
tensors, so a DataLoader can serve it), and it can also move itself to a device once and build
whole batches there with batched tensor operations: shuffling with ``torch.randperm``, a random
crop with zero padding (one shift per image), a horizontal flip, conversion and normalisation.
Both paths draw the same augmentations from the same distribution.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

IGNORE_INDEX = 255  # the value padded into segmentation masks by a crop


class TensorImages(Dataset):
    """uint8 images (N, C, H, W) with class ids (N,) or masks (N, H, W).

    :param crop_padding: pad by this many pixels, then crop back at a random offset (0: no crop).
    :param flip: mirror left-right with probability 1/2 (the mask with the image).
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                 *, crop_padding: int = 0, flip: bool = False) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images, self.targets = images, targets
        self.mean, self.std = tuple(mean), tuple(std)
        self.crop_padding, self.flip = crop_padding, flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        images, targets = self.augment(self.images[index:index + 1], self.targets[index:index + 1], None)
        return self.normalize(images)[0], targets[0]

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None):
        """Random crop and flip of a uint8 batch (and its masks), one draw per image."""
        if self.crop_padding:
            images, targets = self._crop(images, targets, generator)
        if self.flip:
            flipped = torch.rand(len(images), device=images.device, generator=generator) < 0.5
            images = torch.where(flipped.view(-1, 1, 1, 1), images.flip(-1), images)
            if targets.dim() == 3:
                targets = torch.where(flipped.view(-1, 1, 1), targets.flip(-1), targets)
        return images, targets

    def _crop(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None):
        pad, (count, _, height, width) = self.crop_padding, images.shape
        shifts = torch.randint(0, 2 * pad + 1, (2, count, 1), device=images.device, generator=generator)
        rows = shifts[0] + torch.arange(height, device=images.device)  # (N, H) rows of the padded image
        cols = shifts[1] + torch.arange(width, device=images.device)
        batch = torch.arange(count, device=images.device).view(-1, 1, 1)
        padded = F.pad(images, (pad, pad, pad, pad))
        images = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if targets.dim() == 3:
            padded_masks = F.pad(targets, (pad, pad, pad, pad), value=IGNORE_INDEX)
            targets = padded_masks[batch, rows[:, :, None], cols[:, None, :]]
        return images.contiguous(), targets

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images.float() / 255 - mean) / std

    def on_device(self, device: torch.device) -> DeviceBatches:
        return DeviceBatches(self, device)


class DeviceBatches:
    """A TensorImages copied to a device once; iterating yields augmented, normalised batches there."""

    def __init__(self, data: TensorImages, device: torch.device) -> None:
        self.data = data
        self.images = data.images.to(device)
        self.targets = data.targets.to(device)
        self.device = device

    def batches(self, batch_size: int, *, shuffle: bool, augment: bool, generator: torch.Generator | None,
                rank: int = 0, world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of batches; with several processes each takes every ``world_size``-th image."""
        count = len(self.images)
        order = (torch.randperm(count, device=self.device, generator=generator) if shuffle
                 else torch.arange(count, device=self.device))
        order = order[rank::world_size]
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            images, targets = self.images[index], self.targets[index]
            if augment:
                images, targets = self.data.augment(images, targets, generator)
            yield self.data.normalize(images), targets

    def num_batches(self, batch_size: int, world_size: int = 1) -> int:
        return math.ceil(math.ceil(len(self.images) / world_size) / batch_size)
