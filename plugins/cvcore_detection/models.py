"""Detectors: torchvision's by name, and a small FCOS that trains from scratch on the CPU.

cvcore gives a detector its images normalised with the data's mean and std, at the data's size.
Each torchvision detector's own transform is told to keep that size (SSD resizes to its own and
maps boxes back) and to turn the data's normalisation into the one its COCO weights were trained
with, from scratch too, so that a model rebuilt from a checkpoint (without its start weights)
computes what it trained with. Class ids are shifted by one inside the task (torchvision keeps 0
for the background), so a detector is built for num_classes + 1."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cvcore_detection import IMAGENET_MEAN, IMAGENET_STD

# What each family's COCO weights were trained on, where it is not ImageNet's normalisation
# (torchvision's defaults for the family's transform).
WEIGHTS_NORMALISATION = {"ssdlite320": ((0.5,) * 3, (0.5,) * 3)}


def unchanged_images(image_size: tuple[int, int], in_channels: int) -> dict:
    """The options that make a torchvision detector's transform leave cvcore's images as they are."""
    return {"min_size": min(image_size), "max_size": max(image_size),
            "image_mean": [0.0] * in_channels, "image_std": [1.0] * in_channels}


def as_weights_expect(name: str, mean: tuple[float, ...], std: tuple[float, ...]) -> dict:
    """The transform's normalisation that takes images normalised with ``mean`` and ``std`` to the
    normalisation the detector's COCO weights expect: (x * std + mean - m) / s = (x - (m - mean) / std) / (s / std)."""
    wanted_mean, wanted_std = WEIGHTS_NORMALISATION.get(name.split("_")[0], (IMAGENET_MEAN, IMAGENET_STD))
    return {"image_mean": [(m - data_m) / data_s for m, data_m, data_s in zip(wanted_mean, mean, std)],
            "image_std": [s / data_s for s, data_s in zip(wanted_std, std)]}


def torchvision_detector(name: str, num_classes: int, in_channels: int, image_size: tuple[int, int],
                         mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                         pretrained: bool = False) -> nn.Module:
    """torchvision's detector ``name`` for the data's classes, from scratch or from its COCO weights
    (the backbone and box regression; heads sized to the data are left as built)."""
    import torchvision

    from cvcore.checkpoint import load_start_weights, torchvision_downloads

    if in_channels != 3:
        raise ValueError(f"torchvision's detectors take 3-channel images, the data has {in_channels}")
    sizes = {} if name.startswith("ssd") else unchanged_images(image_size, in_channels)
    model = getattr(torchvision.models.detection, name)(
        weights=None, weights_backbone=None, num_classes=num_classes + 1, **{**sizes, **as_weights_expect(name, mean, std)})
    if pretrained:
        with torchvision_downloads(f"'{name}'"):
            coco = torchvision.models.get_model_weights(name).DEFAULT.get_state_dict(progress=False)
        load_start_weights(model, coco, f"torchvision's COCO weights for '{name}'")
    return model


class TinyBackbone(nn.Module):
    """Four strided conv blocks; the last two maps (strides 8 and 16) feed the detection heads."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()

        def block(inputs: int, outputs: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(inputs, outputs, 3, stride=2, padding=1, bias=False),
                                 nn.BatchNorm2d(outputs), nn.ReLU(inplace=True),
                                 nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))

        self.stem = nn.Sequential(block(in_channels, width // 2), block(width // 2, width), block(width, width))
        self.deeper = block(width, width)
        self.out_channels = width

    def forward(self, images: torch.Tensor) -> OrderedDict:
        eighth = self.stem(images)
        return OrderedDict([("0", eighth), ("1", self.deeper(eighth))])


def tiny_fcos(num_classes: int, in_channels: int, image_size: tuple[int, int], width: int) -> nn.Module:
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    anchors = AnchorGenerator(sizes=((16,), (32,)), aspect_ratios=((1.0,), (1.0,)))  # one point per location
    return FCOS(TinyBackbone(in_channels, width), num_classes + 1, anchor_generator=anchors,
                score_thresh=0.05, detections_per_img=100, **unchanged_images(image_size, in_channels))
