"""Built-in training augmentations, applied to whole batches on the training device with their
parameters drawn per image (see :class:`cvcore.Transform`).

Hand-written in torch rather than taken from a library: torchvision.transforms.v2 draws one set of
parameters per call, so a batch would share one crop, and Kornia would be a new dependency for a
few hundred lines. This module is the plugin's table of contents: torch is imported in factories.
"""

from __future__ import annotations

from typing import Annotated

import cvcore
from cvcore import Between

Share = Annotated[float, Between(0.0, 1.0)]  # a probability, or a share of the images
Alpha = Annotated[float, Between(0.01, 100.0)]  # of a Beta(alpha, alpha)
Strength = Annotated[float, Between(0.0, 10.0)]  # a factor drawn from [1 - strength, 1 + strength]
Ratios = Annotated[tuple[float, float], Between(1e-2, 1e2, ordered=True)]

IGNORE_INDEX = 255  # cvcore.IGNORE_INDEX, without importing torch to list the plugin


@cvcore.hookimpl
def register_transforms(register):
    # Geometric transforms serve every task: they move masks themselves and report their affine
    # map per image (Transform.moved), with which a task moves targets that hold coordinates.
    register("pad_crop", pad_crop)
    register("flip", flip)
    register("random_resized_crop", random_resized_crop)
    register("trivial_augment", trivial_augment)
    register("color_jitter", color_jitter)
    register("random_erasing", random_erasing)
    # soft_targets: makes class probabilities, which only losses registered with soft_targets take
    register("mixup", mixup, tasks=("classification",), soft_targets=True)
    register("cutmix", cutmix, tasks=("classification",), soft_targets=True)


def pad_crop(*, padding: Annotated[int, Between(1, 1024)] = 4, ignore_index: int | None = None):
    """Pad with black, then crop back at a random offset per image (the CIFAR tutorials' RandomCrop).

    :param padding: pixels added on every side; each image shifts by up to this much.
    :param ignore_index: mask value of the padded pixels (filled in from the data set; none: 255).
    """
    from cvcore_transforms.geometric import PadCrop

    return PadCrop(padding, IGNORE_INDEX if ignore_index is None else ignore_index)


def flip(*, p: Share = 0.5, vertical: bool = False):
    """Mirror each image left-right with probability p (its mask with it).

    :param p: probability of mirroring each image.
    :param vertical: mirror upside down instead.
    """
    from cvcore_transforms.geometric import Flip

    return Flip(p, vertical)


def random_resized_crop(*, image_size: tuple[int, int] = (224, 224),
                        scale: Annotated[tuple[float, float], Between(1e-4, 1.0, ordered=True)] = (0.08, 1.0),
                        ratio: Ratios = (0.75, 4 / 3)):
    """Crop a random part of each image and resize it to the training size (torchvision's RandomResizedCrop).

    :param image_size: output height and width (filled in from the data set).
    :param scale: share of the image's area that the crop covers, drawn uniformly from (low, high).
    :param ratio: aspect ratio (width / height) of the crop, drawn log-uniformly from (low, high).
    """
    from cvcore_transforms.geometric import RandomResizedCrop

    return RandomResizedCrop(image_size, scale, ratio)


def color_jitter(*, brightness: Strength = 0.4, contrast: Strength = 0.4, saturation: Strength = 0.4,
                 hue: Annotated[float, Between(0.0, 0.5)] = 0.0, p: Share = 1.0):
    """Random brightness, contrast, saturation and hue per image (torchvision's ColorJitter).

    :param brightness: factor drawn from [1 - brightness, 1 + brightness].
    :param contrast: factor drawn from [1 - contrast, 1 + contrast].
    :param saturation: factor drawn from [1 - saturation, 1 + saturation].
    :param hue: hue shift drawn from [-hue, hue] turns (at most 0.5).
    :param p: share of the images that are changed.
    """
    from cvcore_transforms.photometric import ColorJitter

    return ColorJitter(brightness, contrast, saturation, hue, p)


def random_erasing(*, p: Share = 0.25,
                   scale: Annotated[tuple[float, float], Between(0.0, 1.0, ordered=True)] = (0.02, 0.33),
                   ratio: Ratios = (0.3, 3.3), value: Share | None = None):
    """Erase a random box of each image chosen with probability p (random erasing / cutout).

    :param p: probability of erasing a box in each image.
    :param scale: share of the area erased, drawn uniformly from (low, high).
    :param ratio: aspect ratio (height / width, as torchvision's) of the box, drawn log-uniformly from (low, high).
    :param value: fill value in [0, 1]; none (default): uniform noise.
    """
    from cvcore_transforms.photometric import RandomErasing

    return RandomErasing(p, scale, ratio, value)


def mixup(*, alpha: Alpha = 0.2, p: Share = 0.5, num_classes: int = 10):
    """Blend each image with another of the batch; the target is the same blend of their labels.

    :param alpha: the mixing share is drawn from Beta(alpha, alpha), once per image (0.2, as for
        ImageNet in the paper; larger values mix more and need longer training).
    :param p: share of the images that are mixed (timm mixes half its batches with each of mixup and cutmix).
    :param num_classes: classes (filled in from the data set).
    """
    from cvcore_transforms.mixing import Mixup

    return Mixup(alpha, p, num_classes)


def cutmix(*, alpha: Alpha = 1.0, p: Share = 0.5, num_classes: int = 10):
    """Paste a box from another image of the batch; the target mixes the labels by area.

    :param alpha: the kept share of each image is drawn from Beta(alpha, alpha), once per image.
    :param p: share of the images that get a box.
    :param num_classes: classes (filled in from the data set).
    """
    from cvcore_transforms.mixing import CutMix

    return CutMix(alpha, p, num_classes)


def trivial_augment(*, bins: Annotated[int, Between(2, 1000)] = 31, ignore_index: int | None = None):
    """TrivialAugment: one random operation at a random strength per image (torchvision's TrivialAugmentWide).

    :param bins: number of strength levels.
    :param ignore_index: mask value of pixels moved in from outside the image (filled in from the
        data set; none: 255).
    """
    from cvcore_transforms.policies import TrivialAugment

    return TrivialAugment(bins, IGNORE_INDEX if ignore_index is None else ignore_index)
