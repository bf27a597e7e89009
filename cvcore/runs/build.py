"""Building a planned run with its data: the components, the checks that need the data (task,
classes, output shape), and the Trainer that ties them together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from cvcore.errors import ConfigError
from cvcore.runs import config as cfg
from cvcore.runs.plan import (Part, Plan, check_monitors, check_soft_targets, check_supports, filled, providers,
                              with_data_task_loss, with_default_transforms)
from cvcore.training.options import TrainerOptions

# Model options that load start weights. A model rebuilt to receive a checkpoint's weights is built
# with these off, so that a checkpoint never needs the file or the download it started from.
START_WEIGHTS = {"pretrained": False, "weights": None}


def model_context(info) -> dict[str, Any]:
    """What a model's options are filled from: the data's fields, with ``num_classes`` the output
    size the task asks of a model (:meth:`cvcore.Task.output_size`)."""
    from cvcore.tasks import task_for

    return {**info.fill(), "num_classes": task_for(info.task).output_size(info)}


def build_model(part: Part, info, *, from_checkpoint: bool = False):
    """The model of ``part`` sized to the data; ``from_checkpoint``: without its start weights."""
    options = filled(part, model_context(info))
    if from_checkpoint:
        declared = {opt.name for opt in part.component.options}
        options.update({k: v for k, v in START_WEIGHTS.items() if k in declared})
    return part.component.build(**options)


def check_fit(plan: Plan, info) -> None:
    """Refuse components made for another task, and options set by hand that contradict the data."""
    data_name = plan.part("dataset").component.name
    for part in plan.parts:
        check_supports(part.component, info.task, f"data set '{data_name}'")
    for part in plan.parts:
        if part.section == "dataset":  # its options are what the data is made from
            continue
        wanted = model_context(info) if part.section == "model" else info.fill()
        for field in ("num_classes", "in_channels", "image_size"):
            value = part.options.get(field)
            if value is not None and _comparable(field, value) != _comparable(field, wanted[field]):
                raise ConfigError(
                    f"{part.component.kind} '{part.component.name}' is set to {field}={value}, but data set "
                    f"'{data_name}' needs {field}={wanted[field]}. "
                    f"Remove the option to take it from the data."
                )


def _comparable(field: str, value):
    """A size as a tuple (an image_size of 32 is 32 x 32), other values as they are."""
    if field == "image_size":
        return tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    return value


class Built:
    """Every component of a run, built, and the Trainer that ties them together."""

    def __init__(self, plan: Plan, run_dir: Path | None, *, resuming: bool = False, seed: int | None = None) -> None:
        """``seed``: the seed a resumed run drew (its config may say none, a fresh seed per run)."""
        from cvcore.training import distributed
        from cvcore.training.trainer import Trainer, resolve_device, seed_everything, steps_per_epoch

        options = TrainerOptions(**{**plan.trainer, "run_dir": run_dir})
        distributed.setup(resolve_device(options.device))
        # One seed for every process, fixed before anything is built: weight init is seeded too.
        options = attrs.evolve(options, seed=seed if seed is not None else distributed.shared_seed(options.seed))
        seed_everything(options.seed, distributed.rank())
        dataset = plan.part("dataset")
        with distributed.main_first():  # a download (or a cache) is written once, by the main process
            self.data = dataset.component.build(**dataset.options)
        plan = with_data_task_loss(plan, self.data.info.task)
        self.plan = plan = with_default_transforms(plan, self.data.transforms)
        check_fit(plan, self.data.info)
        check_monitors(plan, self.data.info)
        context = self.data.info.fill()
        self.model = build_model(plan.part("model"), self.data.info, from_checkpoint=resuming)
        check_output_shape(self.model, self.data.info, plan.part("model").component.name)
        self.loss = _build(plan.part("loss"), context)
        if options.batch_size == "auto":  # probed now, recorded so that a resume is the same run
            from cvcore.training.batch_size import probed

            options = attrs.evolve(options, batch_size=probed(self.model, self.loss, self.data.info, options,
                                                              resolve_device(options.device)))
            self.plan = plan = attrs.evolve(plan, config=cfg.set_value(plan.config, "trainer.batch_size",
                                                                       options.batch_size))
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = _build(plan.part("optimizer"), context, trainable)
        if options.schedule_start:  # an extended run: its schedule restarts lower, over the added epochs
            for group in self.optimizer.param_groups:
                group["lr"] *= options.restart_lr
        context.update(steps_per_epoch=steps_per_epoch(len(self.data.train), options))

        def schedulers_for(epochs: int) -> list[tuple[Any, str]]:
            """The run's schedulers, sized for a run of ``epochs`` (a time budget decides it later)."""
            sized = {**context, "total_epochs": epochs - options.schedule_start}
            return [(_build(p, sized, self.optimizer), p.component.metadata.get("interval", "epoch"))
                    for p in plan.chained("scheduler")]

        schedulers = schedulers_for(options.epochs)
        context["total_epochs"] = options.epochs - options.schedule_start
        callbacks = [_build(p, context) for p in plan.chained("callbacks")]
        transforms = [_build(p, context) for p in plan.chained("transforms")]
        check_soft_targets(plan.part("loss").component, [(p.component.name, t.soft_targets)
                                                         for p, t in zip(plan.chained("transforms"), transforms)])
        metadata = {"config": plan.config, "providers": providers(plan)}
        self.trainer = Trainer(model=self.model, loss=self.loss, optimizer=self.optimizer, data=self.data,
                               schedulers=schedulers, callbacks=callbacks, transforms=transforms, options=options,
                               metadata=metadata, replan=schedulers_for)


def _build(part: Part, context: dict[str, Any], *inputs: Any) -> Any:
    return part.component.build(*inputs, **filled(part, context))


def check_output_shape(model, info, name: str) -> None:
    """One forward pass on a zero batch: a model that does not fit the data fails here, clearly."""
    import torch

    from cvcore.tasks import task_for

    shape = (2, info.in_channels, *info.image_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape))
    except (RuntimeError, AssertionError, ValueError, IndexError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"model '{name}' cannot take inputs of shape {tuple(shape)} from the data set: {reason}. "
                          f"Models with a fixed input size need data of that size (see the data set's "
                          f"image_size option in 'cv info DATASET'), or choose another model.") from exc
    finally:
        model.train(was_training)
    expectation = task_for(info.task).expected_output(info)
    if expectation is None:  # not one tensor (detections): the pass checked that the model runs
        return
    expected, wanted = expectation
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        found = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"model '{name}' outputs {found}, but the data set needs "
                          f"{wanted} for its {info.num_classes} {task_for(info.task).items}.")
