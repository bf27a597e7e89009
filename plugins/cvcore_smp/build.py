"""Building a segmentation_models_pytorch model for cvcore: architecture, encoder, start weights."""

from __future__ import annotations

import difflib
from pathlib import Path

from torch import nn

import cvcore
from cvcore.checkpoint import load_weights_file
from cvcore_smp.names import ENCODERS


def build_smp(arch: str, *, num_classes: int, in_channels: int, encoder: str, encoder_weights: Path | None,
              weights: Path | None) -> nn.Module:
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        raise cvcore.ConfigError(f"Model 'smp/{arch}' needs segmentation_models_pytorch, which is not installed: "
                                 f"pip install \"cvcore[smp]\".") from None
    if encoder not in ENCODERS and not encoder.startswith("tu-"):
        close = difflib.get_close_matches(encoder, ENCODERS, n=3)
        hint = f" Did you mean {' or '.join(repr(name) for name in close)}?" if close else ""
        raise cvcore.OptionError(f"Unknown encoder '{encoder}' for model 'smp/{arch}'.{hint} Valid encoders: "
                                 f"{', '.join(ENCODERS)}, or tu-NAME for a timm model.")
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
