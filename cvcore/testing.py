"""A kit for plugin authors: register a plugin for one test, and check every component it provides.

    from cvcore.testing import check_plugin, plugin_registered

    def test_my_plugin():
        with plugin_registered(my_plugin, name="mine"):
            check_plugin("mine")

Each check builds the component with small sample inputs and asserts what the hook contract
promises (a model's forward gives (N, num_classes), a loss is a finite scalar, ...), raising
AssertionError with the component's name on failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cvcore.plugins.loader import extra_plugin, registry
from cvcore.plugins.registry import Component, Registry

SAMPLE = {"num_classes": 3, "in_channels": 3, "image_size": (32, 32), "steps_per_epoch": 4, "total_epochs": 3}


@contextmanager
def plugin_registered(plugin: object, name: str = "test-plugin") -> Iterator[Registry]:
    """Load ``plugin`` (a module or object with hook implementations) beside the installed plugins."""
    with extra_plugin(plugin, name):
        yield registry()


def check_plugin(plugin_name: str, skip: tuple[str, ...] = ()) -> list[Component]:
    """Run :func:`check_component` over every component ``plugin_name`` registers; return them."""
    reg = registry()
    failed = next((p for p in reg.plugins if p.name == plugin_name), None)
    assert failed is not None, f"plugin '{plugin_name}' is not loaded; loaded: {[p.name for p in reg.plugins]}"
    assert failed.error is None, f"plugin '{plugin_name}' failed to load: {failed.error}"
    components = [c for c in reg.components if c.plugin.name == plugin_name and c.name not in skip]
    assert components, f"plugin '{plugin_name}' registers no component"
    for component in components:
        check_component(component.kind, component.qualified_name)
    return components


def check_component(kind: str, name: str, **options: Any) -> Any:
    """Build one component with sample inputs, check it against its kind's contract, return it."""
    component = registry().get(kind, name)
    assert component.summary, f"{kind} '{name}' has no summary (give it a docstring)"
    # Data sets produce the data context; every other kind receives it, as in a run.
    declared = {opt.name for opt in component.options} if kind != "dataset" else set()
    options = {**{k: v for k, v in SAMPLE.items() if k in declared}, **options}
    return _CHECKS[kind](component, options)


def _check_dataset(component: Component, options: dict[str, Any]) -> Any:
    import torch

    from cvcore.data import DataInfo, DataSplits
    from cvcore.tasks import task_for

    splits = component.build(**options)
    label = f"dataset '{component.name}'"
    assert isinstance(splits, DataSplits), f"{label} returned {type(splits).__name__}, not DataSplits"
    assert isinstance(splits.info, DataInfo), f"{label}: info is not a DataInfo"
    assert len(splits.train) > 0 and len(splits.val) > 0, f"{label} has an empty split"
    info = splits.info
    image, target, *extent = splits.train[0]  # (image, target), or with its extent on a canvas
    channels, height, width = image.shape
    if extent:
        assert 0 < extent[0][0] <= height and 0 < extent[0][1] <= width, \
            f"{label}: extent {extent[0].tolist()} outside its {height}x{width} canvas"
        height, width = extent[0].tolist()
    fits = channels == info.in_channels and height >= info.image_size[0] and width >= info.image_size[1]
    assert fits, f"{label}: image shape {(channels, height, width)}, info says {(info.in_channels, *info.image_size)}"
    problem = task_for(info.task).check_target(torch.as_tensor(target), info)
    assert problem is None, f"{label}: {problem}"
    return splits


def _check_model(component: Component, options: dict[str, Any]) -> Any:
    """On the first task the model serves (by name, or by its output form; none: the default
    task), with that task's samples: the task's training step gives a finite loss with gradients,
    its validation step runs, and the output has the shape the task expects."""
    import torch

    from cvcore.runs.build import model_context

    import attrs

    name, task, info = _model_task(component)
    given = {k: options[k] for k in ("num_classes", "in_channels", "image_size") if k in options}
    if isinstance(given.get("image_size"), int):
        given["image_size"] = (given["image_size"],) * 2
    if "num_classes" in given:
        given["class_names"] = [str(i) for i in range(given["num_classes"])]
    info = attrs.evolve(info, **given)  # the caller's sizes: the sample data follows them
    declared = {opt.name for opt in component.options}
    sample = {**SAMPLE, **{k: v for k, v in model_context(info).items() if k in declared}}
    model = component.build(**{**{k: v for k, v in sample.items() if k in declared}, **options})
    images = torch.randn(2, info.in_channels, *info.image_size)
    targets = task.example_target(info, 2)
    label = f"model '{component.name}' on task '{name}'"
    loss_fn = _sample_loss(name, info)
    loss, _ = task.training_step(model.train(), images, targets, loss_fn)
    assert loss.dim() == 0 and torch.isfinite(loss), f"{label}: training loss {loss}"
    loss.backward()
    with torch.no_grad():
        _, output = task.validation_step(model.eval(), images, targets, loss_fn)
    expectation = task.expected_output(info)
    if expectation is not None:
        shape, wanted = expectation
        assert tuple(output.shape) == shape, f"{label} output {tuple(output.shape)}, expected {wanted}"
    return model


def _model_task(component: Component) -> tuple[str, Any, Any]:
    """(name, task, sample DataInfo) of the first task a model serves."""
    import attrs

    from cvcore.tasks import task_component

    output = component.metadata.get("output")
    named = component.metadata.get("tasks") or ()
    by_form = [c.qualified_name for c in registry().of_kind("task") if output and c.metadata.get("output") == output]
    registered = task_component((*named, *by_form, None)[0])
    task = registered.build()
    return registered.name, task, attrs.evolve(task.example_info(), task=registered.qualified_name)


def _sample_loss(task: str, info) -> Any:
    """The loss the task suggests, built for ``info``; without one, the sum of the output."""
    from cvcore.tasks import task_component

    suggested = task_component(task).metadata.get("loss")
    if suggested is None:
        return lambda output, targets: output.float().sum()
    component = registry().get("loss", suggested)
    declared = {opt.name for opt in component.options}
    return component.build(**{k: v for k, v in info.fill().items() if k in declared})


def _served_tasks(component: Component) -> list[tuple[str, Any, Any]]:
    """(name, task, its sample DataInfo) for each task ``component`` declares (none: the default task)."""
    import attrs

    from cvcore.tasks import task_component

    served = []
    for name in component.metadata.get("tasks") or (None,):
        registered = task_component(name)
        task = registered.build()
        served.append((registered.name, task, attrs.evolve(task.example_info(), task=registered.qualified_name)))
    return served


def _check_loss(component: Component, options: dict[str, Any]) -> Any:
    import torch

    for task_label, task, info in _served_tasks(component):
        declared = {opt.name for opt in component.options}
        loss_fn = component.build(**{**{k: v for k, v in info.fill().items() if k in declared}, **options})
        output = task.example_output(info, 2)
        leaves = [t for t in (output.values() if isinstance(output, dict) else [output]) if t.requires_grad]
        value = loss_fn(output, task.example_target(info, 2))
        label = f"loss '{component.name}' on task '{task_label}'"
        assert value.dim() == 0, f"{label} returned shape {tuple(value.shape)}, not a scalar"
        assert torch.isfinite(value), f"{label} returned {value.item()}"
        value.backward()
        assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in leaves), \
            f"{label} gives no finite gradient"
    return loss_fn


def _check_optimizer(component: Component, options: dict[str, Any]) -> Any:
    import torch

    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = component.build([weight], **options)
    (weight**2).sum().backward()
    optimizer.step()
    assert not torch.equal(weight.detach(), torch.ones(3)), f"optimizer '{component.name}' did not move the weights"
    return optimizer


def _check_scheduler(component: Component, options: dict[str, Any]) -> Any:
    import math

    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    scheduler = component.build(optimizer, **options)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
        lr = optimizer.param_groups[0]["lr"]
        assert math.isfinite(lr) and lr >= 0, f"scheduler '{component.name}' set lr {lr}"
    return scheduler


def _check_callback(component: Component, options: dict[str, Any]) -> Any:
    from cvcore.callbacks import Callback

    callback = component.build(**options)
    assert isinstance(callback, Callback), f"callback '{component.name}' is not a cvcore.Callback"
    return callback


def _check_task(component: Component, options: dict[str, Any]) -> Any:
    import torch

    from cvcore.tasks import Metrics, Task

    task = component.build(**options)
    label = f"task '{component.name}'"
    assert isinstance(task, Task), f"{label} is not a cvcore.Task"
    val_names = [f"val_{name}" for name in task.metric_names(3, detailed=True)]
    assert task.default_monitor in val_names, f"{label}: default monitor {task.default_monitor} not in {val_names}"
    metrics = task.metrics(3, torch.device("cpu"), detailed=True)
    assert isinstance(metrics, Metrics), f"{label}: metrics() returned {type(metrics).__name__}, not a cvcore.Metrics"
    assert sorted(metrics.compute("val")) == sorted(val_names), f"{label}: compute() and metric_names() disagree"
    return task


def _check_transform(component: Component, options: dict[str, Any]) -> Any:
    """On each task it serves: the task's own sample targets (class ids, rows, masks, ...) come back
    of the same shape, unchanged by a transform that moves no pixel; a geometric one also takes
    and returns uint8 batches, channels last in memory too (the folder cache's)."""
    import torch

    from cvcore.transforms import Transform

    for task_label, task, info in _served_tasks(component):
        declared = {opt.name for opt in component.options}
        transform = component.build(**{**{k: v for k, v in info.fill().items() if k in declared}, **options})
        label = f"transform '{component.name}' on task '{task_label}'"
        assert isinstance(transform, Transform), f"{label} is not a cvcore.Transform"
        images = torch.rand(4, info.in_channels, *info.image_size)
        batches = [images, (images * 255).round().to(torch.uint8)] if transform.geometric else [images]
        for pixels in batches:
            targets = task.example_target(info, 4)
            out, moved = transform(pixels.clone(), targets.clone(), torch.Generator().manual_seed(0))
            assert out.dtype == pixels.dtype and out.dim() == 4 and len(out) == 4, \
                f"{label} returned {out.dtype} {tuple(out.shape)} for {pixels.dtype} {tuple(pixels.shape)}"
            assert out.dtype == torch.uint8 or torch.isfinite(out).all(), f"{label} returned non-finite pixels"
            if transform.soft_targets:
                assert tuple(moved.shape) == (4, info.num_classes), f"{label}: soft targets {tuple(moved.shape)}"
                assert torch.allclose(moved.sum(1), torch.ones(4)), f"{label}: soft targets do not sum to 1"
            elif transform.geometric:
                assert moved.shape[1:] == targets.shape[1:] or moved.dim() == targets.dim(), \
                    f"{label} turned targets {tuple(targets.shape)} into {tuple(moved.shape)}"
            else:
                assert torch.equal(moved, targets), f"{label} changed the targets, though it moves no pixel"
        if transform.geometric:
            _check_channels_last(transform, batches[1], task.example_target(info, 4), label)
        if transform.reads_extents:
            _check_extents(transform, images, task.example_target(info, 4), label)
    return transform


def _check_channels_last(transform, pixels, targets, label: str) -> None:
    """A channels-last batch gets the pixels its standard-layout copy gets."""
    import torch

    expected, _ = transform(pixels.clone(), targets.clone(), torch.Generator().manual_seed(0))
    try:
        out, _ = transform(pixels.contiguous(memory_format=torch.channels_last), targets.clone(),
                           torch.Generator().manual_seed(0))
    except RuntimeError as exc:
        raise AssertionError(f"{label} fails on a channels-last batch ({exc}): reshape rather than view") from None
    assert torch.equal(out, expected), f"{label} gives other pixels for a channels-last batch than for the same batch"


def _check_extents(transform, images, targets, label: str) -> None:
    """A transform that reads extents takes pixels from within each image only: here the canvas
    beyond each image is NaN, and none may reach the output."""
    import torch

    height, width = images.shape[-2:]
    canvas = torch.full((4, images.shape[1], height + 7, width + 5), float("nan"))
    extents = torch.tensor([[height, width], [height + 7, width], [height, width + 5], [height + 7, width + 5]])
    for i, (h, w) in enumerate(extents.tolist()):
        canvas[i, :, :h, :w] = torch.rand(images.shape[1], h, w)
    out, _ = transform(canvas, targets, torch.Generator().manual_seed(0), extents=extents)
    assert not out.isnan().any(), f"{label} took pixels from beyond an image's extent"


_CHECKS = {"dataset": _check_dataset, "model": _check_model, "loss": _check_loss, "optimizer": _check_optimizer,
           "scheduler": _check_scheduler, "callback": _check_callback, "task": _check_task,
           "transform": _check_transform}
