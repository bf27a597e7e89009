"""`shapes_boxes`: 1 to 3 shapes per image on a noisy background, with their exact boxes, generated
offline (the detection path end to end with no download)."""

from __future__ import annotations

import torch

import cvcore
from cvcore_detection import FLIP_AND_SHIFT
from cvcore_detection.task import PADDING

CLASSES = ("circle", "square", "triangle")
MOST = 3  # shapes per image at most: the targets' padded length


def _shape_mask(kind: int, size: int, cx: float, cy: float, radius: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    if kind == 0:
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
    if kind == 1:
        return ((xs - cx).abs() <= radius) & ((ys - cy).abs() <= radius)
    return (ys >= cy - radius) & (ys <= cy + radius) & ((xs - cx).abs() <= (ys - (cy - radius)) / 2)


def draw(count: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 3, size, size) and boxes (N, MOST, 5) from the masks drawn (exact extents)."""
    images = (torch.rand(count, 3, size, size, generator=generator) * 60).to(torch.uint8)
    targets = torch.full((count, MOST, 5), float(PADDING))
    for index in range(count):
        shapes = int(torch.randint(1, MOST + 1, (), generator=generator))
        for slot in range(shapes):
            kind = int(torch.randint(0, len(CLASSES), (), generator=generator))
            radius = float(torch.empty(()).uniform_(size * 0.08, size * 0.2, generator=generator))
            cx, cy = (float(v) for v in torch.empty(2).uniform_(radius + 1, size - radius - 1, generator=generator))
            mask = _shape_mask(kind, size, cx, cy, radius)
            colour = torch.randint(120, 256, (3, 1), generator=generator, dtype=torch.int64).to(torch.uint8)
            images[index][:, mask] = colour
            ys, xs = mask.nonzero(as_tuple=True)
            targets[index, slot] = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, kind]).float()
    return images, targets  # a shape partly hidden by a later one keeps its box, as COCO annotates it


def load_shapes_boxes(count: int, size: int, val_fraction: float, seed: int, augment: bool) -> cvcore.DataSplits:
    generator = torch.Generator().manual_seed(seed)
    images, targets = draw(count, size, generator)
    n_val = max(1, round(count * val_fraction))
    scaled = images[n_val:].float() / 255
    mean, std = scaled.mean(dim=(0, 2, 3)).tolist(), scaled.std(dim=(0, 2, 3)).tolist()
    info = cvcore.DataInfo(task="detection:detection", num_classes=len(CLASSES), class_names=CLASSES, in_channels=3,
                           image_size=(size, size), mean=mean, std=std)
    return cvcore.DataSplits(cvcore.TensorImages(images[n_val:], targets[n_val:]),
                             cvcore.TensorImages(images[:n_val], targets[:n_val]), info,
                             transforms=FLIP_AND_SHIFT if augment else ())
