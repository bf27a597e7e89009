"""Built-in losses: classification ones and the overlap losses (Dice, IoU, Tversky, focal).

Light module: torch is imported inside factories.
"""

from __future__ import annotations

from typing import Annotated, Literal

import cvcore
from cvcore import Between

BOTH = ("classification", "segmentation")
Mode = Literal["binary", "multiclass", "multilabel"]
Reduction = Literal["mean", "sum", "none"]


@cvcore.hookimpl
def register_losses(register):
    # soft_targets: takes the class probabilities that mixup and cutmix make
    register("cross_entropy", cross_entropy, aliases=("ce",), tasks=BOTH, soft_targets=True)
    register("bce", bce, tasks=("classification", "multilabel"), soft_targets=True)
    register("mse", mse, tasks=("classification",), soft_targets=True)
    register("dice", dice, tasks=BOTH)
    register("iou", iou, aliases=("jaccard",), tasks=BOTH)
    register("tversky", tversky, tasks=BOTH)
    register("focal", focal, tasks=(*BOTH, "multilabel"))
    register("asymmetric", asymmetric, aliases=("asl",), tasks=("multilabel",))
    register("dice_bce", dice_bce, tasks=BOTH)


def cross_entropy(*, num_classes: int = 0, label_smoothing: Annotated[float, Between(0.0, 1.0)] = 0.0,
                  weight: list[float] | None = None, ignore_index: int | None = None):
    """Softmax cross-entropy over class logits, with label smoothing and class weights.

    :param num_classes: classes of the data (filled in; checks the length of weight).
    :param label_smoothing: share of the target mass spread over all classes (0 to 1).
    :param weight: one weight per class, for unbalanced data.
    :param ignore_index: target value left out of the loss (filled in from the data set:
        255 for segmentation masks).
    """
    import torch

    from cvcore_losses.checks import check_weight
    from cvcore_losses.classification import CrossEntropy

    check_weight(weight, num_classes)
    tensor = torch.tensor(weight, dtype=torch.float32) if weight else None
    return CrossEntropy(weight=tensor, label_smoothing=label_smoothing,
                        ignore_index=-100 if ignore_index is None else ignore_index)


def bce(*, num_classes: int = 0, pos_weight: list[float] | None = None):
    """Binary cross-entropy on logits; integer class targets are one-hot encoded (one-vs-rest).

    :param num_classes: classes of the data (filled in; used to one-hot integer targets).
    :param pos_weight: weight of the positive examples, one per class.
    """
    from cvcore_losses.checks import check_weight
    from cvcore_losses.classification import OneHotBCE

    check_weight(pos_weight, num_classes)
    return OneHotBCE(num_classes, pos_weight)


def mse(*, num_classes: int = 0):
    """Mean squared error between softmax probabilities and one-hot targets (or float targets).

    :param num_classes: classes of the data (filled in; used to one-hot integer targets).
    """
    from cvcore_losses.classification import SoftmaxMSE

    return SoftmaxMSE(num_classes)


# Overlap losses are ratios over all the pixels of a batch, not means of per-image terms.
BATCH_NOTE = ("Computed over the batch's pixels together, so its mean over batches (val_loss) depends on the "
              "batch size; val_miou and val_mdice do not.")
_OVERLAP_PARAMS = """
    :param mode: binary, multiclass (integer targets) or multilabel (one 0/1 channel per class).
    :param from_logits: apply softmax (multiclass) or sigmoid first; false if inputs are probabilities.
    :param smooth: added to numerator and denominator.
    :param ignore_index: target value whose pixels are left out.
    :param reduction: mean or sum over the classes present, or none (one value per class).
    :param classes: class indices to average over (default all).
"""


def _overlap(name: str, a: float, alpha: float, beta: float, **options):
    from cvcore_losses.overlap import OverlapLoss

    return OverlapLoss(name, a, alpha, beta, **options)


def _overlap_factory(name: str, a: float, summary: str):
    """Dice and IoU share every option; only the weight ``a`` of the true positives differs."""

    def factory(*, mode: Mode = "multiclass", from_logits: bool = True, smooth: float = 0.0,
                ignore_index: int | None = None, reduction: Reduction = "mean", classes: list[int] | None = None):
        return _overlap(name, a, 1.0, 1.0, mode=mode, from_logits=from_logits, smooth=smooth,
                        ignore_index=ignore_index, reduction=reduction, classes=classes)

    factory.__name__ = name
    factory.__doc__ = summary + " " + BATCH_NOTE + "\n" + _OVERLAP_PARAMS
    return factory


dice = _overlap_factory("dice", 2.0, "Soft Dice loss 1 - (2TP + s) / (2TP + FP + FN + s), per class over the batch, "
                                     "then averaged.")
iou = _overlap_factory("iou", 1.0, "Soft IoU (Jaccard) loss 1 - (TP + s) / (TP + FP + FN + s), per class over the "
                                   "batch, then averaged.")


def tversky(*, mode: Mode = "multiclass", from_logits: bool = True, alpha: float = 0.3, beta: float = 0.7,
            smooth: float = 0.0, ignore_index: int | None = None, reduction: Reduction = "mean",
            classes: list[int] | None = None):
    return _overlap("tversky", 1.0, alpha, beta, mode=mode, from_logits=from_logits, smooth=smooth,
                    ignore_index=ignore_index, reduction=reduction, classes=classes)


tversky.__doc__ = """Tversky loss 1 - (TP + s) / (TP + alpha FP + beta FN + s): weighs misses and false alarms apart.
    """ + BATCH_NOTE + """

    :param alpha: weight of false positives.
    :param beta: weight of false negatives (alpha = beta = 0.5 is Dice, 1 and 1 is IoU).""" + _OVERLAP_PARAMS


def focal(*, mode: Mode | None = None, from_logits: bool = True, alpha: float | list[float] | None = None,
          gamma: float = 2.0, ignore_index: int | None = None, reduction: Reduction = "mean", task: str | None = None):
    """Focal loss (Lin et al.): -alpha_t (1 - p_t)^gamma log p_t per element, down-weighting easy ones.

    :param mode: binary, multiclass (integer targets) or multilabel (one 0/1 channel per class);
        default: multilabel for multi-label data, else multiclass.
    :param from_logits: inputs are logits (log-probabilities computed stably); false for probabilities.
    :param alpha: binary/multilabel: weight of positives (negatives get 1 - alpha; 0.25 in the paper);
        multiclass: one weight, or one per class.
    :param gamma: focusing parameter; 0 gives (weighted) cross-entropy.
    :param ignore_index: target value whose elements are left out.
    :param reduction: mean or sum over elements, or none (the per-element losses).
    :param task: the data's task (filled in from the data set; chooses the default mode).
    """
    from cvcore_losses.overlap import FocalLoss

    mode = mode or ("multilabel" if task and cvcore.task_name(task) == "multilabel" else "multiclass")
    return FocalLoss(mode=mode, from_logits=from_logits, alpha=alpha, gamma=gamma,
                     ignore_index=ignore_index, reduction=reduction)


def asymmetric(*, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: Annotated[float, Between(0.0, 1.0)] = 0.05):
    """Asymmetric loss for multi-label data (Ridnik et al., 2021): focuses on the few positives.

    Per class, with p = sigmoid(logit): positives -(1 - p)^gamma_pos log p; negatives, with the
    probability shifted down by clip (p_m = max(p - clip, 0)), -p_m^gamma_neg log(1 - p_m). Summed
    over classes, averaged over images.

    :param gamma_pos: focusing of the positives (0: plain log-likelihood).
    :param gamma_neg: focusing of the negatives: easy negatives count less.
    :param clip: probability margin under which negatives cost nothing (0 turns it off).
    """
    from cvcore_losses.classification import AsymmetricLoss

    return AsymmetricLoss(gamma_pos, gamma_neg, clip)


def dice_bce(*, mode: Mode = "multiclass", from_logits: bool = True, smooth: float = 0.0,
             ignore_index: int | None = None, dice_weight: float = 1.0, bce_weight: float = 1.0):
    """Dice plus cross-entropy (binary cross-entropy, or softmax cross-entropy in multiclass mode).
    Its Dice term is computed over the batch's pixels together, so val_loss depends on the batch size.

    :param mode: binary, multiclass (integer targets) or multilabel (one 0/1 channel per class).
    :param from_logits: inputs are logits; false if they are probabilities.
    :param smooth: added to the Dice numerator and denominator.
    :param ignore_index: target value whose pixels are left out.
    :param dice_weight: weight of the Dice term.
    :param bce_weight: weight of the cross-entropy term.
    """
    from cvcore_losses.overlap import DiceWithCrossEntropy, FocalLoss

    shared = {"mode": mode, "from_logits": from_logits, "ignore_index": ignore_index}
    return DiceWithCrossEntropy(dice(smooth=smooth, **shared),
                                FocalLoss(alpha=None, gamma=0.0, reduction="mean", **shared),
                                dice_weight, bce_weight)
