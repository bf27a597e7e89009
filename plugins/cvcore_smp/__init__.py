"""segmentation_models_pytorch's architectures as cvcore segmentation models: ``smp/NAME`` (unet,
fpn, deeplabv3plus, ...) over any of its encoders (timm's with ``tu-``), built by smp, which the
``smp`` extra installs (``pip install "cvcore[smp]"``).

This module is the plugin's table of contents and stays light: smp and torch are imported inside
factories, so `cv list` shows the models without smp installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import cvcore
from cvcore_smp.names import ARCHITECTURES, ENCODERS, SMP_VERSION

# Checked with the run's plan, before any data is read; tu-NAME: a timm model, checked by smp.
Encoder = Annotated[str, cvcore.Named(ENCODERS, prefixes=("tu-",))]


@cvcore.hookimpl
def register_models(register):
    for name in ARCHITECTURES:
        register(f"smp/{name}", _smp_factory(name), output="map",
                 summary=f"segmentation_models_pytorch {SMP_VERSION} {name}, any encoder")


def _smp_factory(arch: str):
    def factory(*, num_classes: int = 2, in_channels: int = 3, encoder: Encoder = "resnet34",
                encoder_weights: Path | None = None, weights: Path | None = None):
        from cvcore_smp.build import build_smp

        return build_smp(arch, num_classes=num_classes, in_channels=in_channels, encoder=encoder,
                         encoder_weights=encoder_weights, weights=weights)

    factory.__name__ = arch
    factory.__doc__ = f"""segmentation_models_pytorch's {arch}: a class score per pixel, over an encoder.

    :param num_classes: classes per pixel (from the data set).
    :param in_channels: input channels (from the data set).
    :param encoder: any smp encoder name (resnet18, efficientnet-b0, mit_b0, ...), or tu-NAME for
        a timm model (needs the timm extra); built with random weights, offline.
    :param encoder_weights: start weights of the encoder, offline: a safetensors state dict of it
        (smp's or timm's keys), or a cvcore checkpoint; layers of other shapes are left as built.
    :param weights: start weights of the whole model: a safetensors file (cv export --format
        safetensors) or a cvcore checkpoint.
    """
    return factory
