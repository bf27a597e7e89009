"""Building a segmentation_models_pytorch model for cvcore: architecture, encoder, start weights."""

from __future__ import annotations

from pathlib import Path

from torch import nn

import cvcore
from cvcore.checkpoint import load_weights_file


def build_smp(arch: str, *, num_classes: int, in_channels: int, encoder: str, encoder_weights: Path | None,
              weights: Path | None) -> nn.Module:
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        raise cvcore.ConfigError(f"Model 'smp/{arch}' needs segmentation_models_pytorch, which is not installed: "
                                 f"pip install \"cvcore[smp]\".") from None
    try:
        model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                                 classes=num_classes)
    except (KeyError, ValueError, RuntimeError) as exc:  # smp's own refusals: an encoder this architecture cannot take
        raise cvcore.ConfigError(f"smp's {arch} cannot be built with encoder '{encoder}': {exc}") from None
    if encoder_weights is not None:
        load_weights_file(model.encoder, encoder_weights)
    if weights is not None:
        load_weights_file(model, weights)
    return model
