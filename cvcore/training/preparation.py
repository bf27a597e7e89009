"""From loader batches to model inputs, on the training device: pixels to normalised floats, the
training transforms, and the centre crop to the data set's image size (before the first transform
that changes pixel values, so that colour changes, erasing and mixing work on kept pixels only and
cutmix's label shares count only what the model sees).

Data sets may serve uint8 pixels (in-memory sets and the folder cache do: a quarter of the bytes
to move) or float images already normalised with the data's mean and std (torchvision pipelines).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cvcore.errors import ConfigError
from cvcore.transforms import Transform


class Preparation:
    """Prepares batches for one data set on one device; ``transforms`` apply to training batches."""

    def __init__(self, info, device: torch.device, transforms: Sequence[Transform] = (),
                 generator: torch.Generator | None = None) -> None:
        from cvcore.tasks import task_for

        self.size, self.device, self.info = tuple(info.image_size), device, info
        self.transforms, self.generator = list(transforms), generator
        self.task = task_for(info.task)
        if self.task.targets_have_coordinates:  # their points would silently stay where they were
            for transform in self.transforms:
                if transform.geometric and not transform.reports_affine:
                    raise ConfigError(f"Transform {type(transform).__name__} moves pixels without reporting how "
                                      f"(Transform.reports_affine), so the targets of task "
                                      f"'{info.task}' (coordinates) cannot move with them: drop it.")
        std = torch.tensor(info.std, device=device).view(1, -1, 1, 1)
        mean = torch.tensor(info.mean, device=device).view(1, -1, 1, 1)
        self.std, self.mean = std, mean
        # (x - mean) / std as a multiply and an add, for [0, 1] pixels and for bytes
        self.scale, self.shift = 1 / std, -mean / std
        self.byte_scale = self.scale / 255

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, *,
                 train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(model inputs, targets for the loss, targets for the metrics): the two differ only after
        a transform that makes soft targets, when metrics keep the labels from before it."""
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        if targets.dtype == torch.uint8:  # masks stored as bytes: class ids for the loss
            targets = targets.long()
        if not (train and self.transforms):
            images, targets = self._center_crop(images, targets)
            if images.dtype == torch.uint8:
                images = self._normalised(images)
            return images, targets, targets  # float images come normalised
        pixels = images if images.dtype == torch.uint8 else images * self.std + self.mean
        labels = None
        for transform in self.transforms:
            if not transform.geometric:
                pixels, targets = self._center_crop(pixels, targets)
                if pixels.dtype == torch.uint8:
                    pixels = pixels.float().div_(255)
            if transform.soft_targets and labels is None:
                labels = targets
            if transform.reports_affine:
                pixels, targets, matrices = transform.moved(pixels, targets, self.generator)
                targets = self.task.move_targets(targets, matrices, tuple(pixels.shape[-2:]), self.info)
            else:
                pixels, targets = transform(pixels, targets, self.generator)
        pixels, targets = self._center_crop(pixels, targets)
        return self._normalised(pixels), targets, targets if labels is None else labels

    def _normalised(self, pixels: torch.Tensor) -> torch.Tensor:
        """Bytes or [0, 1] pixels, normalised into one new float tensor (x * scale + shift)."""
        if pixels.dtype == torch.uint8:  # into the standard layout, whatever strides a transform left
            return pixels.to(torch.float32, memory_format=torch.contiguous_format).mul_(self.byte_scale).add_(self.shift)
        return pixels.mul(self.scale).add_(self.shift)

    def _center_crop(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop the centre ``image_size`` of images stored larger (the folder cache keeps a margin
        for random crops); masks are cropped with them."""
        height, width = images.shape[-2:]
        if (height, width) == self.size:
            return images, targets
        if height < self.size[0] or width < self.size[1]:
            raise ConfigError(f"Training images are {height}x{width} after the transforms, smaller than the data "
                              f"set's image_size {self.size[0]}x{self.size[1]}: give random_resized_crop (or the "
                              f"transform that shrinks them) image_size=[{self.size[0]}, {self.size[1]}].")
        top, left = (height - self.size[0]) // 2, (width - self.size[1]) // 2
        window = (..., slice(top, top + self.size[0]), slice(left, left + self.size[1]))
        if targets.dim() == 3 and tuple(targets.shape[-2:]) == (height, width):  # masks
            return images[window], targets[window]
        if self.task.targets_have_coordinates:
            shift = torch.eye(3, device=images.device).repeat(len(images), 1, 1)
            shift[:, 0, 2], shift[:, 1, 2] = -left, -top
            targets = self.task.move_targets(targets, shift, self.size, self.info)
        return images[window], targets
