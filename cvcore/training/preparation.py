"""From loader batches to model inputs, on the training device: pixels to normalised floats, the
training transforms, and the centre crop to the data set's image size (before the first transform
that changes pixel values, so that colour changes, erasing and mixing work on kept pixels only and
cutmix's label shares count only what the model sees).

Batches of images of different sizes (the folder cache's whole photos) come with their extents:
transforms that read them (``Transform.reads_extents``: random crops) draw within each image;
before any other transform, and in validation, each image is cropped around its own centre.

Data sets may serve uint8 pixels (in-memory sets and the folder cache do: a quarter of the bytes
to move) or float images already normalised with the data's mean and std (torchvision pipelines).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cvcore.errors import ConfigError
from cvcore.transforms import Transform, crop_windows


class Preparation:
    """Prepares batches for one data set on one device; ``transforms`` apply to training batches."""

    def __init__(self, info, device: torch.device, transforms: Sequence[Transform] = (),
                 generator: torch.Generator | None = None) -> None:
        from cvcore.tasks import Task, task_for

        self.size, self.device, self.info = tuple(info.image_size), device, info
        self.transforms, self.generator = list(transforms), generator
        self.task = task_for(info.task)
        # Transforms report their affine maps only to a task that moves its targets with them.
        self.moves_targets = self.task.targets_have_coordinates or type(self.task).move_targets is not Task.move_targets
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
        # What images of different sizes are cropped to before a transform that does not read their
        # extents: the shorter side every stored image has (eval_resize), as a square.
        side = max(info.eval_resize or 0, *self.size)
        self.square = (side, side)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, extents: torch.Tensor | None = None, *,
                 train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(model inputs, targets for the loss, targets for the metrics): the two differ only after
        a transform that makes soft targets, when metrics keep the labels from before it.
        ``extents``: (N, 2) (height, width) of each image at the top-left of its canvas, if they differ."""
        if images.device != self.device or targets.device != self.device:  # a DataLoader's batch
            images, targets = images.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)
            extents = None if extents is None else extents.to(self.device, non_blocking=True)
        if targets.dtype == torch.uint8:  # masks stored as bytes: class ids for the loss
            targets = targets.long()
        if not (train and self.transforms):
            images, targets = self._center_crop(images, targets, extents)
            if images.dtype == torch.uint8:
                images = self.normalised(images)
            return images, targets, targets  # float images come normalised
        pixels = images if images.dtype == torch.uint8 else images * self.std + self.mean
        labels = None
        for transform in self.transforms:
            if extents is not None and not transform.reads_extents:
                pixels, targets = self._center_crop(pixels, targets, extents, self.square)
                extents = None
            if not transform.geometric:
                pixels, targets = self._center_crop(pixels, targets)
                if pixels.dtype == torch.uint8:  # in the standard layout: see cvcore.Transform.geometric
                    pixels = pixels.to(torch.float32, memory_format=torch.contiguous_format).div_(255)
            if transform.soft_targets and labels is None:
                labels = targets
            given = {"extents": extents} if extents is not None else {}
            if transform.reports_affine and self.moves_targets:
                pixels, targets, matrices = transform.moved(pixels, targets, self.generator, **given)
                targets = self.task.move_targets(targets, matrices, tuple(pixels.shape[-2:]), self.info)
            else:
                pixels, targets = transform(pixels, targets, self.generator, **given)
            extents = None  # a transform that reads extents returns whole images
        pixels, targets = self._center_crop(pixels, targets, extents)
        return self.normalised(pixels), targets, targets if labels is None else labels

    def normalised(self, pixels: torch.Tensor) -> torch.Tensor:
        """Bytes or [0, 1] pixels, normalised into one new float tensor (x * scale + shift)."""
        if pixels.dtype == torch.uint8:  # into the standard layout, whatever strides a transform left
            return pixels.to(torch.float32, memory_format=torch.contiguous_format).mul_(self.byte_scale).add_(self.shift)
        return pixels.mul(self.scale).add_(self.shift)

    def _center_crop(self, images: torch.Tensor, targets: torch.Tensor, extents: torch.Tensor | None = None,
                     size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop the centre ``size`` (default ``image_size``) of images stored larger (the folder
        cache keeps whole photos), of each image's extent when given (rounded as torchvision's
        CenterCrop); masks and coordinates are moved with them."""
        size = size or self.size
        height, width = images.shape[-2:]
        if (height, width) == size and extents is None:
            return images, targets
        if height < size[0] or width < size[1]:
            raise ConfigError(f"Training images are {height}x{width} after the transforms, smaller than the data "
                              f"set's image_size {size[0]}x{size[1]}: give random_resized_crop (or the "
                              f"transform that shrinks them) image_size=[{size[0]}, {size[1]}].")
        if extents is None:
            top, left = (height - size[0]) // 2, (width - size[1]) // 2
        else:  # per image; torch.round halves to even, as Python's round in torchvision's CenterCrop
            top, left = (((extents[:, axis] - size[axis]) / 2).round().clamp(min=0).long() for axis in (0, 1))
        if targets.dim() == 3 and tuple(targets.shape[-2:]) == (height, width):  # masks
            return _window(images, top, left, size), _window(targets.unsqueeze(1), top, left, size).squeeze(1)
        if self.task.targets_have_coordinates:
            shift = torch.eye(3, device=images.device).repeat(len(images), 1, 1)
            shift[:, 0, 2], shift[:, 1, 2] = -left, -top
            targets = self.task.move_targets(targets, shift, size, self.info)
        return _window(images, top, left, size), targets


def _window(batch: torch.Tensor, top, left, size: tuple[int, int]) -> torch.Tensor:
    """The ``size`` window at (top, left) of every image: numbers, or a tensor of one per image."""
    if isinstance(top, int):
        return batch[..., top:top + size[0], left:left + size[1]]
    return crop_windows(batch, top, left, size)
