"""Throwaway plugins for the tests, registered with cvcore.testing.plugin_registered."""

from types import SimpleNamespace

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
