"""An example cvcore plugin: one component of every kind, registered through `cvcore.plugins`,
including a task of its own (regression) with a data set and a loss for it."""

from __future__ import annotations

from typing import Annotated

import cvcore
from cvcore import Between


@cvcore.hookimpl
def register_tasks(register):
    # output="vector": a model's output is one vector per image, so every built-in classifier
    # (lenet, resnet18, tv/...) serves it, sized by Regression.output_size; loss: the default loss
    register("regression", regression, output="vector", loss="example:huber")


@cvcore.hookimpl
def register_datasets(register):
    register("stripes", stripes)
    register("stripe_period", stripe_period, task="regression")


@cvcore.hookimpl
def register_models(register):
    register("tiny_cnn", tiny_cnn)


@cvcore.hookimpl
def register_losses(register):
    register("focal_ce", focal_ce, tasks=("classification",))
    register("huber", huber, tasks=("regression",))


@cvcore.hookimpl
def register_optimizers(register):
    register("signsgd", signsgd)


@cvcore.hookimpl
def register_schedulers(register):
    register("halving", halving, interval="epoch")


@cvcore.hookimpl
def register_callbacks(register):
    register("epoch_timer", epoch_timer)


def stripes(*, size: int = 512, image_size: int = 16, seed: int = 0):
    """Synthetic horizontal vs vertical stripes with noise, 2 classes; no files needed.

    Returned as cvcore.TensorImages, so the Trainer keeps the images on the device and builds
    (flipped) batches there.

    :param size: number of training images (validation gets a quarter as many).
    :param image_size: side of the square images.
    :param seed: seed of the generator.
    """
    from cvcore_example.components import make_stripes

    return make_stripes(size, image_size, seed)


def regression():
    """Predict numbers: outputs (N, targets), float targets; mean absolute error picks the best epoch."""
    from cvcore_example.regression_task import Regression

    return Regression()


def stripe_period(*, size: int = 512, image_size: int = 16, seed: int = 0):
    """Vertical stripes of random period (2 to 8 pixels); the target is the period (regression).

    :param size: number of training images (validation gets a quarter as many).
    :param image_size: side of the square images.
    :param seed: seed of the generator.
    """
    from cvcore_example.regression_task import make_periods

    return make_periods(size, image_size, seed)


def huber(*, delta: float = 1.0):
    """Huber loss: squared error below delta, absolute error above it.

    :param delta: where the loss turns from quadratic to linear (positive).
    """
    import torch

    if delta <= 0:
        raise cvcore.OptionError(f"Option 'delta' of loss 'huber' must be positive, got {delta}.")
    return torch.nn.HuberLoss(delta=delta)


def tiny_cnn(*, num_classes: int = 2, in_channels: int = 1, width: int = 8):
    """One 3x3 conv layer, global average pooling and a linear head.

    :param num_classes: output classes (from the data set).
    :param in_channels: input channels (from the data set).
    :param width: channels of the conv layer.
    """
    from torch import nn

    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


def focal_ce(*, gamma: float = 2.0):
    """Cross-entropy down-weighting easy examples by (1 - p_t) ** gamma.

    :param gamma: focusing parameter; 0 gives plain cross-entropy.
    """
    from cvcore_example.components import FocalCrossEntropy

    return FocalCrossEntropy(gamma)


def signsgd(params, *, lr: float = 0.01):
    """Sign-SGD: move each weight by lr in the direction of minus its gradient's sign.

    :param lr: step size.
    """
    from cvcore_example.components import SignSGD

    return SignSGD(params, lr)


def halving(optimizer, *, every: Annotated[int, Between(1)] = 2):
    """Halve the learning rate every `every` epochs.

    :param every: epochs between halvings (its range is checked by cvcore before any data is read).
    """
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=0.5)


def epoch_timer(*, filename: str = "epoch_times.csv"):
    """Record the wall time of every epoch, and write them to a CSV file in the run directory.

    :param filename: name of the CSV file (epoch, seconds), written in the run directory.
    """
    from pathlib import PurePath

    from cvcore_example.components import EpochTimer

    if PurePath(filename).name != filename or not filename:
        raise cvcore.OptionError(f"Option 'filename' of callback 'epoch_timer' must be a plain file name "
                                 f"(it goes in the run directory), got {filename!r}.")
    return EpochTimer(filename)
