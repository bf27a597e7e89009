"""Tasks: what a kind of problem asks of data, model and loss, and how it is measured and shown.

The kernel knows no task by name. Plugins register tasks through ``register_tasks``; the built-in
``tasks`` plugin registers the ones cvcore ships. A data set names its task in ``DataInfo.task``;
``None`` means the task registered with ``default=True``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cvcore.errors import ConfigError, CvcoreError, PluginError, did_you_mean, one_line


def is_loss(name: str) -> bool:
    """Whether a logged metric is a loss: ``val_loss``, ``train_loss``, a term ``train_loss_box_reg``."""
    return name.endswith("loss") or "loss_" in name


def metric_mode(name: str) -> str:
    """'min' for a metric where lower is better (a loss), else 'max': the one rule for monitors."""
    return "min" if is_loss(name) else "max"


class Monitor:
    """Which epoch is best by one metric: the one rule, used by the Trainer, the checkpoint callback
    and early stopping. A non-finite value never improves; ``min_delta`` is the margin an
    improvement must clear. ``mode`` defaults to :func:`metric_mode`."""

    def __init__(self, name: str, mode: str | None = None, min_delta: float = 0.0) -> None:
        self.name, self.mode, self.min_delta = name, mode or metric_mode(name), min_delta
        self.best: float | None = None
        self.best_epoch: int | None = None

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value`` of ``epoch``; True if it is the best so far (and now recorded as such)."""
        if not math.isfinite(value) or not self._beats(value):
            return False
        self.best, self.best_epoch = value, epoch
        return True

    def _beats(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = state.get("best")
        self.best = best if best is not None and math.isfinite(best) else None
        self.best_epoch = state.get("best_epoch")


class Metrics:
    """Sums kept on the device during an epoch and read back once at its end (no per-step sync).

    A task's ``metrics()`` returns one of these; the Trainer and `cv eval` use exactly this:

    - ``update(output, target, loss)`` after every step (training: the model's output detached;
      validation: under ``torch.inference_mode``), on the training device: add to tensors there,
      never read one back to the host (``.item()``, ``.tolist()``, ``bool(tensor)``).
    - ``seen``: add the batch's image count (a host int); the Trainer reads it for images/s.
    - ``running()`` on the progress bar (every few steps, on the main process): may sync.
    - ``tensors()`` once after the epoch: tensors summed in place across processes. Use float32,
      float64 or int64 (the dtypes every backend sums, NCCL and gloo alike), not bool or uint8.
    - ``rows()`` once after that: tensors with one row per image, concatenated across processes.
    - ``compute(prefix)`` once after that: the logged numbers, as plain floats (NaN where undefined).
    - ``per_class()``, ``per_class_name``, ``confusion_matrix()``: validation detail, read after
      ``compute``; ``headline``: the name of ``running()``'s second number.

    Per-class detail and a confusion matrix are asked for only when ``detailed``. Any other
    attribute is yours: the Trainer reads nothing else. An exception raised in these methods is
    reported as one paragraph naming the task's plugin (:func:`guarded_metrics`)."""

    per_class_name = "score"
    headline = "score"  # what the second number of running() is, on the progress bar
    seen = 0  # images this process has counted, known on the host without a sync

    def update(self, output, target, loss) -> None:
        raise NotImplementedError

    def running(self) -> tuple[float, float]:
        """(mean loss, the task's headline score) so far on this process, for the progress bar."""
        raise NotImplementedError

    def tensors(self) -> list:
        """The sums to all-reduce across processes; one of them counts the images seen."""
        raise NotImplementedError

    def rows(self) -> list:
        """Tensors with one row per image (scores, targets) that ``compute()`` needs whole, for
        metrics that are not sums. Called once, after the last ``update()``; across processes each
        returned tensor is replaced in place (``Tensor.set_``) by every process's rows, in rank
        order, before ``compute()``. The default, [], is right for metrics that are sums."""
        return []

    def compute(self, prefix: str) -> dict[str, float]:
        raise NotImplementedError

    def per_class(self) -> list[float | None]:
        """One score per class (None where it is undefined), or [] for a task without them."""
        return []

    def confusion_matrix(self) -> list[list[int]] | None:
        """Counts by (true class, predicted class), or None where the task has no such matrix."""
        return None


class GuardedMetrics:
    """A task's :class:`Metrics`, whose own exceptions become one paragraph naming its plugin."""

    def __init__(self, metrics: Metrics, owner: str) -> None:
        self._metrics, self._owner = metrics, owner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._metrics, name)
        if not callable(value):
            return value

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return value(*args, **kwargs)
            except CvcoreError:
                raise
            except Exception as exc:
                raise PluginError(f"{self._owner} failed in Metrics.{name}(): {one_line(exc)}. "
                                  f"Set CVCORE_DEBUG=1 for the traceback.") from exc

        setattr(self, name, guarded)  # made once: update() runs every step
        return guarded


def guarded_metrics(task: str | None, num_classes: int, device, detailed: bool) -> Metrics:
    """The metrics of ``task``, their exceptions told as the task plugin's (not a traceback deep in
    the Trainer after a whole epoch)."""
    component = task_component(task)
    owner = f"task '{component.qualified_name}' ({component.plugin.provider})"
    try:
        metrics = component.build().metrics(num_classes, device, detailed)
    except CvcoreError:
        raise
    except Exception as exc:
        raise PluginError(f"{owner} failed in Task.metrics(): {one_line(exc)}.") from exc
    return GuardedMetrics(metrics, owner)  # type: ignore[return-value]


class Task:
    """A kind of problem. Subclass it and register a factory returning an instance.

    ``default_monitor`` is the metric that picks the best epoch unless the user chooses one.
    ``output_name`` names the model output in ONNX exports; ``minimized`` lists the metrics,
    besides losses, where lower is better."""

    default_monitor = "val_loss"
    output_name = "logits"
    minimized: tuple[str, ...] = ()  # metrics besides losses where lower is better ("mae")
    #: Why models of this task cannot be exported to ONNX (said by `cv export`), or None.
    onnx_refusal: str | None = None
    #: What the data's items (``num_classes``, ``class_names``) are, in the plural: "classes",
    #: "keypoints", "outputs"; said in run descriptions ("10 classes").
    items = "classes"
    #: True when targets hold pixel coordinates (points, boxes) that :meth:`move_targets` moves:
    #: a geometric transform that does not report its affine map is then refused.
    targets_have_coordinates = False

    def move_targets(self, targets, matrices, size, info):
        """``targets`` after a geometric transform (or the centre crop) whose ``(N, 3, 3)``
        matrices take each image's input pixel coordinates to its output's (see
        :meth:`cvcore.Transform.moved`; :func:`cvcore.move_points` applies them);
        ``size``: (height, width) of the output images, to clip boxes or mark points outside.
        Default: unchanged (class ids do not move; masks are moved by the transform itself)."""
        return targets

    def onnx_form(self, model):
        """What ``model`` becomes in ONNX, as a :class:`cvcore.export.OnnxForm`. Default: the model
        itself, its one output named :attr:`output_name`, for any batch size."""
        from cvcore.export import OnnxForm

        return OnnxForm(model, (self.output_name,))

    def from_onnx(self, outputs):
        """What the model gives in PyTorch, from the outputs (tensors, in :meth:`onnx_form`'s order)
        of one call of its ONNX graph: `cv predict` with an .onnx file hands this to :meth:`predict`.
        Default: the first output (the batch's logits)."""
        return outputs[0]

    def monitored(self, monitor: str | None = None, mode: str | None = None) -> tuple[str, str]:
        """The metric that picks a run's best epoch and whether it is maximised: the ones chosen, else
        :attr:`default_monitor` and :meth:`mode`."""
        monitor = monitor or self.default_monitor
        return monitor, mode or self.mode(monitor)

    def mode(self, metric: str) -> str:
        """'min' if lower is better for ``metric`` (a loss, or one of ``minimized``), else 'max'."""
        name = metric.split("_", 1)[-1]
        return "min" if name in self.minimized else metric_mode(metric)

    def metric_names(self, num_classes: int, detailed: bool) -> list[str]:
        """The names (without the train_/val_ prefix) that ``metrics(...).compute`` returns."""
        raise NotImplementedError

    def metrics(self, num_classes: int, device, detailed: bool) -> Metrics:
        raise NotImplementedError

    def expected_output(self, info) -> tuple[tuple[int, ...], str] | None:
        """The output shape of a batch of two images, and how to say it (``(N, 10)``): `cv train`
        checks a model with one forward pass in eval mode. None: the output is not one tensor
        (detections per image), and the pass only checks that the model runs."""
        raise NotImplementedError

    def training_step(self, model, images, targets, loss_fn):
        """One training batch: (the loss to back-propagate, what ``Metrics.update`` receives as the
        output). Default: ``loss_fn(model(images), targets)``. A task whose models compute their
        own losses in training (detectors: ``model(images, targets)`` gives a dict of them)
        calls them here; the Trainer keeps AMP, gradient accumulation and DDP around it."""
        output = model(images)
        return loss_fn(output, targets), output

    def validation_step(self, model, images, targets, loss_fn):
        """:meth:`training_step` for a validation batch: the model in eval mode, under
        ``torch.inference_mode``. Default: the same as training."""
        output = model(images)
        return loss_fn(output, targets), output

    def output_size(self, info) -> int:
        """The length of the vector a model outputs (per image, or per pixel): what a model's
        ``num_classes`` option is filled with. The data's items (``num_classes``, ``class_names``:
        classes, keypoints, ...) are what metrics report on; a task whose model outputs several
        numbers per item says so here (K keypoints: 2K)."""
        return info.num_classes

    def check_target(self, target, info) -> str | None:
        """What is wrong with one data set item's target, or None (used by cvcore.testing)."""
        return None

    def example_target(self, info, batch: int):
        """A valid target batch for ``info`` (used by cvcore.testing to check losses and transforms)."""
        raise NotImplementedError

    def example_output(self, info, batch: int):
        """What a model gives in training for ``batch`` images, as leaves that require grad, to
        check losses with (default: random values of :meth:`expected_output`'s shape)."""
        import torch

        shape, _ = self.expected_output(info)
        return torch.randn(batch, *shape[1:], requires_grad=True)

    def example_info(self):
        """A small :class:`cvcore.DataInfo` of this task, with which cvcore.testing checks the losses
        and transforms that serve it (default: 3 items, 3 channels, 32 x 32 pixels)."""
        from cvcore.data import DataInfo

        return DataInfo(num_classes=3, class_names=["a", "b", "c"], in_channels=3, image_size=(32, 32),
                        mean=(0.0,) * 3, std=(1.0,) * 3)

    def predict(self, output, images: list[Path], class_names: list[str], *, topk: int,
                output_dir: Path, placements: list | None = None) -> list[dict[str, Any]]:
        """What `cv predict` reports for each image, as JSON-able dicts with an ``image`` key.

        ``placements`` (a :class:`cvcore.Placement` per image) say where each input lies in its
        photo, to map outputs about input pixels (a mask, points, boxes) back onto it. A task whose
        ``predict`` has no ``placements`` parameter is called without it."""
        raise NotImplementedError

    def describe(self, result: dict[str, Any]) -> str:
        """One line of `cv predict` text output for one result of :meth:`predict`."""
        raise NotImplementedError


def task_for(name: str | None) -> Task:
    """The registered task called ``name`` (None: the default task); tasks are cheap to build."""
    return task_component(name).build()


def task_component(name: str | None):
    """The registered task component called ``name`` (None: the default task's)."""
    from cvcore.plugins.loader import registry

    return registry().get("task", name) if name else default_task_component()


def default_task_component():
    """The one task registered with ``default=True``: what a DataInfo naming no task gets."""
    from cvcore.plugins.loader import registry

    defaults = [c for c in registry().of_kind("task") if c.metadata.get("default")]
    if len(defaults) != 1:
        found = ", ".join(c.qualified_name for c in defaults) or "none"
        raise PluginError(f"Exactly one installed task must be registered with default=True (found: {found}); "
                          f"a data set whose DataInfo names no task gets it. See 'cv list task'.")
    return defaults[0]


def task_name(name: str | None) -> str:
    """The short name of the task ``name`` stands for (None: the default task's)."""
    return task_component(name).name


def logged_names(task: str | None = None, num_classes: int = 1000, *, any_task: bool = False) -> list[str]:
    """The metrics each epoch logs for ``task`` (every registered task's with ``any_task``): what a
    monitor may name."""
    from cvcore.plugins.loader import registry

    if any_task:
        tasks = [c.build() for c in registry().of_kind("task") if not c.plugin.error]
    else:
        tasks = [task_for(task)]
    return sorted({f"{prefix}_{name}" for each in tasks for prefix, detailed in (("train", False), ("val", True))
                   for name in each.metric_names(num_classes, detailed)})


def check_task_names(tasks: tuple[str, ...], owner: str) -> None:
    """Refuse a component declaring tasks that no installed plugin registers."""
    from cvcore.plugins.loader import registry

    known = {n for c in registry().of_kind("task") for n in (c.name, c.qualified_name)}
    for name in tasks:
        if name not in known:
            raise ConfigError(f"{owner} declares task '{name}', which no installed plugin registers."
                              f"{did_you_mean(name, known)} See 'cv list task'.")
