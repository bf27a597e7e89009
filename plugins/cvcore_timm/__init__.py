"""timm's classifiers as cvcore models: ``timm/NAME`` for every architecture of the timm release
its names were listed from (``cvcore_timm.names``), built by timm, which the ``timm`` extra installs
(``pip install "cvcore[timm]"``).

This module is the plugin's table of contents and stays light: timm and torch are imported inside
factories, so `cv list` shows the models without timm installed.
"""

from __future__ import annotations

from pathlib import Path

import cvcore
from cvcore_timm.names import TIMM_INPUTS, TIMM_MODELS, TIMM_VERSION

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@cvcore.hookimpl
def register_models(register):
    for name in TIMM_MODELS:
        pretrained_input = {"pretrained_input": TIMM_INPUTS[name]} if name in TIMM_INPUTS else {}
        register(f"timm/{name}", _timm_factory(name), output="vector",
                 summary=f"timm {TIMM_VERSION} {name}, head sized to the data", **pretrained_input)


def _timm_factory(arch: str):
    def factory(*, num_classes: int = 1000, in_channels: int = 3, image_size: tuple[int, int] = (224, 224),
                mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                pretrained: bool = False, weights: Path | None = None, drop_rate: float = 0.0,
                drop_path_rate: float | None = None, freeze: bool = False):
        from cvcore_timm.build import build_timm

        return build_timm(arch, num_classes=num_classes, in_channels=in_channels, image_size=tuple(image_size),
                          mean=tuple(mean), std=tuple(std), pretrained=pretrained, weights=weights,
                          drop_rate=drop_rate, drop_path_rate=drop_path_rate, freeze=freeze)

    factory.__name__ = arch
    factory.__doc__ = f"""timm's {arch} with its classifier sized to the data.

    :param num_classes: output classes (from the data set); timm sizes the classifier.
    :param in_channels: input channels (from the data set); timm adapts a pretrained first layer.
    :param image_size: input height and width (from the data set): given to the models built for
        one size (vision transformers: timm resizes their position embeddings).
    :param mean: the data's normalisation (from the data set), turned into the one the model's
        pretrained configuration names, so pretrained weights see what they were trained on.
    :param std: the data's normalisation (from the data set).
    :param pretrained: start from timm's default pretrained weights (downloaded once by timm); the
        data set's image_size, resize and interpolation then default to their evaluation transform's.
    :param weights: start weights, offline: a safetensors state dict (cv export --format
        safetensors, or timm's model.safetensors) or a cvcore checkpoint; a classifier of another
        size is left as built.
    :param drop_rate: dropout before the classifier.
    :param drop_path_rate: stochastic depth (models that have it; none: timm's default).
    :param freeze: train the classifier alone (timm's get_classifier), the rest frozen.
    """
    return factory
