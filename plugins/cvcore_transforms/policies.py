"""TrivialAugment (Muller and Hutter, 2021), wide version, per image: each image gets one operation
and one magnitude, both uniform; the images that drew an operation are transformed together."""

from __future__ import annotations

import math

import torch

from cvcore_transforms import photometric as ph
from cvcore_transforms.draws import chance
from cvcore_transforms.geometric import MapsWhenAsked, identities, is_mask, warp


def _affine(kind: str, magnitude: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 2, 3) maps from output to input in [-1, 1] coordinates, as torchvision's policies apply
    them: shear by a factor about the top-left corner, translate by whole pixels (truncated), rotate
    by degrees about the centre."""
    theta = torch.zeros(len(magnitude), 2, 3, device=magnitude.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if kind == "shear_x":
        theta[:, 0, 1] = theta[:, 0, 2] = magnitude * height / width
    elif kind == "shear_y":
        theta[:, 1, 0] = theta[:, 1, 2] = magnitude * width / height
    elif kind == "translate_x":
        theta[:, 0, 2] = -magnitude.trunc() * 2 / width
    elif kind == "translate_y":
        theta[:, 1, 2] = -magnitude.trunc() * 2 / height
    else:
        angle = magnitude * math.pi / 180
        theta[:, 0, 0] = theta[:, 1, 1] = angle.cos()
        theta[:, 0, 1], theta[:, 1, 0] = -angle.sin() * height / width, angle.sin() * width / height
    return theta


# name -> (largest magnitude, whether its sign is random); torchvision's TrivialAugmentWide space
SPACE = {
    "identity": (0.0, False), "shear_x": (0.99, True), "shear_y": (0.99, True), "translate_x": (32.0, True),
    "translate_y": (32.0, True), "rotate": (135.0, True), "brightness": (0.99, True), "color": (0.99, True),
    "contrast": (0.99, True), "sharpness": (0.99, True), "posterize": (6.0, False), "solarize": (1.0, False),
    "autocontrast": (0.0, False), "equalize": (0.0, False),
}
_AFFINE = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
_BLENDS = {"brightness": ph.brightness, "color": ph.saturation, "contrast": ph.contrast, "sharpness": ph.sharpness}


def magnitude(name: str, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Operation ``name``'s strength at each drawn ``level`` in [0, 1], with its ``sign`` where
    the space draws one."""
    largest, signed = SPACE[name]
    return level * largest * (sign if signed else 1)


def pixel_matrices(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 3, 3) maps from input to output pixel coordinates of grid_sample's ``theta`` (N, 2, 3),
    which maps output to input in [-1, 1] coordinates (align_corners=False)."""
    to_unit = torch.tensor([[2 / width, 0, -1], [0, 2 / height, -1], [0, 0, 1]], device=theta.device,
                           dtype=torch.float64)
    sampled = torch.cat([theta.double(), to_unit[2:].expand(len(theta), 1, 3)], 1)
    return torch.linalg.inv(torch.linalg.inv(to_unit) @ sampled @ to_unit).float()


class TrivialAugment(MapsWhenAsked):
    """One of ``SPACE``'s operations per image, at a magnitude drawn from ``bins`` levels; its
    maps are those of its shears, translations and rotations (identity for the others)."""

    def __init__(self, bins: int, ignore_index: int) -> None:
        self.bins, self.ignore_index = bins, ignore_index

    def applied(self, images, targets, generator):
        chosen, level, sign = self.draw(images, generator)
        apply = self.applied_by_operation if images.device.type == "cpu" else self.applied_together
        return apply(images, targets, chosen, level, sign)

    def applied_together(self, images, targets, chosen, level, sign):
        """Every operation is applied to the whole batch and each image keeps the one it drew: a
        fixed number of operations whatever the batch size, and no count read back to the host.
        The shears, translations and rotations are one resampling (identity for the others)."""
        count, (height, width) = len(images), images.shape[-2:]
        theta = identities(count, images)[:, :2]
        for index, name in enumerate(SPACE):
            if name in _AFFINE:
                drawn = _affine(name, magnitude(name, level, sign), height, width)
                theta = torch.where((chosen == index).view(-1, 1, 1), drawn, theta)
        out, targets = warp(images, targets, theta, self.ignore_index)
        for index, name in enumerate(SPACE):
            if name not in _AFFINE and name != "identity":
                changed = self._apply(name, images, None, magnitude(name, level, sign))[0]
                out = torch.where((chosen == index).view(-1, 1, 1, 1), changed, out)
        return out, targets, theta

    def applied_by_operation(self, images, targets, chosen, level, sign):
        """:meth:`applied_together` on the CPU: each operation on the images that drew it, and only
        those. There, finding them waits for nothing, and a batch then costs one operation per
        image instead of all fourteen (at 224 px about ten times as fast); the same pixels."""
        masks = targets if is_mask(targets, images) else None
        out, moved = images.clone(), None if masks is None else masks.clone()
        theta = identities(len(images), images)[:, :2]
        for index, name in enumerate(SPACE):
            if name == "identity":
                continue
            picked = (chosen == index).nonzero()[:, 0]
            if not len(picked):  # its shape: no read on the CPU
                continue
            out[picked], picked_masks, picked_theta = self._apply(
                name, images[picked], None if masks is None else masks[picked],
                magnitude(name, level[picked], sign[picked]))
            if picked_masks is not None:
                moved[picked] = picked_masks
            if picked_theta is not None:
                theta[picked] = picked_theta
        return out, targets if masks is None else moved, theta

    def maps(self, theta, images):
        return pixel_matrices(theta, *images.shape[-2:])

    def draw(self, images, generator):
        """Per image: the index of its operation in SPACE, its level in [0, 1] and a sign (-1 or 1)."""
        count, device = len(images), images.device
        chosen = torch.randint(0, len(SPACE), (count,), device=device, generator=generator)
        level = torch.randint(0, self.bins, (count,), device=device, generator=generator).float() / (self.bins - 1)
        return chosen, level, torch.where(chance(0.5, count, images, generator), -1.0, 1.0)

    def _apply(self, name, images, masks, magnitude):
        """(images, masks, the affine theta or None) after operation ``name``."""
        if name in _BLENDS:
            return _BLENDS[name](images, 1 + magnitude), masks, None
        if name == "posterize":
            return ph.posterize(images, 8 - magnitude.round()), masks, None
        if name == "solarize":
            return ph.solarize(images, 1 - magnitude), masks, None
        if name == "autocontrast":
            return ph.autocontrast(images), masks, None
        if name == "equalize":
            return ph.equalize(images), masks, None
        theta = _affine(name, magnitude, *images.shape[-2:])
        targets = masks if masks is not None else torch.zeros(len(images), device=images.device)
        warped, moved = warp(images, targets, theta, self.ignore_index)
        return warped, moved if masks is not None else None, theta
