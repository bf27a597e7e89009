"""The transform protocol: augmentations applied to whole training batches on the training device.

A transform receives a batch of images as float32 ``(N, C, H, W)`` pixels in [0, 1] (before
normalisation; geometric transforms may receive uint8 pixels, see ``geometric``), its targets,
and the generator to draw from, and returns both, augmented. It
draws its parameters per image (one crop, one flip, one colour change per image), so a batch
holds as many different augmentations as images, with a handful of tensor operations.

Targets come as the task made them: class ids ``(N,)``, multi-hot rows ``(N, K)``, or masks
``(N, H, W)``, which a geometric transform moves with the image (nearest neighbour, uncovered
pixels set to the data's ignore value). A transform that mixes images (mixup, cutmix) returns
class probabilities ``(N, num_classes)`` and sets ``soft_targets``; metrics are then measured
against the labels the batch had before it.

A transform that moves pixels by an affine map per image says so (``reports_affine``) and returns
the maps from :meth:`Transform.moved`; the task then moves targets that hold coordinates (points,
boxes) with them (:meth:`cvcore.Task.move_targets`), so such a task works with every transform that
reports, and a transform that reports works with every such task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class Transform:
    """Override ``__call__``; options arrive through the factory that builds the transform."""

    #: True when the transform turns class ids into class probabilities (mixup, cutmix).
    soft_targets: bool = False
    #: True when the transform only moves pixels (crops, flips): it then also receives, and must
    #: return, uint8 batches (values 0-255) when the data is stored as bytes, which is up to four
    #: times less memory traffic than floats, and they may be channels last in memory (the folder
    #: cache's are: index with :func:`take_images`, reshape rather than view). The batch is made
    #: float, in the standard layout, before the first transform that is not geometric.
    geometric: bool = False
    #: True when :meth:`moved` is implemented: the transform says, per image, the affine map by
    #: which it moved pixels (identity for an image it left in place). A task whose targets hold
    #: coordinates refuses a geometric transform that does not report.
    reports_affine: bool = False
    #: True when the transform takes ``extents=``: a batch of images of different sizes (the
    #: folder cache's whole photos) comes as one canvas with each image at its top-left and an
    #: ``(N, 2)`` long tensor of their (height, width); the transform uses each image's pixels
    #: only and returns whole images of one size. Other transforms receive batches that were
    #: first cropped around each image's centre. (Since 0.2.)
    reads_extents: bool = False

    def __call__(self, images: torch.Tensor, targets: torch.Tensor,
                 generator: torch.Generator | None, **given) -> tuple[torch.Tensor, torch.Tensor]:
        if self.reports_affine:
            return self.moved(images, targets, generator, **given)[:2]
        raise NotImplementedError

    def moved(self, images: torch.Tensor, targets: torch.Tensor,
              generator: torch.Generator | None, **given) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What ``__call__`` returns, plus ``(N, 3, 3)`` float32 matrices taking each input image's
        pixel coordinates ``(x, y, 1)`` to its output's. Coordinates are continuous: (0, 0) is the
        top-left corner of the top-left pixel, (W, H) the bottom-right corner of the image."""
        raise NotImplementedError

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({options})"


def crop_windows(batch: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The ``size`` (height, width) window at (tops[i], lefts[i]) of each image of ``batch``
    (N, C, H, W): one gather over a strided view, whatever the batch size."""
    import torch

    grid = batch.unfold(2, size[0], 1).unfold(3, size[1], 1)  # (N, C, rows, columns, height, width)
    return grid[torch.arange(len(batch), device=batch.device), :, tops, lefts]


def take_images(batch: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``batch.index_select(0, index)`` in the batch's own memory format: a channels-last batch
    (the folder cache stores whole photos so) stays channels last, where index_select would
    reorder every byte into the standard layout, which costs twice the gather. (Since 0.2.)"""
    import torch

    if batch.dim() == 4 and not batch.is_contiguous() and batch.is_contiguous(memory_format=torch.channels_last):
        return batch.permute(0, 2, 3, 1).index_select(0, index).permute(0, 3, 1, 2)
    return batch.index_select(0, index)


def move_points(points: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Points ``(N, K, 2)`` (x, y per point) of each image moved by its ``(N, 3, 3)`` matrix."""
    return points @ matrices[:, :2, :2].transpose(1, 2) + matrices[:, None, :2, 2]

