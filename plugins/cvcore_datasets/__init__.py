"""Built-in data sets: CIFAR-10, MNIST, FashionMNIST, ImageFolder, the offline `digits` set, and the
segmentation sets `shapes` (procedural) and `segfolder` (images/ + masks/).

This module is the plugin's table of contents and stays light: torch is imported inside factories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import cvcore
from cvcore import Between

Pipeline = Literal["tensor", "pil"]
ValFraction = Annotated[float, Between(0.001, 0.999)]  # both splits keep images

# The transforms each data set suggests (with augment=true, the default): its DataSplits carry
# them, and its registration says them for `cv info`.
FLIP = ("transforms:flip",)
FLIP_AND_SHIFT = ("transforms:flip", ("transforms:pad_crop", {"padding": 4}))
CROP_AND_FLIP = ("transforms:random_resized_crop", "transforms:flip")  # the ImageNet tutorials' augmentation
LARGE_CROP_AND_FLIP = (("transforms:random_resized_crop", {"scale": [0.5, 1.0]}), "transforms:flip")


@cvcore.hookimpl
def register_datasets(register):
    # task: what DataInfo.task will say, known before any data is read (for planning's checks)
    register("digits", digits, task="classification")
    register("cifar10", cifar10, task="classification", transforms=FLIP_AND_SHIFT)
    register("mnist", mnist, task="classification")
    register("fashion_mnist", fashion_mnist, task="classification")
    register("imagefolder", imagefolder, task="classification", transforms=CROP_AND_FLIP)
    register("shapes", shapes, task="segmentation", transforms=FLIP)
    register("segfolder", segfolder, task="segmentation", transforms=LARGE_CROP_AND_FLIP)
    register("multilabel_shapes", multilabel_shapes, task="multilabel", transforms=FLIP_AND_SHIFT)
    register("multilabel_csv", multilabel_csv, task="multilabel", transforms=CROP_AND_FLIP)


def digits(*, image_size: int = 32, val_fraction: ValFraction = 0.2, seed: int = 0):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), offline; upscaled for conv nets.

    :param image_size: side the 8x8 images are resized to (LeNet needs at least 16).
    :param val_fraction: share of the images held out for validation.
    :param seed: seed of the train/validation split.
    """
    from cvcore_datasets.sklearn_digits import load_digits

    return load_digits(image_size, val_fraction, seed)


def cifar10(*, root: Path = Path("data"), download: bool = False, augment: bool = True,
            pipeline: Pipeline = "tensor"):
    """CIFAR-10 (python batches), with the tutorials' RandomCrop(32, padding=4) + flip + mean/std.

    :param root: folder holding cifar-10-batches-py/ (set by --data-dir).
    :param download: fetch the official archive into root if files are missing.
    :param augment: default transforms flip and pad_crop (4) (see --transform); with pipeline=pil,
        the same per image in the DataLoader.
    :param pipeline: tensor (in memory, augmented in batches on the device) or pil (torchvision
        transforms per image through a DataLoader, as in the tutorials).
    """
    from cvcore_datasets.vision import load_cifar10

    return load_cifar10(root, download, augment, pipeline)


def mnist(*, root: Path = Path("data"), download: bool = False, pipeline: Pipeline = "tensor"):
    """MNIST handwritten digits (idx files), normalised with its mean/std.

    :param root: folder holding MNIST/raw/ (set by --data-dir).
    :param download: fetch the official files into root if they are missing.
    :param pipeline: tensor (in memory, batched on the device) or pil (per-image transforms).
    """
    from cvcore_datasets.vision import load_mnist

    return load_mnist("mnist", root, download, pipeline)


def fashion_mnist(*, root: Path = Path("data"), download: bool = False, pipeline: Pipeline = "tensor"):
    """Fashion-MNIST clothing images (idx files), normalised with its mean/std.

    :param root: folder holding FashionMNIST/raw/ (set by --data-dir).
    :param download: fetch the official files into root if they are missing.
    :param pipeline: tensor (in memory, batched on the device) or pil (per-image transforms).
    """
    from cvcore_datasets.vision import load_mnist

    return load_mnist("fashion_mnist", root, download, pipeline)


def imagefolder(*, root: Path = Path("data"), image_size: int = 224, resize: int = 256,
                augment: bool = True, skip_unreadable: bool = False, cache: cvcore.CacheMode = "auto",
                interpolation: cvcore.Interpolation = "bilinear"):
    """A folder with train/ and val/, one sub-folder of images per class (the ants/bees layout).

    :param root: folder holding train/ and val/ (set by --data-dir).
    :param image_size: crop size of training and validation images.
    :param resize: images are stored whole with their shorter side resized to this (the longer
        side up to 1.5 times it); training's random crops draw from all of each image, validation
        crops its centre image_size (torchvision's Resize + CenterCrop).
    :param augment: default transforms random_resized_crop and flip (see --transform).
    :param skip_unreadable: decode every image once when the data set is built and leave out the
        ones that cannot be read (a warning counts them); otherwise an unreadable image stops
        training with an error naming it.
    :param cache: decode each image once into a uint8 cache on disk, reused while the folder is
        unchanged: auto (read into memory when it fits, else memory-mapped), memory, mmap, or off
        (decode every image in every epoch).
    :param interpolation: how images are resized (antialiased, as torchvision's Resize): bilinear
        or bicubic; `cv predict` resizes alike.
    """
    from cvcore_datasets.vision import load_imagefolder

    return load_imagefolder(root, image_size, resize, augment, skip_unreadable, cache, interpolation)


def shapes(*, count: int = 1200, size: int = 48, val_fraction: ValFraction = 0.2, seed: int = 0, augment: bool = True):
    """Segmentation of random circles, squares and triangles on noisy backgrounds; generated, offline.

    :param count: number of images (train + validation).
    :param size: side of the square images.
    :param val_fraction: share of the images held out for validation.
    :param seed: seed of the generator: the same seed gives the same images.
    :param augment: default transform flip (image and mask together).
    """
    from cvcore_datasets.segmentation import load_shapes

    return load_shapes(count, size, val_fraction, seed, augment)


def segfolder(*, root: Path = Path("data"), image_size: int = 256, num_classes: int | None = None,
              class_names: list[str] | None = None, val_fraction: ValFraction = 0.2, seed: int = 0,
              augment: bool = True, cache: cvcore.CacheMode = "auto"):
    """Segmentation from root/images/* and root/masks/*.png with matching names (pixel = class id).

    :param root: folder holding images/ and masks/ (set by --data-dir).
    :param image_size: side images and masks are resized and cropped to.
    :param num_classes: number of classes (default: 1 + the largest id in the masks; 255 = ignore).
    :param class_names: one name per class.
    :param val_fraction: share of the pairs held out for validation.
    :param seed: seed of the train/validation split.
    :param augment: default transforms random_resized_crop (scale 0.5 to 1) and flip, applied to
        image and mask together.
    :param cache: decode images and masks once into a uint8 cache (see imagefolder): auto,
        memory, mmap or off.
    """
    from cvcore_datasets.segmentation import load_segfolder

    return load_segfolder(root, image_size, num_classes, class_names, val_fraction, seed, augment, cache)


def multilabel_shapes(*, count: int = 4000, size: int = 32, val_fraction: ValFraction = 0.2, seed: int = 0,
                      augment: bool = True):
    """Multi-label: which of circle, square and triangle each image shows (1 to 3 shapes); generated, offline.

    :param count: number of images (train + validation).
    :param size: side of the square images.
    :param val_fraction: share of the images held out for validation.
    :param seed: seed of the generator: the same seed gives the same images.
    :param augment: default transforms flip and pad_crop (4).
    """
    from cvcore_datasets.multilabel import load_shapes

    return load_shapes(count, size, val_fraction, seed, augment)


def multilabel_csv(*, root: Path = Path("data"), image_size: int = 224, resize: int = 256, augment: bool = True,
                   cache: cvcore.CacheMode = "auto", interpolation: cvcore.Interpolation = "bilinear"):
    """Multi-label images listed in root/train.csv and root/val.csv (columns image,labels; labels space-separated).

    :param root: folder holding the CSV files; image paths in them are relative to it (set by --data-dir).
    :param image_size: crop size of training and validation images.
    :param resize: images are stored with their shorter side resized to this, centre-cropped to a square.
    :param augment: default transforms random_resized_crop and flip (see --transform).
    :param cache: decode images once into a uint8 cache (see imagefolder): auto, memory, mmap or off.
    :param interpolation: how images are resized: bilinear or bicubic (see imagefolder).
    """
    from cvcore_datasets.multilabel import load_csv

    return load_csv(root, image_size, resize, augment, cache, interpolation)
