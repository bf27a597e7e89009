"""Object detection as a plugin task: boxes per image, models that compute their own losses in
training and give detections in evaluation, COCO's mAP (pycocotools, the `detection` extra).

Targets are one float tensor per image of ``(M, 5)`` rows ``(x0, y0, x1, y1, class)`` in pixels,
padded to the data set's most boxes per image with rows of class -1: one tensor for the whole
batch, so batches stay on the device and go through the transforms like any target.

This module is the plugin's table of contents and stays light: torch is imported in factories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import cvcore
from cvcore import Between

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # photos; most COCO weights
FLIP_AND_SHIFT = ("transforms:flip", ("transforms:pad_crop", {"padding": 4}))  # what shapes_boxes suggests
# What photo folders suggest: crops of at least half of each whole photo (scale jitter), and flips.
CROP_AND_FLIP = (("transforms:random_resized_crop", {"scale": [0.5, 1.0]}), "transforms:flip")


@cvcore.hookimpl
def register_tasks(register):
    register("detection", detection_task, output="detections", loss="detection:model_losses")


@cvcore.hookimpl
def register_losses(register):
    register("model_losses", model_losses, tasks=("detection:detection",))


# torchvision's detectors with COCO weights (downloaded only when pretrained is asked for)
TORCHVISION_DETECTORS = ("fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
                         "fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn", "fcos_resnet50_fpn",
                         "ssdlite320_mobilenet_v3_large")


@cvcore.hookimpl
def register_models(register):
    register("tiny_fcos", tiny_fcos, output="detections")
    for name in TORCHVISION_DETECTORS:
        register(f"tv/{name}", _torchvision_factory(name), output="detections",
                 summary=f"torchvision {name}, classes from the data, from scratch or COCO weights")


def tiny_fcos(*, num_classes: int = 3, in_channels: int = 3, image_size: tuple[int, int] = (64, 64),
              width: Annotated[int, Between(32, 512)] = 32, weights: Path | None = None):
    """A small FCOS (anchor-free, two feature maps at strides 8 and 16) that trains on the CPU.

    :param num_classes: object classes (from the data set; the background is added inside).
    :param in_channels: image channels (from the data set).
    :param image_size: image height and width (from the data set).
    :param width: channels of the backbone and heads, a multiple of 32 (the heads' GroupNorm).
    :param weights: start weights: a safetensors file (cv export --format safetensors) or a cvcore
        checkpoint; a classification head sized for other classes is left as built.
    """
    from cvcore_detection.models import tiny_fcos as build

    if width % 32:
        raise cvcore.OptionError(f"Option 'width' of model 'tiny_fcos' must be a multiple of 32, got {width}.")

    return _with_weights(build(num_classes, in_channels, tuple(image_size), width), weights)


def _torchvision_factory(name: str):
    def factory(*, num_classes: int = 3, in_channels: int = 3, image_size: tuple[int, int] = (320, 320),
                mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                pretrained: bool = False, weights: Path | None = None):
        """torchvision's detector of that name, sized to the data: from scratch, COCO weights or a file.

        :param num_classes: object classes (from the data set; the background is added inside).
        :param in_channels: image channels (from the data set; 3).
        :param image_size: image height and width (from the data set).
        :param mean: the data's normalisation (from the data set), turned into what COCO weights expect.
        :param std: the data's normalisation (from the data set).
        :param pretrained: start from torchvision's COCO weights (downloaded once), heads sized to the data.
        :param weights: start weights, offline: a safetensors file of the model's state dict (torchvision's
            COCO weights saved as safetensors, or cv export --format safetensors) or a cvcore checkpoint;
            heads sized for other classes (COCO's 91) are left as built.
        """
        from cvcore_detection.models import torchvision_detector

        model = torchvision_detector(name, num_classes, in_channels, tuple(image_size), tuple(mean), tuple(std),
                                     pretrained)
        return _with_weights(model, weights)

    return factory


def _with_weights(model, weights: Path | None):
    from cvcore.checkpoint import load_weights_file

    if weights is not None:
        load_weights_file(model, weights)
    return model


@cvcore.hookimpl
def register_datasets(register):
    register("shapes_boxes", shapes_boxes, task="detection:detection", transforms=FLIP_AND_SHIFT)
    register("coco", coco, task="detection:detection", transforms=CROP_AND_FLIP)
    register("yolo", yolo, task="detection:detection", transforms=CROP_AND_FLIP)


def detection_task():
    """Boxes and classes per image: COCO mAP@[.5:.95], AP50, AP75, AP and AR by size, per-class AP."""
    from cvcore_detection.task import Detection

    return Detection()


def model_losses(*, weights: dict[str, float] | None = None):
    """The sum of the losses a detector computes itself (torchvision's: classifier, box regression, ...).

    :param weights: a factor per loss term by name (e.g. {"loss_box_reg": 2.0}); others count once.
    """
    from cvcore_detection.task import WeightedSum

    return WeightedSum(dict(weights or {}))


def shapes_boxes(*, count: Annotated[int, Between(8)] = 1200, size: Annotated[int, Between(32, 1024)] = 64,
                 val_fraction: Annotated[float, Between(0.001, 0.999)] = 0.2, seed: int = 0, augment: bool = True):
    """1 to 3 shapes per image (circle, square, triangle) on noise, with their exact boxes; offline.

    :param count: number of images (train and validation).
    :param size: side of the images.
    :param val_fraction: share of the images held out for validation.
    :param seed: seed of the drawing and the split.
    :param augment: suggest flips and shifts for training.
    """
    from cvcore_detection.shapes import load_shapes_boxes

    return load_shapes_boxes(count, size, val_fraction, seed, augment)


Size = Annotated[int, Between(16, 4096)]


def coco(*, root: Path = Path("data"), train_annotations: str = "annotations/instances_train.json",
         train_images: str = "train", val_annotations: str = "annotations/instances_val.json",
         val_images: str = "val", image_size: Size = 320, augment: bool = True, cache: cvcore.CacheMode = "auto"):
    """A COCO-format folder: instances JSON files and their image folders (crowd regions left out).

    :param root: the folder (--data-dir).
    :param train_annotations: the training instances JSON, relative to root.
    :param train_images: the folder its file_name entries are in, relative to root.
    :param val_annotations: the validation instances JSON, relative to root.
    :param val_images: the folder of its images, relative to root.
    :param image_size: the shorter side images are stored at; training crops from the whole image,
        validation and `cv predict` take the centre square.
    :param augment: suggest random resized crops (at least half of each image) and flips for training.
    :param cache: the folder cache (see imagefolder): auto, memory, mmap, or off.
    """
    from cvcore_detection.folders import load_coco

    return load_coco(root, (train_annotations, train_images), (val_annotations, val_images), image_size, augment,
                     cache)


def yolo(*, root: Path = Path("data"), data: str = "data.yaml", image_size: Size = 320, augment: bool = True,
         cache: cvcore.CacheMode = "auto"):
    """An Ultralytics YOLO layout: a data YAML (names, train, val), images/ and labels/*.txt.

    :param root: the folder holding the data YAML (--data-dir).
    :param data: the data YAML's name in root (read as data only: nothing in it is executed).
    :param image_size: the shorter side images are stored at; training crops from the whole image,
        validation and `cv predict` take the centre square.
    :param augment: suggest random resized crops (at least half of each image) and flips for training.
    :param cache: the folder cache (see imagefolder): auto, memory, mmap, or off.
    """
    from cvcore_detection.folders import load_yolo

    return load_yolo(root, data, image_size, augment, cache)
