"""Built-in models: the tutorials' LeNet, MLP and CIFAR ResNet18, every torchvision classifier, a
compact U-Net and torchvision's segmentation models.

This module is the plugin's table of contents and stays light: torch is imported inside factories.
"""

from __future__ import annotations

from pathlib import Path

import cvcore
from cvcore_models.torchvision_names import CLASSIFICATION_MODELS, SEGMENTATION_MODELS

# The output form a model gives: "vector" (one per image: classification, multi-label and any
# task of a vector per image), "map" (a vector per pixel: segmentation).
VECTOR, MAP = "vector", "map"


@cvcore.hookimpl
def register_models(register):
    register("lenet", lenet, output=VECTOR)
    register("mlp", mlp, output=VECTOR)
    register("resnet18", resnet18, output=VECTOR)
    register("unet", unet, output=MAP)
    for name in CLASSIFICATION_MODELS:
        register(f"tv/{name}", _torchvision_factory(name, "classification"), output=VECTOR,
                 summary=f"torchvision {name}, head sized to the data")
    for name in SEGMENTATION_MODELS:
        register(f"tv/{name}", _torchvision_factory(name, "segmentation"), output=MAP,
                 summary=f"torchvision {name} segmentation, head sized to the data")


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


def unet(*, num_classes: int = 2, in_channels: int = 3, width: int = 32, depth: int = 4):
    """A compact U-Net for segmentation, with configurable width and depth.

    :param num_classes: output classes per pixel (from the data set).
    :param in_channels: input channels (from the data set).
    :param width: channels of the first level; each level below doubles them.
    :param depth: number of down-sampling steps.
    """
    from cvcore_models.unets import UNet

    return UNet(num_classes, in_channels, width, depth)


def _torchvision_factory(arch: str, task: str):
    def factory(*, num_classes: int = 1000 if task == "classification" else 21, in_channels: int = 3,
                pretrained: bool = False, weights: Path | None = None, freeze: bool = False):
        from cvcore_models import tv

        build = tv.build_torchvision if task == "classification" else tv.build_torchvision_segmentation
        return build(arch, num_classes=num_classes, in_channels=in_channels, pretrained=pretrained,
                     weights=weights, freeze=freeze)

    factory.__name__ = arch
    frozen = "the backbone" if task == "segmentation" else "all but the new head"
    factory.__doc__ = f"""torchvision's {arch} ({task}) with its head sized to the data.

    :param num_classes: output classes (from the data set); the head is replaced to match.
    :param in_channels: input channels (from the data set); a 1x1 conv maps them to 3 if needed.
    :param pretrained: start from torchvision's default weights (downloaded once).
    :param weights: a local .safetensors file to load instead (e.g. from a cvcore run).
    :param freeze: do not train {frozen} (feature extraction).
    """
    return factory
