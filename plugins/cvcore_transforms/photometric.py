"""Transforms that change pixel values only (targets pass through), with one factor per image.

Each operation blends an image with a "degenerate" version of it, as PIL's ImageEnhance and
torchvision do: factor 0 gives the degenerate image, 1 the original, above 1 pushes away from it.
"""

from __future__ import annotations

import math

import torch

import cvcore
from cvcore_transforms.draws import boxes, chance, first_true, offsets, uniform, inside

_LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as torchvision weighs it


def per_image(factor: torch.Tensor) -> torch.Tensor:
    return factor.view(-1, 1, 1, 1)


def blend(images: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (degenerate + per_image(factor) * (images - degenerate)).clamp_(0, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] != 3:
        return images
    weights = images.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True).expand_as(images)


def brightness(images, factor):
    return blend(images, torch.zeros_like(images), factor)


def contrast(images, factor):
    return blend(images, grayscale(images).mean(dim=(1, 2, 3), keepdim=True).expand_as(images), factor)


def saturation(images, factor):
    return blend(images, grayscale(images), factor)


def sharpness(images, factor):
    """Blend with a smoothed copy (3x3 kernel, centre weight 5, over 13); the border pixels stay as
    they were. The kernel is a 3x3 box sum plus 4 centres: shifted additions, several times faster
    than a depthwise convolution on the CPU."""
    rows = images[..., :-2, :] + images[..., 1:-1, :] + images[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    smooth = images.clone()
    smooth[..., 1:-1, 1:-1] = (box + 4 * images[..., 1:-1, 1:-1]) / 13
    return blend(images, smooth, factor)


def hue(images, shift):
    """Shift hues by ``shift`` turns per image in HSV space, as torchvision's ``adjust_hue`` does."""
    if images.shape[1] != 3:
        return images
    hues, saturation, value = rgb_to_hsv(images).unbind(1)
    return hsv_to_rgb(torch.stack([(hues + per_image(shift)[:, 0]).remainder(1.0), saturation, value], 1))


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] to hue (turns), saturation and value; grey pixels get hue 0."""
    red, green, blue = images.unbind(1)
    low, high = images.aminmax(dim=1)
    spread = high - low
    divisor = torch.where(spread > 0, spread, torch.ones_like(spread))
    sextant = torch.where(high == red, (green - blue) / divisor,
                          torch.where(high == green, 2 + (blue - red) / divisor, 4 + (red - green) / divisor))
    saturation = spread / torch.where(spread > 0, high, torch.ones_like(high))
    return torch.stack([(sextant / 6 + 1).fmod(1.0), saturation, high], 1)


# For each sextant of the hue circle, which of (v, p, q, t) each of R, G and B takes.
_SEXTANT_CHANNELS = ((0, 3, 1), (2, 0, 1), (1, 0, 3), (1, 2, 0), (3, 1, 0), (0, 1, 2))


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    hues, saturation, value = hsv.unbind(1)
    scaled = hues * 6
    sextant = scaled.floor()
    fraction = scaled - sextant
    p = (value * (1 - saturation)).clamp(0, 1)
    q = (value * (1 - saturation * fraction)).clamp(0, 1)
    t = (value * (1 - saturation * (1 - fraction))).clamp(0, 1)
    table = torch.tensor(_SEXTANT_CHANNELS, device=hsv.device)[sextant.long().remainder(6)]  # (N, H, W, 3)
    return torch.stack([value, p, q, t], 1).gather(1, table.permute(0, 3, 1, 2))


def solarize(images, threshold):
    return torch.where(images >= per_image(threshold), 1 - images, images)


def posterize(images, bits):
    """Keep the top ``bits`` bits of each 8-bit value."""
    levels = 2 ** (8 - per_image(bits).float())
    return ((images * 255).round() / levels).floor() * levels / 255


def autocontrast(images):
    """Stretch each channel of each image to [0, 1] (channels without range stay as they are)."""
    low = images.amin(dim=(2, 3), keepdim=True)
    high = images.amax(dim=(2, 3), keepdim=True)
    spread = high - low
    return torch.where(spread > 0, (images - low) / spread.clamp_min(1e-12), images)


def equalize(images):
    """Histogram equalisation of each channel of each image, on 8-bit levels, as PIL's ImageOps does."""
    count, channels, height, width = images.shape
    levels = (images * 255).round().long().view(count, channels, -1)
    histogram = torch.zeros(count, channels, 256, device=images.device).scatter_add_(
        2, levels, torch.ones_like(levels, dtype=torch.float))
    last = histogram.gather(2, (histogram > 0).float().cumsum(2).argmax(2, keepdim=True))  # last used level
    step = ((height * width - last) / 255).floor()
    lut = ((histogram.cumsum(2) + step / 2) / step.clamp_min(1)).floor()
    lut = torch.cat([torch.zeros_like(lut[..., :1]), lut[..., :-1]], 2).clamp_(0, 255)
    equalized = lut.gather(2, levels).view_as(images) / 255
    return torch.where((step > 0).view(count, channels, 1, 1), equalized, images)


# On the CPU, how many bytes of images a transform works on at once: chunks that stay in the
# cache, where whole 224 px batches do not (color_jitter about 2.5x as fast at 224 px, 2 cores).
CPU_CHUNK_BYTES = 2**21


def in_chunks(apply, images: torch.Tensor) -> torch.Tensor:
    """``apply(images[rows], rows)`` of a whole batch, or on the CPU of chunks of CPU_CHUNK_BYTES,
    joined: the same pixels for a transform whose images do not depend on one another."""
    per_chunk = max(1, CPU_CHUNK_BYTES * len(images) // max(1, images.nbytes))
    if images.device.type != "cpu" or per_chunk >= len(images):
        return apply(images, slice(None))
    return torch.cat([apply(images[start:start + per_chunk], slice(start, start + per_chunk))
                      for start in range(0, len(images), per_chunk)])


class ColorJitter(cvcore.Transform):
    """Brightness, contrast and saturation factors drawn uniformly from [1 - x, 1 + x] per image,
    and a hue shift from [-hue, hue] turns, applied in that order to the images chosen with ``p``
    (torchvision's ColorJitter draws the order of the four at random)."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float, p: float) -> None:
        self.brightness, self.contrast, self.saturation, self.hue, self.p = brightness, contrast, saturation, hue, p

    def __call__(self, images, targets, generator):
        count = len(images)
        chosen = per_image(chance(self.p, count, images, generator))
        steps = [(operation, uniform(max(0.0, 1 - spread), 1 + spread, count, images, generator))
                 for operation, spread in ((brightness, self.brightness), (contrast, self.contrast),
                                           (saturation, self.saturation)) if spread]
        if self.hue:
            steps.append((hue, uniform(-self.hue, self.hue, count, images, generator)))

        def jittered(part, rows):
            out = part
            for operation, factor in steps:
                out = operation(out, factor[rows])
            return torch.where(chosen[rows], out, part)

        return in_chunks(jittered, images), targets


class RandomErasing(cvcore.Transform):
    """Erase one box per image chosen with ``p`` (Zhong et al., 2017): a random share ``scale`` of
    the area with aspect ratio (height / width, as torchvision's RandomErasing) in ``ratio``, filled with uniform noise, or a constant ``value``."""

    def __init__(self, p: float, scale: tuple[float, float], ratio: tuple[float, float], value: float | None) -> None:
        self.p, self.scale, self.ratio, self.value = p, tuple(scale), tuple(ratio), value

    def __call__(self, images, targets, generator, tries: int = 10):
        count, (height, width) = len(images), images.shape[-2:]
        area = uniform(*self.scale, count, images, generator, tries) * height * width
        log_ratio = uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), count, images, generator, tries)
        box_w, box_h = boxes(height, width, area, log_ratio)  # torchvision's ratio here is height / width
        fits = (box_h < height) & (box_w < width)
        none = torch.zeros(count, device=images.device)
        box_h, box_w = first_true(fits, box_h, none), first_true(fits, box_w, none)
        top, left = offsets(height - box_h, images, generator), offsets(width - box_w, images, generator)
        erased = inside(height, width, top, left, box_h, box_w) & per_image(chance(self.p, count, images, generator))
        if self.value is None:
            fill = torch.rand(images.shape, device=images.device, generator=generator)
        else:
            fill = torch.full_like(images, self.value)
        return torch.where(erased, fill, images), targets
