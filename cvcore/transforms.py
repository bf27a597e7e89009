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
    #: times less memory traffic than floats. The batch is made float before the first transform
    #: that is not geometric.
    geometric: bool = False

    def __call__(self, images: torch.Tensor, targets: torch.Tensor,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({options})"
