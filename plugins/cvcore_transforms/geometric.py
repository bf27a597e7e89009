"""Transforms that move pixels: segmentation masks move with the image (nearest neighbour), and
pixels that come from outside the image are black in the image and the ignore value in the mask."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import cvcore
from cvcore_transforms.draws import boxes, chance, first_true, offsets, uniform


def is_mask(targets: torch.Tensor, images: torch.Tensor) -> bool:
    return targets.dim() == 3 and targets.shape[-2:] == images.shape[-2:]


def identities(count: int, like: torch.Tensor) -> torch.Tensor:
    """(count, 3, 3) identity matrices on ``like``'s device: the affine maps of images left in place."""
    return torch.eye(3, device=like.device).repeat(count, 1, 1)


class PadCrop(cvcore.Transform):
    """Pad every side, then crop back to the original size at a random offset per image."""

    geometric = reports_affine = True

    def __init__(self, padding: int, ignore_index: int) -> None:
        self.padding, self.ignore_index = padding, ignore_index

    def moved(self, images, targets, generator):
        count, pad = len(images), self.padding
        shifts = torch.randint(0, 2 * pad + 1, (2, count), device=images.device, generator=generator)
        crops = shifted_windows(F.pad(images, (pad,) * 4), shifts, images.shape[-2:])
        if is_mask(targets, images):
            padded = F.pad(targets.unsqueeze(1), (pad,) * 4, value=self.ignore_index)
            targets = shifted_windows(padded, shifts, images.shape[-2:]).squeeze(1)
        matrices = identities(count, images)
        matrices[:, :2, 2] = pad - shifts.T.flip(1).float()  # (x, y) move by padding minus (dx, dy)
        return crops, targets, matrices


def shifted_windows(batch: torch.Tensor, shifts: torch.Tensor, size) -> torch.Tensor:
    """The window of ``size`` at (shifts[0][i], shifts[1][i]) of each image: one gather over a view."""
    windows = batch.unfold(2, size[0], 1).unfold(3, size[1], 1)  # (N, C, dy, dx, H, W)
    return windows[torch.arange(len(batch), device=batch.device), :, shifts[0], shifts[1]]


class Flip(cvcore.Transform):
    """Mirror each image with probability ``p``, left-right (or upside down)."""

    geometric = reports_affine = True

    def __init__(self, p: float, vertical: bool) -> None:
        self.p, self.vertical = p, vertical

    def moved(self, images, targets, generator):
        flipped = chance(self.p, len(images), images, generator)
        # Each image is read from the batch or its mirror: one index_select, faster than a where.
        pick = torch.arange(len(images), device=images.device) + flipped * len(images)
        axis = -2 if self.vertical else -1
        if is_mask(targets, images):
            targets = torch.cat([targets, targets.flip(axis)]).index_select(0, pick)
        matrices = identities(len(images), images)
        row = 1 if self.vertical else 0  # x' = W - x (or y' = H - y) for the mirrored images
        matrices[:, row, row] = 1 - 2 * flipped.float()
        matrices[:, row, 2] = flipped.float() * images.shape[axis]
        return torch.cat([images, images.flip(axis)]).index_select(0, pick), targets, matrices


class RandomResizedCrop(cvcore.Transform):
    """torchvision's RandomResizedCrop, drawn per image: a box of a random share of the area and
    aspect ratio (ten tries, then the largest centred box within the ratios), resized to ``size``
    (bilinear with antialiasing; masks: nearest-exact, which keeps pixel centres aligned)."""

    geometric = reports_affine = True

    def __init__(self, size: tuple[int, int], scale: tuple[float, float], ratio: tuple[float, float]) -> None:
        self.size, self.scale, self.ratio = tuple(size), tuple(scale), tuple(ratio)

    def moved(self, images, targets, generator):
        drawn = torch.stack(self.draw(images, generator), 1)  # (top, left, height, width) per image
        crops = drawn.int().tolist()  # one copy to the host
        out = images.new_empty((len(images), images.shape[1], *self.size))
        masks = is_mask(targets, images)
        moved = targets.new_empty((len(images), *self.size)) if masks else targets
        for i, (y, x, h, w) in enumerate(crops):
            out[i] = resized(images[i:i + 1, :, y:y + h, x:x + w], self.size)
            if masks:
                crop = targets[i:i + 1, y:y + h, x:x + w].unsqueeze(1).float()
                moved[i] = F.interpolate(crop, self.size, mode="nearest-exact")[0, 0].to(targets.dtype)
        return out, moved, self._matrices(drawn.float())

    def _matrices(self, drawn: torch.Tensor) -> torch.Tensor:
        """x' = (x - left) * W' / width, y' = (y - top) * H' / height, per image."""
        matrices = identities(len(drawn), drawn)
        scale = torch.tensor(self.size[::-1], device=drawn.device) / drawn[:, [3, 2]]  # (x, y) scales
        matrices[:, 0, 0], matrices[:, 1, 1] = scale[:, 0], scale[:, 1]
        matrices[:, :2, 2] = -drawn[:, [1, 0]] * scale
        return matrices

    def draw(self, images, generator, tries: int = 10):
        """(top, left, height, width) of one box per image, as torchvision draws them."""
        count, (height, width) = len(images), images.shape[-2:]
        area = uniform(*self.scale, count, images, generator, tries) * height * width
        log_ratio = uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), count, images, generator, tries)
        box_h, box_w = boxes(height, width, area, log_ratio)
        fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
        fallback_h, fallback_w = self._central(height, width)
        box_h = first_true(fits, box_h, torch.full((count,), fallback_h, device=images.device, dtype=box_h.dtype))
        box_w = first_true(fits, box_w, torch.full((count,), fallback_w, device=images.device, dtype=box_w.dtype))
        drawn = fits.any(1)  # a box that fell back to the central one is centred, as torchvision places it
        top = torch.where(drawn, offsets(height - box_h, images, generator), ((height - box_h) / 2).floor())
        left = torch.where(drawn, offsets(width - box_w, images, generator), ((width - box_w) / 2).floor())
        return top, left, box_h, box_w

    def _central(self, height: int, width: int) -> tuple[float, float]:
        aspect = width / height
        if aspect < self.ratio[0]:
            return float(round(width / self.ratio[0])), float(width)
        if aspect > self.ratio[1]:
            return float(height), float(round(height * self.ratio[1]))
        return float(height), float(width)


def resized(crop: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear with antialiasing, as torchvision resizes; bytes stay bytes (the CPU resizes them
    directly, fast; other devices go through floats)."""
    if crop.dtype == torch.uint8 and crop.device.type != "cpu":
        floats = F.interpolate(crop.float(), size, mode="bilinear", antialias=True, align_corners=False)
        return floats[0].round_().clamp_(0, 255).to(torch.uint8)
    return F.interpolate(crop, size, mode="bilinear", antialias=True, align_corners=False)[0]


def warp(images: torch.Tensor, targets: torch.Tensor, theta: torch.Tensor, ignore_index: int):
    """Resample each image through its affine map ``theta`` (N, 2, 3) from output to input, in
    coordinates normalised to [-1, 1]; nearest neighbour, as torchvision's policies sample."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # Sampling a channel of ones tells which output pixels came from inside the image.
    ones = images.new_ones((len(images), 1, *images.shape[-2:]))
    sampled = F.grid_sample(torch.cat([images, ones], 1), grid, mode="nearest", align_corners=False)
    images = sampled[:, :-1]
    if is_mask(targets, images):
        moved = F.grid_sample(targets.unsqueeze(1).float(), grid, mode="nearest", align_corners=False)[:, 0]
        targets = torch.where(sampled[:, -1] > 0.5, moved, float(ignore_index)).to(targets.dtype)
    return images, targets
