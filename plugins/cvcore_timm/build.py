"""Building a timm model for cvcore: the classifier sized to the data, start weights, freezing, and
the data's normalisation turned into the model's own."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import cvcore
from cvcore.checkpoint import load_weights_file


def renormalise(model: nn.Module, data: tuple, wanted: tuple) -> nn.Module:
    """``model``, taking images normalised with the data's (mean, std) and renormalising them with
    the ``wanted`` (mean, std) of its pretrained configuration first: (x * s_data + m_data - m) / s.
    A forward pre-hook with buffers outside the state dict: the model's keys stay timm's, and the
    buffers follow from the options, which a checkpoint records."""
    (data_mean, data_std), (mean, std) = data, wanted
    scale = torch.tensor(data_std) / torch.tensor(std)
    shift = (torch.tensor(data_mean) - torch.tensor(mean)) / torch.tensor(std)
    model.register_buffer("input_scale", scale.view(1, -1, 1, 1), persistent=False)
    model.register_buffer("input_shift", shift.view(1, -1, 1, 1), persistent=False)
    model.register_forward_pre_hook(_renormalised)
    return model


def _renormalised(model: nn.Module, inputs: tuple) -> tuple:
    return (inputs[0] * model.input_scale + model.input_shift, *inputs[1:])


def build_timm(arch: str, *, num_classes: int, in_channels: int, image_size: tuple[int, int], mean: tuple,
               std: tuple, pretrained: bool, weights: Path | None, drop_rate: float, drop_path_rate: float | None,
               freeze: bool) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise cvcore.ConfigError(f"Model 'timm/{arch}' needs timm, which is not installed: "
                                 f"pip install \"cvcore[timm]\".") from None
    options = {"num_classes": num_classes, "in_chans": in_channels, "drop_rate": drop_rate}
    if drop_path_rate is not None:
        options["drop_path_rate"] = drop_path_rate
    config = timm.models.get_pretrained_cfg(arch)
    if config is not None and config.fixed_input_size:
        options["img_size"] = image_size
    try:
        model = timm.create_model(arch, pretrained=pretrained, **options)
    except TypeError as exc:  # an option this architecture does not take
        raise cvcore.ConfigError(f"timm's {arch} does not take these options ({exc}).") from None
    if weights is not None:
        load_weights_file(model, weights)
    if freeze:
        head = {id(p) for p in model.get_classifier().parameters()}
        for parameter in model.parameters():
            parameter.requires_grad = id(parameter) in head
    wanted = _pretrained_normalisation(model, in_channels)
    if wanted is None or wanted == (tuple(mean), tuple(std)):
        return model
    return renormalise(model, (tuple(mean), tuple(std)), wanted)


def _pretrained_normalisation(model: nn.Module, channels: int) -> tuple[tuple, tuple] | None:
    """(mean, std) of the model's pretrained configuration, when it gives one per channel."""
    config = getattr(model, "pretrained_cfg", None) or {}
    mean, std = tuple(config.get("mean", ())), tuple(config.get("std", ()))
    return (mean, std) if len(mean) == len(std) == channels else None
