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


class MapsWhenAsked(cvcore.Transform):
    """A transform that reports its affine maps, computed from what it drew only when they are
    asked for (:meth:`moved`): a classifier's batches go without them (``__call__``), which at
    32 px were a fifth of a batch's time. Subclasses give :meth:`applied` and :meth:`maps`."""

    reports_affine = True

    def __call__(self, images, targets, generator, **given):
        return self.applied(images, targets, generator, **given)[:2]

    def moved(self, images, targets, generator, **given):
        out, targets, drawn = self.applied(images, targets, generator, **given)
        return out, targets, self.maps(drawn, images)

    def applied(self, images, targets, generator, **given):
        """(images, targets, what was drawn per image, from which :meth:`maps` follow)."""
        raise NotImplementedError

    def maps(self, drawn, images: torch.Tensor) -> torch.Tensor:
        """The (N, 3, 3) maps of :meth:`cvcore.Transform.moved`, from ``drawn`` for the input ``images``."""
        raise NotImplementedError


class PadCrop(MapsWhenAsked):
    """Pad every side, then crop back to the original size at a random offset per image."""

    geometric = True

    def __init__(self, padding: int, ignore_index: int) -> None:
        self.padding, self.ignore_index = padding, ignore_index

    def applied(self, images, targets, generator):
        count, pad = len(images), self.padding
        shifts = torch.randint(0, 2 * pad + 1, (2, count), device=images.device, generator=generator)
        crops = cvcore.crop_windows(F.pad(images, (pad,) * 4), *shifts, images.shape[-2:])
        if is_mask(targets, images):
            padded = F.pad(targets.unsqueeze(1), (pad,) * 4, value=self.ignore_index)
            targets = cvcore.crop_windows(padded, *shifts, images.shape[-2:]).squeeze(1)
        return crops, targets, shifts

    def maps(self, shifts, images):
        matrices = identities(len(images), images)
        matrices[:, :2, 2] = self.padding - shifts.T.flip(1).float()  # (x, y) move by padding minus (dx, dy)
        return matrices


class Flip(MapsWhenAsked):
    """Mirror each image with probability ``p``, left-right (or upside down)."""

    geometric = True

    def __init__(self, p: float, vertical: bool) -> None:
        self.p, self.vertical = p, vertical

    @property
    def axis(self) -> int:
        """The dimension of a batch that the mirror reverses."""
        return -2 if self.vertical else -1

    def applied(self, images, targets, generator):
        flipped = chance(self.p, len(images), images, generator)
        # Each image is read from the batch or its mirror: one index_select, faster than a where.
        pick = torch.arange(len(images), device=images.device) + flipped * len(images)
        axis = self.axis
        if is_mask(targets, images):
            targets = torch.cat([targets, targets.flip(axis)]).index_select(0, pick)
        return cvcore.take_images(torch.cat([images, images.flip(axis)]), pick), targets, flipped

    def maps(self, flipped, images):
        matrices = identities(len(images), images)
        row = 1 if self.vertical else 0  # x' = W - x (or y' = H - y) for the mirrored images
        matrices[:, row, row] = 1 - 2 * flipped.float()
        matrices[:, row, 2] = flipped.float() * images.shape[self.axis]
        return matrices


class RandomResizedCrop(MapsWhenAsked):
    """torchvision's RandomResizedCrop, drawn per image: a box of a random share of the area and
    aspect ratio (ten tries, then the largest centred box within the ratios), resized to ``size``
    (bilinear with antialiasing; masks: nearest-exact, which keeps pixel centres aligned). Of
    images of different sizes (whole photos), each box is drawn within its own image."""

    geometric = reads_extents = True

    def __init__(self, size: tuple[int, int], scale: tuple[float, float], ratio: tuple[float, float]) -> None:
        self.size, self.scale, self.ratio = tuple(size), tuple(scale), tuple(ratio)

    def applied(self, images, targets, generator, extents=None):
        if extents is None:  # every image whole (filled on the device: no copy from the host)
            extents = torch.full((len(images), 2), images.shape[-2], device=images.device, dtype=torch.long)
            extents[:, 1] = images.shape[-1]
        drawn = torch.stack(self.draw(extents, generator), 1)  # (top, left, height, width) per image
        crop = resized_one_by_one if images.device.type == "cpu" else resized_together
        out, masks = crop(images, targets if is_mask(targets, images) else None, drawn, self.size)
        return out, targets if masks is None else masks, drawn

    def maps(self, drawn, images):
        """x' = (x - left) * W' / width, y' = (y - top) * H' / height, per image."""
        matrices = identities(len(drawn), drawn)
        scale = torch.tensor(self.size[::-1], device=drawn.device) / drawn[:, [3, 2]]  # (x, y) scales
        matrices[:, 0, 0], matrices[:, 1, 1] = scale[:, 0], scale[:, 1]
        matrices[:, :2, 2] = -drawn[:, [1, 0]] * scale
        return matrices

    def draw(self, extents: torch.Tensor, generator, tries: int = 10):
        """(top, left, height, width) of one box per image within its ``extents`` (N, 2) (height,
        width), as torchvision draws them."""
        count = len(extents)
        height, width = extents.float().unbind(1)
        area = uniform(*self.scale, count, extents, generator, tries) * (height * width)[:, None]
        log_ratio = uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), count, extents, generator, tries)
        box_h, box_w = boxes(height[:, None], width[:, None], area, log_ratio)
        fits = (box_w > 0) & (box_w <= width[:, None]) & (box_h > 0) & (box_h <= height[:, None])
        fallback_h, fallback_w = self._central(extents)
        box_h, box_w = first_true(fits, box_h, fallback_h), first_true(fits, box_w, fallback_w)
        drawn = fits.any(1)  # a box that fell back to the central one is centred, as torchvision places it
        top = torch.where(drawn, offsets(height - box_h, extents, generator), ((height - box_h) / 2).floor())
        left = torch.where(drawn, offsets(width - box_w, extents, generator), ((width - box_w) / 2).floor())
        return top, left, box_h, box_w

    def _central(self, extents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """torchvision's fallback box per image: the whole image, or its largest centred box
        within the ratios (in float64, as torchvision's Python arithmetic)."""
        height, width = extents.double().unbind(1)
        aspect = width / height
        narrow, wide = aspect < self.ratio[0], aspect > self.ratio[1]
        box_h = torch.where(narrow, (width / self.ratio[0]).round(), height)
        box_w = torch.where(wide, (height * self.ratio[1]).round(), width)
        return box_h.float(), box_w.float()


def resized_together(images, masks, drawn: torch.Tensor, size: tuple[int, int]):
    """Every image's crop resized in two matrix products (bilinear with antialiasing), and its mask
    in one gather (nearest-exact): a fixed number of operations and no read to the host, what a GPU
    needs (one launch per crop, and a wait for the boxes, would cost more than the resizing)."""
    top, left, height, width = drawn.unbind(1)
    rows = resize_weights(top, height, size[0], images.shape[-2])
    columns = resize_weights(left, width, size[1], images.shape[-1])
    pixels = images.float() if images.dtype == torch.uint8 else images
    rows, columns = rows.to(pixels.dtype), columns.to(pixels.dtype)
    out = rows[:, None] @ pixels @ columns[:, None].transpose(-1, -2)
    if images.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    if masks is None:
        return out, None
    ys, xs = nearest_exact(top, height, size[0]), nearest_exact(left, width, size[1])
    return out, masks[torch.arange(len(masks), device=masks.device)[:, None, None], ys[:, :, None], xs[:, None]]


def resized_one_by_one(images, masks, drawn: torch.Tensor, size: tuple[int, int]):
    """:func:`resized_together` on the CPU, crop by crop with torch's own resizing: there an operation
    costs no launch and reading the boxes waits for nothing, and torch's kernels (bytes included)
    are several times faster than the dense products. Channels-last images (the folder cache's)
    stay so: torch resizes bytes in that layout about 1.7 times as fast."""
    layout = torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty((len(images), images.shape[1], *size), dtype=images.dtype, device=images.device,
                      memory_format=layout)
    moved = None if masks is None else masks.new_empty((len(images), *size))
    for i, (y, x, h, w) in enumerate(drawn.int().tolist()):
        out[i] = F.interpolate(images[i:i + 1, :, y:y + h, x:x + w], size, mode="bilinear", antialias=True,
                               align_corners=False)[0]
        if masks is not None:
            crop = masks[i:i + 1, y:y + h, x:x + w].unsqueeze(1).float()
            moved[i] = F.interpolate(crop, size, mode="nearest-exact")[0, 0].to(masks.dtype)
    return out, moved


def resize_weights(start: torch.Tensor, length: torch.Tensor, size: int, extent: int) -> torch.Tensor:
    """(N, size, extent): per image, the weights that resize its pixels [start, start + length)
    along one axis to ``size``, as torch's bilinear interpolation with antialiasing computes them
    (a triangle filter as wide as the scale when shrinking; plain bilinear when enlarging), zero
    outside the crop: one matrix product applies them to a whole batch."""
    scale = length / size
    support = scale.clamp(min=1.0)[:, None, None]
    centre = (scale[:, None] * (torch.arange(size, device=start.device) + 0.5))[..., None]  # in crop pixels
    low = (centre - support + 0.5).trunc().clamp(min=0)
    high = torch.minimum((centre + support + 0.5).trunc(), length[:, None, None])
    source = torch.arange(extent, device=start.device) - start[:, None, None]  # each input pixel, in crop pixels
    weights = (1 - ((source - centre + 0.5) / support).abs()).clamp(min=0) * ((source >= low) & (source < high))
    return weights / weights.sum(-1, keepdim=True)


def nearest_exact(start: torch.Tensor, length: torch.Tensor, size: int) -> torch.Tensor:
    """(N, size) long: the input pixel each output pixel takes along one axis, as torch's
    nearest-exact interpolation picks it (pixel centres aligned), for crops [start, start + length)."""
    picked = ((torch.arange(size, device=start.device) + 0.5) * (length / size)[:, None]).floor()
    return (picked.minimum(length[:, None] - 1) + start[:, None]).long()


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
