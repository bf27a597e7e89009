"""The hooks through which plugins register components: one per kind, each called once per plugin.

Every hook receives ``register``, a callable bound to the calling plugin so that each component
records which plugin and distribution provided it. A plugin calls it once per component::

    register(name, factory, *, summary=None, aliases=(), **metadata)

- ``name``: the short name users type (``lenet``); the qualified name is ``PLUGIN:NAME``.
- ``factory``: a function that builds the component. It must stay cheap to import: keep heavy
  imports (torch, torchvision) inside its body so that listing plugins imports nothing heavy.
  Its keyword parameters are the component's *options*; their annotations and defaults, and the
  ``:param name: help`` lines of its docstring, are what ``cv info`` shows and what the CLI checks
  values against before anything is built.
- ``summary``: one line for ``cv list``; defaults to the first line of the factory's docstring.
- ``aliases``: further short names for the same component.
- ``tasks`` (models, losses and transforms): the names of the registered tasks the component supports;
  ``cv train`` refuses a data set of another task. Left out, any task is allowed.
- ``default`` (tasks): True for the one task a data set gets when its DataInfo names none.

Options whose names match a field of :class:`cvcore.DataInfo` (``num_classes``, ``in_channels``,
``image_size``, ``task``, ``class_names``, ``ignore_index``, ``mean``, ``std``) or of the run plan (``total_epochs``, ``steps_per_epoch``) are
filled in by the Trainer from the data and the run unless the user sets them, so components adapt
to the data set without configuration.

A plugin implements any subset of the hooks, and a hook implementation may leave out arguments
of its spec (pluggy's rule), so adding an argument to a spec later breaks no plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from cvcore.plugins.registry import Register

hookspec = pluggy.HookspecMarker("cvcore")

# -------------------------------------------------------------------------------------------------
# Tasks
# -------------------------------------------------------------------------------------------------


@hookspec
def register_tasks(register: Register) -> None:
    """Register tasks: kinds of problem (classification, segmentation, multi-label, ...).

    :param register: call ``register(name, factory, default=False, output=..., loss=...)`` once
        per task: ``output`` is the form of model output it needs (``"vector"`` per image,
        ``"map"`` per pixel: models registered with that form serve it), ``loss`` the loss a run
        gets unless it chooses one (qualified, ``"plugin:name"``).

    The factory takes no options and returns a :class:`cvcore.Task`: the output shape it expects
    of a model, the metrics it computes on the device (summed across processes), their per-class
    detail, the metric that picks the best epoch, and how ``cv predict`` reports an output. A data
    set names its task in ``DataInfo.task``; models and losses list the tasks they support.

    Example::

        @cvcore.hookimpl
        def register_tasks(register):
            register("regression", Regression)

        class Regression(cvcore.Task):
            default_monitor = "val_loss"
            ...
    """


# -------------------------------------------------------------------------------------------------
# Data
# -------------------------------------------------------------------------------------------------


@hookspec
def register_datasets(register: Register) -> None:
    """Register data sets by name.

    :param register: call ``register(name, factory, summary=...)`` once per data set; with
        ``task="name"`` (the task its DataInfo will name) a run's monitor and components are
        checked against that task's metrics before any data is read; with ``loss="plugin:name"``
        a run gets that loss unless it chooses one (else its task's suggested loss); with
        ``transforms=(...)`` `cv info` shows the transforms its DataSplits suggest by default.

    The factory is called with keyword options only (``root`` receives ``--data-dir`` when the
    factory declares it) and returns a :class:`cvcore.DataSplits`: the training set, the
    validation set, and a :class:`cvcore.DataInfo` describing them (task, number of classes,
    class names, channels, image size, normalisation). Each set is a map-style
    ``torch.utils.data.Dataset`` yielding ``(image_tensor, target)`` pairs.

    Example::

        @cvcore.hookimpl
        def register_datasets(register):
            register("noise", make_noise)

        def make_noise(*, size: int = 256, seed: int = 0):
            '''Gaussian noise images in 10 classes, for smoke tests.'''
            from my_plugin.data import build_noise  # heavy imports stay inside
            return build_noise(size, seed)
    """


@hookspec
def register_transforms(register: Register) -> None:
    """Register training augmentations, applied to whole batches on the training device.

    :param register: call ``register(name, factory, tasks=(...))`` once per transform; ``tasks``
        names the tasks whose targets it knows how to carry (left out: any task), and
        ``soft_targets=True`` says it turns class ids into class probabilities (as mixup does), so
        that a run pairing it with a loss that cannot take them is refused before any data is read.

    The factory is called with keyword options only (declare ``image_size``, ``num_classes``,
    ``ignore_index``, ``mean`` or ``std`` to have them filled from the data set) and returns a
    :class:`cvcore.Transform`: a callable taking ``(images, targets, generator)``, images being
    float pixels in [0, 1], that draws its parameters per image and returns both. Runs list
    them in order (``--transform flip --transform color_jitter``).

    Example::

        @cvcore.hookimpl
        def register_transforms(register):
            register("invert", make_invert)

        def make_invert(*, p: float = 0.5):
            '''Invert the colours of each image with probability p.'''
            from my_plugin.transforms import Invert
            return Invert(p)
    """


# -------------------------------------------------------------------------------------------------
# Models and losses
# -------------------------------------------------------------------------------------------------


@hookspec
def register_models(register: Register) -> None:
    """Register models by name.

    :param register: call ``register(name, factory, summary=..., output="vector")`` once per model:
        ``output`` is the form of its output (``"vector"``: ``(N, num_classes)``, one vector per
        image; ``"map"``: ``(N, num_classes, H, W)``, one per pixel), and the model serves every task
        registered as needing that form; or ``tasks=(...)`` names the tasks it serves.

    The factory is called with keyword options only and returns a ``torch.nn.Module`` that maps
    a float batch ``(N, C, H, W)`` to its output. Declare ``num_classes`` (filled with the output
    size the task asks for: the number of classes, or, say, 2 per keypoint) and ``in_channels``
    (and ``image_size`` if the architecture needs it) to have them filled from the data set.

    Example::

        @cvcore.hookimpl
        def register_models(register):
            register("tiny", make_tiny)

        def make_tiny(*, num_classes: int = 10, in_channels: int = 3):
            '''A single linear layer over globally pooled pixels.'''
            import torch.nn as nn
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(in_channels, num_classes))
    """


@hookspec
def register_losses(register: Register) -> None:
    """Register loss functions by name.

    :param register: call ``register(name, factory, summary=..., tasks=(...))`` once per loss;
        ``soft_targets=True`` says it also takes class probabilities ``(N, num_classes)`` in place of
        class ids (what mixup and cutmix make).

    The factory is called with keyword options only and returns a callable (usually an
    ``nn.Module``) taking ``(logits, target)`` and returning a scalar tensor. ``num_classes``
    is filled from the data set when declared.

    Example::

        @cvcore.hookimpl
        def register_losses(register):
            register("l1_logits", make_l1)

        def make_l1(*, num_classes: int = 10):
            '''L1 distance between softmax output and one-hot target.'''
            from my_plugin.losses import L1Logits
            return L1Logits(num_classes)
    """


# -------------------------------------------------------------------------------------------------
# Optimisation
# -------------------------------------------------------------------------------------------------


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizers by name.

    :param register: call ``register(name, factory, summary=...)`` once per optimizer.

    The factory receives the parameters to optimise as its one positional argument (an iterable
    of tensors or of parameter-group dicts) and the options as keywords (``lr`` among them); it
    returns a ``torch.optim.Optimizer``.

    Example::

        @cvcore.hookimpl
        def register_optimizers(register):
            register("sgd_plain", make_sgd)

        def make_sgd(params, *, lr: float = 0.01):
            '''Plain SGD without momentum.'''
            import torch
            return torch.optim.SGD(params, lr=lr)
    """


@hookspec
def register_schedulers(register: Register) -> None:
    """Register learning-rate schedulers by name.

    :param register: call ``register(name, factory, interval="step" | "epoch")`` once per
        scheduler. ``interval`` says whether the Trainer calls ``scheduler.step()`` after every
        optimizer step or after every epoch (default ``"epoch"``).

    The factory receives the optimizer as its one positional argument and the options as
    keywords (declare ``total_epochs`` and ``steps_per_epoch`` to receive the run's plan); it returns
    a ``torch.optim.lr_scheduler.LRScheduler``. Several schedulers may be chained in one run
    (``--scheduler warmup --scheduler multistep``): each multiplies the learning rate that the
    others leave, so write them in torch's chainable form.

    Example::

        @cvcore.hookimpl
        def register_schedulers(register):
            register("halve", make_halve, interval="epoch")

        def make_halve(optimizer, *, every: int = 10):
            '''Halve the learning rate every `every` epochs.'''
            import torch
            return torch.optim.lr_scheduler.StepLR(optimizer, every, 0.5)
    """


# -------------------------------------------------------------------------------------------------
# Callbacks
# -------------------------------------------------------------------------------------------------


@hookspec
def register_callbacks(register: Register) -> None:
    """Register training callbacks by name.

    :param register: call ``register(name, factory, summary=...)`` once per callback.

    The factory is called with keyword options only and returns a :class:`cvcore.Callback`,
    whose methods (``on_fit_start``, ``on_epoch_end``, ...) the Trainer calls directly:
    callbacks never go through pluggy inside the training loop.

    Example::

        @cvcore.hookimpl
        def register_callbacks(register):
            register("bell", make_bell)

        def make_bell():
            '''Ring the terminal bell when training ends.'''
            from my_plugin.callbacks import Bell
            return Bell()
    """
