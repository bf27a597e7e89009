"""Built-in classification losses. Light module: torch is imported inside factories."""

from __future__ import annotations

import cvcore


@cvcore.hookimpl
def register_losses(register):
    register("cross_entropy", cross_entropy, aliases=("ce",))
    register("bce", bce)
    register("mse", mse)


def cross_entropy(*, num_classes: int = 0, label_smoothing: float = 0.0,
                  weight: list[float] | None = None):
    """Softmax cross-entropy over class logits, with label smoothing and class weights.

    :param num_classes: classes of the data (filled in; checks the length of weight).
    :param label_smoothing: share of the target mass spread over all classes (0 to 1).
    :param weight: one weight per class, for unbalanced data.
    """
    import torch
    from torch import nn

    from cvcore_losses.checks import check_range, check_weight

    check_range("label_smoothing", label_smoothing, 0.0, 1.0)
    check_weight(weight, num_classes)
    tensor = torch.tensor(weight, dtype=torch.float32) if weight else None
    return nn.CrossEntropyLoss(weight=tensor, label_smoothing=label_smoothing)


def bce(*, num_classes: int = 0, pos_weight: list[float] | None = None):
    """Binary cross-entropy on logits; integer class targets are one-hot encoded (one-vs-rest).

    :param num_classes: classes of the data (filled in; used to one-hot integer targets).
    :param pos_weight: weight of the positive examples, one per class.
    """
    from cvcore_losses.classification import OneHotBCE

    from cvcore_losses.checks import check_weight

    check_weight(pos_weight, num_classes)
    return OneHotBCE(num_classes, pos_weight)


def mse(*, num_classes: int = 0):
    """Mean squared error between softmax probabilities and one-hot targets (or float targets).

    :param num_classes: classes of the data (filled in; used to one-hot integer targets).
    """
    from cvcore_losses.classification import SoftmaxMSE

    return SoftmaxMSE(num_classes)
