"""Data sets held as one uint8 tensor and batched on the training device.

A :class:`TensorImages` is an ordinary map-style dataset (items are uint8 images and their
targets, so a DataLoader can serve it), and it can also move itself to a device once and build
whole batches there: shuffling with ``torch.randperm``, one ``index_select`` per batch. The
Trainer then normalises the batch and applies the transforms on the same device
(:mod:`cvcore.training.preparation`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Dataset

from cvcore import deprecations
from cvcore.training.distributed import shard
from cvcore.transforms import take_images

IGNORE_INDEX = 255  # the mask value that losses and metrics leave out; transforms fill with it


class TensorImages(Dataset):
    """uint8 images (N, C, H, W) with class ids (N,), multi-hot rows (N, K) or masks (N, H, W).

    Images may be stored larger than the data set's ``image_size`` (the folder cache keeps whole
    photos): batches are centre-cropped after the transforms. Images of different sizes are stored
    at the top-left of one canvas with ``extents`` (N, 2), each one's (height, width): items and
    batches then carry them third, and random crops draw within them. A memory-mapped ``images``
    tensor (a cache larger than memory) stays on the host and batches are copied over.

    ``mean``, ``std``, ``crop_padding`` and ``flip`` are the 0.1 form, deprecated: see
    :mod:`cvcore.deprecations`. ``suggested_transforms`` is what the last two ask for.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, mean=None, std=None, *, mapped: bool = False,
                 crop_padding: int = 0, flip: bool = False, extents: torch.Tensor | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        if extents is not None and (tuple(extents.shape) != (len(images), 2) or (extents < 1).any()
                                    or (extents > torch.tensor(images.shape[-2:])).any()):
            raise ValueError(f"extents must be (N, 2) sizes within the images' {tuple(images.shape[-2:])}")
        self.images, self.targets, self.mapped = images, targets, mapped
        self.extents = None if extents is None else extents.long()
        if mean is not None or std is not None:
            deprecations.TENSOR_IMAGES_NORMALISATION.warn()
        if crop_padding or flip:
            deprecations.TENSOR_IMAGES_AUGMENTATION.warn()
        self.suggested_transforms = ((("pad_crop", {"padding": crop_padding}),) if crop_padding else ()) + (
            ("flip",) if flip else ())

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        item = self.images[index], self.targets[index]
        return item if self.extents is None else (*item, self.extents[index])

    def on_device(self, device: torch.device) -> DeviceBatches:
        return DeviceBatches(self, device)


# Share of the device's free memory a data set may take there; a larger one stays on the host.
DEVICE_SHARE = 0.5
# The most host memory a float copy of an in-memory set may take when the Trainer normalises it
# once (CIFAR-10's 50,000 training images: 0.6 GB).
HOST_COPY_BYTES = 2**30


def fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether ``nbytes`` fit in DEVICE_SHARE of the free memory of a CUDA ``device`` (others: yes)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_SHARE * free


class DeviceBatches:
    """A TensorImages placed on a device once; a batch is then one ``index_select`` there. A set too
    large for half a GPU's free memory, or memory-mapped when training on the CPU, stays on the
    host and its batches are copied over."""

    def __init__(self, data: TensorImages, device: torch.device) -> None:
        self.count, self.device = len(data), device
        nbytes = data.images.nbytes + data.targets.nbytes
        on_host = (data.mapped and device.type != "cuda") or not fits_on(device, nbytes)
        if on_host and not data.mapped and device.type == "cuda":
            print(f"note: the data set ({nbytes / 1e9:.1f} GB) does not fit in half the free memory of {device}; "
                  f"it stays in host memory and each batch is copied over", file=sys.stderr)
        home = torch.device("cpu") if on_host else device
        # The folder cache's channels-last images suit the CPU's crop-by-crop resizing; a GPU's
        # whole-batch resizing (matrix products over rows and columns) wants the standard layout.
        layout = torch.contiguous_format if home.type == "cuda" else torch.preserve_format
        self.images, self.targets = data.images.to(home, memory_format=layout), data.targets.to(home)
        self.extents = None if data.extents is None else data.extents.to(home)

    def __len__(self) -> int:
        return self.count

    def normalise_once(self, normalise: Callable[[torch.Tensor], torch.Tensor], image_size) -> None:
        """Hold the images as ``normalise`` makes them, for a set whose batches go to the model as
        stored: the conversion then runs once, not every batch. They stay bytes where they are
        stored larger than ``image_size`` (each batch is cropped first), stay on the host, or where
        the float copy would not fit (a CUDA device's share of free memory, HOST_COPY_BYTES here)."""
        images, nbytes = self.images, 4 * self.images.numel()
        if (images.dtype != torch.uint8 or self.extents is not None or images.device.type != self.device.type
                or tuple(images.shape[-2:]) != tuple(image_size)):
            return
        if fits_on(self.device, nbytes) if self.device.type == "cuda" else nbytes <= HOST_COPY_BYTES:
            self.images = normalise(images)

    def take(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The images, the targets and (when the data has them) the extents at ``index``, on the device."""
        index = index.to(self.images.device)
        stored = (self.images, self.targets) if self.extents is None else (self.images, self.targets, self.extents)
        taken = tuple(take_images(part, index) for part in stored)
        if self.images.device == self.device:
            return taken
        return tuple(part.to(self.device, non_blocking=True) for part in taken)

    def batches(self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                rank: int = 0, world_size: int = 1) -> Iterator[tuple[torch.Tensor, ...]]:
        """One epoch of batches, in the order drawn from ``generator`` when shuffling.

        With several processes, the generator must be the same on every process: each takes an
        equal share of that one permutation (see :func:`cvcore.training.distributed.shard`);
        without shuffling every image is taken exactly once.
        """
        order = (torch.randperm(self.count, generator=generator, device=generator.device if generator else "cpu")
                 if shuffle else torch.arange(self.count))
        order = shard(order, rank, world_size, pad=shuffle).to(self.images.device)  # one copy per epoch
        for start in range(0, len(order), batch_size):
            yield self.take(order[start:start + batch_size])

    def num_batches(self, batch_size: int, world_size: int = 1, rank: int = 0, *, shuffle: bool = True) -> int:
        share = math.ceil(self.count / world_size) if shuffle else len(range(rank, self.count, world_size))
        return math.ceil(share / batch_size)
