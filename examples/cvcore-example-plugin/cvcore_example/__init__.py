"""An example cvcore plugin: one component of every kind, registered through `cvcore.plugins`."""

from __future__ import annotations

import cvcore


@cvcore.hookimpl
def register_datasets(register):
    register("stripes", stripes)


@cvcore.hookimpl
def register_models(register):
    register("tiny_cnn", tiny_cnn)


@cvcore.hookimpl
def register_losses(register):
    register("focal_ce", focal_ce)


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

    :param size: number of training images (validation gets a quarter as many).
    :param image_size: side of the square images.
    :param seed: seed of the generator.
    """
    from cvcore_example.components import make_stripes

    return make_stripes(size, image_size, seed)


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


def halving(optimizer, *, every: int = 2):
    """Halve the learning rate every `every` epochs.

    :param every: epochs between halvings.
    """
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=0.5)


def epoch_timer():
    """Record the wall time of every epoch in `durations`."""
    from cvcore_example.components import EpochTimer

    return EpochTimer()
