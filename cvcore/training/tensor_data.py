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

from cvcore.training.distributed import shard

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
        if getattr(self, "_on_cpu", None) is None:
            self._on_cpu = self.on_device(torch.device("cpu"))
        images, targets = self._on_cpu.take(torch.tensor([index]), augment=True, generator=None)
        return images[0], targets[0]

    def on_device(self, device: torch.device) -> DeviceBatches:
        return DeviceBatches(self, device)


class DeviceBatches:
    """A TensorImages prepared on a device once; batches are then built there in a few bulk operations.

    Preparation pads every image once (for the crop) and, with flips, stores a mirrored copy beside
    the originals: a flip is then the choice of which copy to read, and a whole batch is one
    ``index_select`` plus one windowed copy for the crop. Memory: up to 2 x (H+2p)(W+2p)/(HW) of
    the uint8 data set.
    """

    def __init__(self, data: TensorImages, device: torch.device) -> None:
        self.count, self.pad, self.flip = len(data), data.crop_padding, data.flip
        _, _, self.height, self.width = data.images.shape
        images, targets = data.images.to(device), data.targets.to(device)
        if self.flip:
            images = torch.cat([images, images.flip(-1)])
            targets = torch.cat([targets, targets.flip(-1) if targets.dim() == 3 else targets])
        if self.pad:
            images = F.pad(images, (self.pad,) * 4)
            if targets.dim() == 3:
                targets = F.pad(targets, (self.pad,) * 4, value=IGNORE_INDEX)
        self.images, self.targets, self.device = images, targets, device
        std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
        mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
        self.scale, self.shift = 1 / (255 * std), mean / std  # (x / 255 - mean) / std = x * scale - shift

    def __len__(self) -> int:
        return self.count

    def take(self, index: torch.Tensor, *, augment: bool, generator: torch.Generator | None):
        """Normalised float images and their targets for ``index``; with ``augment``, a random
        crop (one shift per image) and a left-right flip with probability 1/2."""
        index = index.to(self.device)
        count = len(index)
        if augment and self.flip:
            flipped = torch.rand(count, device=self.device, generator=generator) < 0.5
            index = index + flipped * self.count
        images, targets = self.images.index_select(0, index), self.targets.index_select(0, index)
        if self.pad:
            if augment:
                shifts = torch.randint(0, 2 * self.pad + 1, (2, count), device=self.device, generator=generator)
            else:
                shifts = torch.full((2, count), self.pad, device=self.device)
            images, targets = self._crop(images, shifts), self._crop_masks(targets, shifts)
        return images.float().mul_(self.scale).sub_(self.shift), targets

    def _crop(self, batch: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        windows = batch.unfold(2, self.height, 1).unfold(3, self.width, 1)  # (N, C, dy, dx, H, W), a view
        return windows[torch.arange(len(batch), device=batch.device), :, shifts[0], shifts[1]]

    def _crop_masks(self, targets: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        if targets.dim() != 3:
            return targets
        return self._crop(targets.unsqueeze(1), shifts).squeeze(1)

    def batches(self, batch_size: int, *, shuffle: bool, augment: bool, generator: torch.Generator | None,
                order_generator: torch.Generator | None = None, rank: int = 0,
                world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of batches; augmentations draw from ``generator``.

        With several processes, the shuffled order comes from ``order_generator`` (default:
        ``generator``), which must be the same on every process: each takes an equal share of that
        one permutation (see :func:`cvcore.training.distributed.shard`); without shuffling every image is
        taken exactly once.
        """
        order_generator = order_generator or generator
        order = (torch.randperm(self.count, generator=order_generator,
                                device=order_generator.device if order_generator else self.device)
                 if shuffle else torch.arange(self.count, device=self.device))
        order = shard(order, rank, world_size, pad=shuffle).to(self.device)  # one copy per epoch
        for start in range(0, len(order), batch_size):
            yield self.take(order[start:start + batch_size], augment=augment, generator=generator)

    def num_batches(self, batch_size: int, world_size: int = 1, rank: int = 0, *, shuffle: bool = True) -> int:
        share = math.ceil(self.count / world_size) if shuffle else len(range(rank, self.count, world_size))
        return math.ceil(share / batch_size)
