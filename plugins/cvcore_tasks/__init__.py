"""Built-in tasks: classification (the default), segmentation and multi-label classification."""

from __future__ import annotations

import cvcore


@cvcore.hookimpl
def register_tasks(register):
    register("classification", classification_task, default=True)
    register("segmentation", segmentation_task)
    register("multilabel", multilabel_task)


def classification_task():
    """One class per image: logits (N, C); top-1/top-5 accuracy, per-class accuracy, confusion matrix."""
    from cvcore_tasks.classification import Classification

    return Classification()


def segmentation_task():
    """A class per pixel: logits (N, C, H, W); pixel accuracy, mean IoU and Dice, per-class IoU."""
    from cvcore_tasks.segmentation import Segmentation

    return Segmentation()


def multilabel_task():
    """Any number of classes per image: logits (N, C), 0/1 targets (N, C); mAP, F1 at 0.5, per-class AP."""
    from cvcore_tasks.multilabel import Multilabel

    return Multilabel()
