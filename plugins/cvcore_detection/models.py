"""Detectors: torchvision's by name, and a small FCOS that trains from scratch on the CPU.

cvcore normalises the images and gives them at the data's size, so every detector's own transform
is told to change neither (mean 0, std 1, its sizes the image's): boxes stay in the data's pixels.
Class ids are shifted by one inside the task (torchvision keeps 0 for the background), so a
detector is built for num_classes + 1."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def unchanged_images(image_size: tuple[int, int], in_channels: int) -> dict:
    """The options that make a torchvision detector's transform leave cvcore's images as they are."""
    return {"min_size": min(image_size), "max_size": max(image_size),
            "image_mean": [0.0] * in_channels, "image_std": [1.0] * in_channels}


def torchvision_detector(name: str, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> nn.Module:
    import torchvision

    if in_channels != 3:
        raise ValueError(f"torchvision's detectors take 3-channel images, the data has {in_channels}")
    builder = getattr(torchvision.models.detection, name)
    options = {} if name.startswith("ssd") else unchanged_images(image_size, in_channels)
    if name.startswith("ssd"):  # SSD resizes to its own size and maps boxes back; only the normalisation is ours
        options = {"image_mean": [0.0] * 3, "image_std": [1.0] * 3}
    return builder(weights=None, weights_backbone=None, num_classes=num_classes + 1, **options)


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
