"""Built-in tasks: classification (the default), segmentation and multi-label classification."""

from __future__ import annotations

import cvcore


@cvcore.hookimpl
def register_tasks(register):
    # output: the form of a model's output the task needs; loss: the loss a run gets unless it chooses
    register("classification", classification_task, default=True, output="vector", loss="losses:cross_entropy")
    register("segmentation", segmentation_task, output="map", loss="losses:cross_entropy")
    register("multilabel", multilabel_task, output="vector", loss="losses:bce")


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
