"""Losses that take integer class targets and compare them with one-hot vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def one_hot_like(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Float targets, and 0/1 targets of the logits' shape (multi-label rows stored as bytes), pass
    through as floats; integer class indices become one-hot rows of logits' width."""
    if target.is_floating_point() or target.shape == logits.shape:
        return target.to(logits.dtype)
    return F.one_hot(target, logits.shape[1]).to(logits.dtype)


class OneHotBCE(nn.Module):
    def __init__(self, num_classes: int, pos_weight: list[float] | None) -> None:
        super().__init__()
        self.num_classes = num_classes
        weight = torch.tensor(pos_weight, dtype=torch.float32) if pos_weight else None
        self.register_buffer("pos_weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), one_hot_like(logits.float(), target),
                                                  pos_weight=self.pos_weight)


class SoftmaxMSE(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = logits.float().softmax(dim=1)
        return F.mse_loss(probs, one_hot_like(probs, target))


class AsymmetricLoss(nn.Module):
    def __init__(self, gamma_pos: float, gamma_neg: float, clip: float) -> None:
        super().__init__()
        self.gamma_pos, self.gamma_neg, self.clip = gamma_pos, gamma_neg, clip

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = logits.float(), one_hot_like(logits.float(), target)
        p = logits.sigmoid()
        shifted = (p - self.clip).clamp_min(0)
        positive = (1 - p).pow(self.gamma_pos) * F.logsigmoid(logits)
        # log(1 - p_m); without a clip, logsigmoid(-x) is log(1 - p) computed stably
        log_not = torch.log1p(-shifted.clamp_max(1 - 1e-6)) if self.clip else F.logsigmoid(-logits)
        negative = shifted.pow(self.gamma_neg) * log_not
        return -(target * positive + (1 - target) * negative).sum(1).mean()


class CrossEntropy(nn.CrossEntropyLoss):
    """torch's cross-entropy, normalised the same way for class probabilities (mixup, cutmix) as for
    class ids: with class weights, by the weight each target carries (for ids, the sum of their
    weights), where torch divides probabilities by the batch size and so changes the loss's scale
    as soon as targets become soft."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.weight is None or not target.is_floating_point():
            return super().forward(logits, target)
        total = F.cross_entropy(logits, target, weight=self.weight, reduction="sum",
                                label_smoothing=self.label_smoothing)
        weights = self.weight.view(1, -1, *[1] * (target.dim() - 2))
        return total / (target * weights).sum()
