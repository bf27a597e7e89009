"""torchvision classifiers adapted to a data set: head, input channels, weights, freezing."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from cvcore import CvcoreError
from cvcore.checkpoint import load_weights_file, torchvision_downloads

IMAGENET_CLASSES = 1000
# Some architectures carry auxiliary heads in training mode; cvcore trains the main head only.
_NO_AUX = {"googlenet", "inception_v3"}
# Their weights in torchvision's files, which cvcore's models (built without them) leave out.
_AUX_PREFIXES = ("AuxLogits.", "aux1.", "aux2.", "aux_classifier.")


def build_torchvision(arch: str, *, num_classes: int, in_channels: int, pretrained: bool,
                      weights: Path | None, freeze: bool) -> nn.Module:
    extra = {"aux_logits": False} if arch in _NO_AUX else {}
    if pretrained:
        model = _pretrained(arch, extra)
        if num_classes != IMAGENET_CLASSES:
            replace_head(model, num_classes)
    else:
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **extra)
    if weights is not None:
        load_weights_file(model, weights, skipped_prefixes=_AUX_PREFIXES)
    if freeze:
        freeze_all_but_head(model)
    if in_channels != 3:
        model = nn.Sequential(nn.Conv2d(in_channels, 3, 1), model)
    return model


class MainOutput(nn.Module):
    """torchvision's segmentation models return {"out": ..., "aux": ...}; cvcore trains "out"."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def build_torchvision_segmentation(arch: str, *, num_classes: int, in_channels: int, pretrained: bool,
                                   weights: Path | None, freeze: bool) -> nn.Module:
    if pretrained:
        model = _pretrained(arch, {"aux_loss": None})
        head = model.classifier
        last = head[-1] if isinstance(head, nn.Sequential) else head.high_classifier
        if last.out_channels != num_classes:
            replace_head(head, num_classes)
            if hasattr(head, "low_classifier"):  # LR-ASPP has two heads that are summed
                head.low_classifier = nn.Conv2d(head.low_classifier.in_channels, num_classes, 1)
    else:
        model = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=num_classes,
                                             aux_loss=False)
    model.aux_classifier = None
    if weights is not None:
        load_weights_file(model, weights, skipped_prefixes=_AUX_PREFIXES)
    if freeze:
        model.backbone = frozen(model.backbone)
    model = MainOutput(model)
    if in_channels != 3:
        model = nn.Sequential(nn.Conv2d(in_channels, 3, 1), model)
    return model


def _pretrained(arch: str, extra: dict) -> nn.Module:
    """torchvision's default weights, read without unpickling code (see torchvision_downloads)."""
    with torchvision_downloads(f"'{arch}'"):
        return torchvision.models.get_model(arch, weights="DEFAULT", **extra)


def head_path(model: nn.Module) -> str:
    """The module path of the final classification layer: the last Linear or 1x1 Conv2d."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            last = name
    if last is None:
        raise CvcoreError(f"{type(model).__name__} has no Linear or Conv2d layer to use as its head")
    return last


def replace_head(model: nn.Module, num_classes: int) -> None:
    path = head_path(model)
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride)
    setattr(parent, attr, new)


def freeze_all_but_head(model: nn.Module) -> None:
    """Freeze everything but the head; the head's parameters keep training."""
    head = head_path(model)
    frozen(model)
    for name, param in model.named_parameters():
        param.requires_grad = name.startswith(head + ".")


def frozen(module: nn.Module) -> nn.Module:
    """``module`` with no gradients and its BatchNorm layers as FrozenBatchNorm2d: a frozen layer's
    running statistics must not move either (a BatchNorm in training mode updates them every batch)."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for param in module.parameters():
        param.requires_grad = False
    if isinstance(module, nn.BatchNorm2d) and module.running_mean is not None:
        replacement = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        replacement.running_mean.copy_(module.running_mean)
        replacement.running_var.copy_(module.running_var)
        if module.affine:
            replacement.weight.copy_(module.weight.detach())
            replacement.bias.copy_(module.bias.detach())
        return replacement
    for name, child in module.named_children():
        setattr(module, name, frozen(child))
    return module
