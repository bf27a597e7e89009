"""Mixup and cutmix: each image is mixed with another of its batch, and its target becomes the
mixture of the two labels, in proportion to the pixels each contributes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import cvcore
from cvcore_transforms.draws import beta, chance, inside, offsets
from cvcore_transforms.photometric import per_image


def soft(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class probabilities: class ids become one-hot rows; probabilities pass through."""
    return targets.float() if targets.is_floating_point() else F.one_hot(targets, num_classes).float()


class Mixing(cvcore.Transform):
    """The images chosen with ``p`` take a share ``lam ~ Beta(alpha, alpha)`` (one draw per image)
    of themselves and the rest of their partner, the image at the mirrored place in the batch."""

    soft_targets = True

    def __init__(self, alpha: float, p: float, num_classes: int) -> None:
        self.alpha, self.p, self.num_classes = alpha, p, num_classes

    def __call__(self, images, targets, generator):
        count = len(images)
        lam = beta(self.alpha, count, images, generator)
        lam = torch.where(chance(self.p, count, images, generator), lam, torch.ones_like(lam))
        images, lam = self.mix(images, images.flip(0), lam, generator)
        probabilities = soft(targets, self.num_classes)
        return images, lam.view(-1, 1) * probabilities + (1 - lam.view(-1, 1)) * probabilities.flip(0)

    def mix(self, images, partners, lam, generator):
        """The mixed images and the share of each that is still its own."""
        raise NotImplementedError


class Mixup(Mixing):
    """Zhang et al., 2018: a pixel-wise weighted average of the two images."""

    def mix(self, images, partners, lam, generator):
        return per_image(lam) * images + (1 - per_image(lam)) * partners, lam


class CutMix(Mixing):
    """Yun et al., 2019: a box of about ``1 - lam`` of the area, centred at a random pixel and clipped
    to the image, is pasted from the partner; the label share is the pasted box's true area."""

    def mix(self, images, partners, lam, generator):
        height, width = images.shape[-2:]
        side = (1 - lam).sqrt()
        box_h, box_w = (side * height).floor(), (side * width).floor()
        centre_y = offsets(torch.full_like(lam, height - 1), images, generator)
        centre_x = offsets(torch.full_like(lam, width - 1), images, generator)
        top, bottom = (centre_y - box_h // 2).clamp(0, height), (centre_y + box_h // 2).clamp(0, height)
        left, right = (centre_x - box_w // 2).clamp(0, width), (centre_x + box_w // 2).clamp(0, width)
        pasted = inside(height, width, top, left, bottom - top, right - left)
        return torch.where(pasted, partners, images), 1 - (bottom - top) * (right - left) / (height * width)
