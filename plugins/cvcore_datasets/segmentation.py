"""Segmentation data: the procedural `shapes` set and `segfolder` (images/ + masks/ on disk)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

from cvcore import IGNORE_INDEX as IGNORE
from cvcore import DataError, DataInfo, DataSplits, TensorImages
from cvcore_datasets import FLIP, LARGE_CROP_AND_FLIP
from cvcore.cache import image_split, read_mask
from cvcore.images import IMAGE_SUFFIXES
from cvcore_datasets.vision import IMAGENET_MEAN, IMAGENET_STD, image_files_in

SHAPES = ("background", "circle", "square", "triangle")


def _uniform(low, high, count: int, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def draw_shapes(count: int, size: int, seed: int, max_shapes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` RGB images (uint8) of random circles, squares and triangles on noisy backgrounds,
    and their masks (class id per pixel). Colours are random, so only the shape tells the class."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    images = torch.rand(count, 3, 1, 1, generator=generator).expand(count, 3, size, size).clone()
    masks = torch.zeros(count, size, size, dtype=torch.long)
    for slot in range(max_shapes):
        present = torch.rand(count, generator=generator) < (1.0 if slot == 0 else 0.6)
        kind = torch.randint(1, len(SHAPES), (count,), generator=generator)
        radius = _uniform(size * 0.12, size * 0.25, count, generator).view(-1, 1, 1)
        cx = _uniform(0, 1, count, generator).view(-1, 1, 1) * (size - 2 * radius) + radius
        cy = _uniform(0, 1, count, generator).view(-1, 1, 1) * (size - 2 * radius) + radius
        dx, dy = xs - cx, ys - cy
        regions = {
            1: dx**2 + dy**2 <= radius**2,
            2: (dx.abs() <= radius * 0.85) & (dy.abs() <= radius * 0.85),
            3: (dy <= radius * 0.8) & (dx.abs() <= (dy + radius) * math.tan(math.pi / 6)),
        }
        inside = torch.zeros_like(masks, dtype=torch.bool)
        for shape_id, region in regions.items():
            inside |= region & (kind == shape_id).view(-1, 1, 1)
        inside &= present.view(-1, 1, 1)
        masks[inside] = kind.view(-1, 1, 1).expand_as(masks)[inside]
        colour = torch.rand(count, 3, 1, 1, generator=generator).expand(count, 3, size, size)
        images = torch.where(inside.unsqueeze(1), colour, images)
    images = images + 0.12 * torch.randn(images.shape, generator=generator)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), masks


def load_shapes(count: int, size: int, val_fraction: float, seed: int, augment: bool) -> DataSplits:
    images, masks = draw_shapes(count, size, seed)
    n_val = max(1, int(round(count * val_fraction)))
    scaled = images[n_val:].float() / 255
    mean = tuple(scaled.mean(dim=(0, 2, 3)).tolist())
    std = tuple(scaled.std(dim=(0, 2, 3)).tolist())
    info = DataInfo(task="segmentation", num_classes=len(SHAPES), class_names=SHAPES, in_channels=3,
                    image_size=(size, size), mean=mean, std=std, ignore_index=IGNORE)
    return DataSplits(TensorImages(images[n_val:], masks[n_val:]), TensorImages(images[:n_val], masks[:n_val]), info,
                      transforms=FLIP if augment else ())


def find_pairs(root: Path) -> list[tuple[Path, Path]]:
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise DataError(f"segfolder root '{root}' needs images/ and masks/ folders with matching file names "
                        f"(masks: PNG, pixel value = class id).")
    pairs, missing = [], []
    for image in image_files_in(images, sorted(p for p in images.iterdir() if p.is_file())):
        mask = masks / f"{image.stem}.png"
        (pairs if mask.exists() else missing).append((image, mask))
    if missing:
        raise DataError(f"{len(missing)} image(s) in '{images}' have no mask in '{masks}', e.g. "
                        f"'{missing[0][1].name}' for '{missing[0][0].name}'.")
    if not pairs:
        raise DataError(f"No images ({' '.join(IMAGE_SUFFIXES)}) found in '{images}'.")
    return pairs


def count_classes(pairs: list[tuple[Path, Path]], masks: Path) -> int:
    """1 + the largest class id in any mask (255, the ignore value, excluded), read from every mask;
    masks that are mostly the ignore value (binary masks saved as 0/255) or ids with gaps (a stray
    value) are reported, since either trains a model on something else than meant."""
    counts = np.zeros(256, dtype=np.int64)
    for _, mask_path in pairs:
        counts += np.bincount(np.asarray(read_mask(mask_path)).ravel(), minlength=256)[:256]
    ids = [int(i) for i in np.flatnonzero(counts) if i != IGNORE]
    ignored = counts[IGNORE] / max(counts.sum(), 1)
    binary = "; binary masks saved as 0/255? store the foreground as 1" if ignored > 0.05 else ""
    if len(ids) < 2:
        raise DataError(f"The masks in '{masks}' hold {len(ids)} class id(s) ({ids}) besides {IGNORE} (ignored, "
                        f"{ignored:.0%} of the pixels): segmentation needs at least two classes{binary}.")
    if ignored > 0.5:
        print(f"warning: {ignored:.0%} of the mask pixels in '{masks}' are {IGNORE}, the ignore value, and count "
              f"in no loss or metric{binary}.", file=sys.stderr)
    absent = sorted(set(range(ids[-1] + 1)) - set(ids))
    if absent:
        print(f"warning: the masks in '{masks}' use class ids {ids}, so {ids[-1] + 1} classes, of which "
              f"{len(absent)} ({', '.join(map(str, absent[:5]))}{' ...' if len(absent) > 5 else ''}) appear in no "
              f"mask: a stray value? Set num_classes and class_names to say what the ids mean.", file=sys.stderr)
    return ids[-1] + 1


def load_segfolder(root: Path, image_size: int, num_classes: int | None, class_names: list[str] | None,
                   val_fraction: float, seed: int, augment: bool, cache: str) -> DataSplits:
    pairs = find_pairs(Path(root))
    found = count_classes(pairs, Path(root) / "masks")
    if num_classes is not None and num_classes < found:
        raise DataError(f"num_classes is {num_classes}, but the masks in '{Path(root) / 'masks'}' hold class id "
                        f"{found - 1}: give num_classes={found} or more (ids run from 0 to num_classes - 1; "
                        f"{IGNORE} is ignored).")
    num_classes = num_classes or found
    names = tuple(class_names) if class_names else tuple(str(i) for i in range(num_classes))
    if len(names) != num_classes:
        raise DataError(f"{len(names)} class names given for {num_classes} classes.")
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, int(round(len(pairs) * val_fraction)))
    chosen = {"train": [pairs[i] for i in order[n_val:]], "val": [pairs[i] for i in order[:n_val]]}
    train, val = (image_split([image for image, _ in chosen[split]], [mask for _, mask in chosen[split]], image_size,
                               split=split, cache=cache) for split in ("train", "val"))
    info = DataInfo(task="segmentation", num_classes=num_classes, class_names=names, in_channels=3,
                    image_size=(image_size, image_size), mean=IMAGENET_MEAN, std=IMAGENET_STD, ignore_index=IGNORE)
    return DataSplits(train, val, info, transforms=LARGE_CROP_AND_FLIP if augment else ())
