"""Dice, IoU, Tversky and focal losses for classification and segmentation, in three modes.

Shapes (``...`` is nothing for classification, ``H, W`` for segmentation):
- multiclass: logits ``(N, C, ...)``, integer targets ``(N, ...)``;
- binary: logits ``(N, 1, ...)`` or ``(N, ...)``, targets of the same shape with values 0 / 1
  (integer masks ``(N, ...)`` are accepted for ``(N, 1, ...)`` logits);
- multilabel: logits ``(N, C, ...)``, float targets ``(N, C, ...)`` with values 0 / 1.

Half-precision inputs are computed in float32 with autocast off (a float16 probability's log
underflows); float32 and float64 inputs keep their precision.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cvcore import OptionError

MODES = ("binary", "multiclass", "multilabel")
REDUCTIONS = ("mean", "sum", "none")


class LossInputError(OptionError):
    """Logits and targets whose shapes, dtypes or values do not fit the loss's mode."""


class ModeLoss(nn.Module):
    """Shared by the losses here: checks inputs, turns them into per-class (N*, C) views."""

    name = "loss"

    def __init__(self, mode: str, from_logits: bool, ignore_index: int | None, reduction: str) -> None:
        super().__init__()
        if mode not in MODES:
            raise OptionError(f"mode must be one of {MODES}, got {mode!r}.")
        if reduction not in REDUCTIONS:
            raise OptionError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
        self.mode, self.from_logits, self.ignore_index, self.reduction = mode, from_logits, ignore_index, reduction
        self._range_checked = False

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(logits.device.type, enabled=False):
            return self.compute(*self.prepare(at_least_float32(logits), target))

    def prepare(self, logits: torch.Tensor, target: torch.Tensor):
        """(logits, target, valid) as (M, C) float tensors, one row per sample or pixel."""
        if self.mode == "multiclass":
            return self._multiclass(logits, target)
        if self.mode == "binary" and target.dim() == logits.dim() - 1 and logits.dim() > 1 and logits.shape[1] == 1:
            target = target.unsqueeze(1)
        if target.shape != logits.shape:
            self._refuse(logits, target, "targets of the same shape as the logits")
        target = target.to(logits.dtype)
        valid = torch.ones_like(target) if self.ignore_index is None else (target != self.ignore_index).to(logits.dtype)
        self._check_range_once(target * valid, 0, 1, "0 or 1")
        return _rows(logits), _rows(target * valid), _rows(valid)

    def _multiclass(self, logits: torch.Tensor, target: torch.Tensor):
        if logits.dim() < 2 or target.shape != logits.shape[:1] + logits.shape[2:] or target.is_floating_point():
            self._refuse(logits, target, "integer targets of shape (N, ...) for logits (N, C, ...)")
        classes = logits.shape[1]
        valid = torch.ones_like(target, dtype=torch.bool) if self.ignore_index is None else target != self.ignore_index
        safe = torch.where(valid, target, torch.zeros_like(target))
        self._check_range_once(safe, 0, classes - 1, f"0..{classes - 1}")
        one_hot = F.one_hot(safe, classes).movedim(-1, 1).to(logits.dtype)
        mask = valid.unsqueeze(1).to(logits.dtype).expand_as(one_hot)
        return _rows(logits), _rows(one_hot * mask), _rows(mask)

    def _check_range_once(self, values: torch.Tensor, low: int, high: int, expected: str) -> None:
        # The first batch only: a check on every batch would cost a host-device sync per step.
        if self._range_checked or values.numel() == 0:
            return
        self._range_checked = True
        found_low, found_high = values.min().item(), values.max().item()
        if found_low < low or found_high > high:
            raise LossInputError(f"{self.name} (mode {self.mode}) expects target values {expected}"
                                 f"{'' if self.ignore_index is None else f' or ignore_index {self.ignore_index}'}; "
                                 f"found values from {found_low:g} to {found_high:g}.")

    def _refuse(self, logits: torch.Tensor, target: torch.Tensor, expected: str) -> None:
        raise LossInputError(f"{self.name} (mode {self.mode}) expects {expected}; got logits "
                             f"{tuple(logits.shape)} and target {tuple(target.shape)} {str(target.dtype)[6:]}.")

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.from_logits:
            return logits
        return logits.softmax(dim=1) if self.mode == "multiclass" else logits.sigmoid()

    def log_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """log p, computed stably from logits (log_softmax / logsigmoid)."""
        if not self.from_logits:
            return logits.clamp_min(1e-12).log()
        return logits.log_softmax(dim=1) if self.mode == "multiclass" else F.logsigmoid(logits)


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def _rows(tensor: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (N * ..., C); (N,) -> (N, 1)."""
    if tensor.dim() == 1:
        return tensor.unsqueeze(1)
    return tensor.movedim(1, -1).reshape(-1, tensor.shape[1])


class OverlapLoss(ModeLoss):
    """1 - (a*TP + smooth) / (a*TP + alpha*FP + beta*FN + smooth), per class over the batch.

    Dice is a=2, alpha=beta=1; IoU (Jaccard) a=1, alpha=beta=1; Tversky a=1 with its alpha, beta.
    The mean runs over the classes present in the target or in the (hard) prediction, so a class
    absent from both does not distort it.
    """

    def __init__(self, name: str, a: float, alpha: float, beta: float, *, mode: str, from_logits: bool,
                 smooth: float, ignore_index: int | None, reduction: str, classes: Sequence[int] | None) -> None:
        super().__init__(mode, from_logits, ignore_index, reduction)
        self.name, self.a, self.alpha, self.beta, self.smooth = name, a, alpha, beta, smooth
        self.classes = None if classes is None else list(classes)

    def compute(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        probs = self.probabilities(logits) * valid
        tp = (probs * target).sum(0)
        fp = (probs * (1 - target) * valid).sum(0)
        fn = ((1 - probs) * target).sum(0)
        score = (self.a * tp + self.smooth) / (self.a * tp + self.alpha * fp + self.beta * fn + self.smooth).clamp_min(1e-12)
        loss = 1 - score
        present = (target.sum(0) > 0) | (self._hard(probs) * valid).sum(0).gt(0)
        if self.classes is not None:
            keep = torch.zeros_like(present)
            keep[self.classes] = True
            loss, present = loss[keep], present[keep]
        if self.reduction == "none":
            return torch.where(present, loss, torch.zeros_like(loss))
        total = (loss * present).sum()
        return total if self.reduction == "sum" else total / present.sum().clamp_min(1)

    def _hard(self, probs: torch.Tensor) -> torch.Tensor:
        if self.mode == "multiclass":
            return F.one_hot(probs.argmax(1), probs.shape[1]).to(probs.dtype)
        return (probs > 0.5).to(probs.dtype)


class FocalLoss(ModeLoss):
    """Lin et al.'s focal loss per element: -alpha_t * (1 - p_t) ** gamma * log(p_t)."""

    name = "focal"

    def __init__(self, *, mode: str, from_logits: bool, alpha: float | list[float] | None, gamma: float,
                 ignore_index: int | None, reduction: str) -> None:
        super().__init__(mode, from_logits, ignore_index, reduction)
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = super().forward(logits, target)
        if self.reduction != "none":
            return loss
        if self.mode == "multiclass":  # one value per sample or pixel
            return loss.reshape(logits.shape[:1] + logits.shape[2:])
        if logits.dim() == 1:
            return loss.reshape(logits.shape)
        return loss.reshape(logits.shape[0], *logits.shape[2:], logits.shape[1]).movedim(-1, 1)

    def compute(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.mode == "multiclass":
            log_p = (self.log_probabilities(logits) * target).sum(1)  # log p_t of each row
            weight = self._class_alpha(target)
            row_valid = valid[:, 0]
        else:
            log_p_pos = self.log_probabilities(logits)
            log_p_neg = F.logsigmoid(-logits) if self.from_logits else (1 - logits).clamp_min(1e-12).log()
            log_p = target * log_p_pos + (1 - target) * log_p_neg
            alpha = self._alpha(target)
            weight = 1.0 if alpha is None else target * alpha + (1 - target) * (1 - alpha)
            row_valid = valid
        loss = -weight * (1 - log_p.exp()) ** self.gamma * log_p * row_valid
        if self.reduction == "none":
            return loss
        return loss.sum() if self.reduction == "sum" else loss.sum() / row_valid.sum().clamp_min(1)

    def _alpha(self, target: torch.Tensor) -> float | torch.Tensor | None:
        """alpha as a number, or as one weight per class (a column of the (M, C) rows)."""
        if self.alpha is None or isinstance(self.alpha, (int, float)):
            return self.alpha
        weights = torch.tensor(self.alpha, dtype=target.dtype, device=target.device)
        if len(weights) != target.shape[1]:
            raise OptionError(f"focal: {len(weights)} alpha weights for {target.shape[1]} classes; give one "
                              f"per class, or a single number.")
        return weights

    def _class_alpha(self, target: torch.Tensor):
        alpha = self._alpha(target)
        if alpha is None:
            return 1.0
        return alpha if isinstance(alpha, (int, float)) else (target * alpha).sum(1)


class DiceWithCrossEntropy(nn.Module):
    """dice_weight * Dice + bce_weight * cross-entropy (binary, or softmax for multiclass)."""

    def __init__(self, dice: OverlapLoss, cross_entropy: FocalLoss, dice_weight: float, bce_weight: float) -> None:
        super().__init__()
        self.dice, self.cross_entropy = dice, cross_entropy
        self.dice_weight, self.bce_weight = dice_weight, bce_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice_weight * self.dice(logits, target) + self.bce_weight * self.cross_entropy(logits, target)
