"""Built-in models: the tutorials' LeNet, MLP and CIFAR ResNet18, and every torchvision classifier.

This module is the plugin's table of contents and stays light: torch is imported inside factories.
"""

from __future__ import annotations

from pathlib import Path

import cvcore
from cvcore_models.torchvision_names import CLASSIFICATION_MODELS


@cvcore.hookimpl
def register_models(register):
    register("lenet", lenet)
    register("mlp", mlp)
    register("resnet18", resnet18)
    for name in CLASSIFICATION_MODELS:
        register(f"tv/{name}", _torchvision_factory(name), summary=f"torchvision {name}, head sized to the data")


def lenet(*, num_classes: int = 10, in_channels: int = 3, image_size: tuple[int, int] = (32, 32)):
    """LeNet from the 60-minute tutorial: two 5x5 conv + pool stages, three linear layers.

    :param num_classes: output classes (from the data set).
    :param in_channels: input channels (from the data set).
    :param image_size: input height and width, at least 16 (from the data set).
    """
    from cvcore_models.small import LeNet

    return LeNet(num_classes, in_channels, image_size)


def mlp(*, num_classes: int = 10, in_channels: int = 1, image_size: tuple[int, int] = (28, 28),
        hidden: int = 512):
    """The FashionMNIST tutorial's network: flatten, two hidden ReLU layers, a linear head.

    :param num_classes: output classes (from the data set).
    :param in_channels: input channels (from the data set).
    :param image_size: input height and width (from the data set).
    :param hidden: width of both hidden layers.
    """
    from cvcore_models.small import MLP

    return MLP(num_classes, in_channels * image_size[0] * image_size[1], hidden)


def resnet18(*, num_classes: int = 10, in_channels: int = 3):
    """ResNet18 for 32x32 images (CIFAR variant: 3x3 stem, no max-pool).

    :param num_classes: output classes (from the data set).
    :param in_channels: input channels (from the data set).
    """
    from cvcore_models.cifar_resnet import resnet18 as build

    return build(num_classes, in_channels)


def _torchvision_factory(arch: str):
    def factory(*, num_classes: int = 1000, in_channels: int = 3, pretrained: bool = False,
                weights: Path | None = None, freeze: bool = False):
        from cvcore_models.tv import build_torchvision

        return build_torchvision(arch, num_classes=num_classes, in_channels=in_channels,
                                 pretrained=pretrained, weights=weights, freeze=freeze)

    factory.__name__ = arch
    factory.__doc__ = f"""torchvision's {arch} with its classification head sized to the data.

    :param num_classes: output classes (from the data set); the head is replaced to match.
    :param in_channels: input channels (from the data set); a 1x1 conv maps them to 3 if needed.
    :param pretrained: start from torchvision's default ImageNet weights (downloaded once).
    :param weights: a local .safetensors file to load instead (e.g. from a cvcore run).
    :param freeze: train only the new head (feature extraction).
    """
    return factory
