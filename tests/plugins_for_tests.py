"""Throwaway plugins for the tests, registered with cvcore.testing.plugin_registered."""

from types import SimpleNamespace
from typing import Annotated

import cvcore


def plugin(**hooks) -> SimpleNamespace:
    """An object whose attributes are hook implementations, like a plugin module."""
    return SimpleNamespace(**{name: cvcore.hookimpl(function) for name, function in hooks.items()})


def duplicate_lenet():
    """A model also called lenet (the built-in models plugin has one)."""
    from torch import nn

    return nn.Linear(1, 1)


def needs_depth(*, depth: int, width: int = 4):
    """A model with a required option.

    :param depth: number of layers.
    :param width: channels per layer.
    """
    from torch import nn

    return nn.Sequential(*(nn.Linear(width, width) for _ in range(depth)))


def ranged(*, share: Annotated[float, cvcore.Between(0.0, 1.0)] = 0.5,
           pair: Annotated[tuple[float, float], cvcore.Between(0.0, 10.0, ordered=True)] = (1.0, 2.0),
           count: Annotated[int, cvcore.Between(1)] | None = None):
    """A model whose options declare their ranges.

    :param share: a share.
    :param pair: a (low, high) pair.
    :param count: a count, or none.
    """
    from torch import nn

    return nn.Linear(1, 1)
