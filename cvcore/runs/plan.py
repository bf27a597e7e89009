"""From a configuration to a finished run: resolve names, check options, build, fit, write the run dir.

Everything that can be checked without data is checked in ``plan`` so that a typo fails in
milliseconds, before any file is read or any tensor allocated.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import attrs

from cvcore.errors import ConfigError, did_you_mean
from cvcore.plugins.loader import registry
from cvcore.plugins.options import describe, validate
from cvcore.plugins.registry import Component
from cvcore.runs import config as cfg
from cvcore.training.options import TrainerOptions

KIND_OF = {"dataset": "dataset", "model": "model", "loss": "loss", "optimizer": "optimizer",
           "scheduler": "scheduler", "callbacks": "callback"}

# Model options that load start weights. A model rebuilt to receive a checkpoint's weights is built
# with these off, so that a checkpoint never needs the file or the download it started from.
START_WEIGHTS = {"pretrained": False, "weights": None}


@attrs.frozen
class Part:
    """One component of a run: its config section, the registered component and the user's options."""

    section: str
    component: Component
    options: dict[str, Any]


@attrs.frozen
class Plan:
    """A checked configuration: every name resolved, every option validated, nothing built yet."""

    config: dict[str, Any]
    trainer: dict[str, Any]
    parts: tuple[Part, ...]

    def part(self, section: str) -> Part:
        return next(p for p in self.parts if p.section == section)

    def chained(self, section: str) -> list[Part]:
        return [p for p in self.parts if p.section == section]


def plan(config: dict[str, Any]) -> Plan:
    """Resolve every component name and validate every option against its declaration."""
    cfg.check_sections(config, "the configuration")
    parts = []
    for section in cfg.SINGLE:
        name = config.get(section, {}).get("name")
        if not isinstance(name, str):
            raise ConfigError(f"[{section}] needs a name, e.g. --{section} NAME (see 'cv list {KIND_OF[section]}').")
        parts.append(_part(section, name, cfg.options_of(config, section)))
    for section in cfg.CHAINED:
        parts += _chained_parts(config, section)
    trainer = validate(describe(TrainerOptions, 0), config.get("trainer", {}), "[trainer]")
    try:
        TrainerOptions(**trainer)  # the ranges: epochs >= 1, batch_size >= 1, ...
    except ValueError as exc:
        raise ConfigError(f"[trainer] {_range_message(exc)}") from None
    checked = Plan(config, trainer, tuple(parts))
    check_monitors(checked)
    return checked


def check_monitors(plan: Plan, info=None) -> None:
    """Every metric a run monitors ([trainer] monitor, a callback's monitor option) must be one the
    run logs: checked against every task's metrics before data, and against the data's task after."""
    from cvcore.tasks import logged_names, task_name

    logged = logged_names(info.task, info.num_classes) if info else logged_names(any_task=True)
    wanted = [("[trainer] monitor", plan.trainer.get("monitor"))]
    wanted += [(f"{p.component.kind} '{p.component.name}' monitor", p.options.get("monitor")) for p in plan.parts]
    for where, name in wanted:
        if name is not None and name not in logged:
            task = f" for task {task_name(info.task)}" if info else ""
            raise ConfigError(f"{where} is '{name}', which no epoch logs{task}.{did_you_mean(name, logged)} "
                              f"Logged: {', '.join(logged)}.")


def _range_message(exc: ValueError) -> str:
    """attrs' "'epochs' must be >= 1: 0" as "epochs must be >= 1, got 0."."""
    import re

    found = re.fullmatch(r"'(\w+)' must be (.+): (.*)", str(exc))
    return f"{found[1]} must be {found[2]}, got {found[3]}." if found else str(exc)


def _chained_parts(config: dict[str, Any], section: str) -> list[Part]:
    """The parts of [scheduler] or [callbacks]. An options table may name its component short or
    qualified (``[scheduler.multistep]`` is ``[scheduler."optim:multistep"]``); later tables win."""
    names = cfg.names(config, section)
    components = [registry().get(KIND_OF[section], name) for name in names]
    options: list[dict[str, Any]] = [{} for _ in names]
    for key, table in config.get(section, {}).items():
        if key == "name":
            continue
        owner = next((i for i, comp in enumerate(components) if comp.is_named(key)), None)
        if owner is None or not isinstance(table, dict):
            raise ConfigError(f"[{section}] has options for '{key}', which is not in its name list {names}."
                              f"{did_you_mean(key, [*names, *(n.rpartition(':')[2] for n in names)])}")
        options[owner].update(table)
    return [Part(section, comp, validate(comp.options, opts, f"{comp.kind} '{name}'"))
            for comp, name, opts in zip(components, names, options)]


def _part(section: str, name: str, options: dict[str, Any]) -> Part:
    component = registry().get(KIND_OF[section], name)
    return Part(section, component, validate(component.options, options, f"{component.kind} '{name}'"))


def filled(part: Part, context: dict[str, Any]) -> dict[str, Any]:
    """The part's options plus those it declares and the user left unset, taken from ``context``."""
    declared = {opt.name for opt in part.component.options}
    return {**{k: v for k, v in context.items() if k in declared}, **part.options}


def build_model(part: Part, info, *, from_checkpoint: bool = False):
    """The model of ``part`` sized to the data; ``from_checkpoint``: without its start weights."""
    options = filled(part, info.fill())
    if from_checkpoint:
        declared = {opt.name for opt in part.component.options}
        options.update({k: v for k, v in START_WEIGHTS.items() if k in declared})
    return part.component.build(**options)


def check_fit(plan: Plan, info) -> None:
    """Refuse components made for another task, and options set by hand that contradict the data."""
    from cvcore.tasks import check_task_names, task_component

    data_name = plan.part("dataset").component.name
    task = task_component(info.task)
    for part in plan.parts:
        tasks = part.component.metadata.get("tasks")
        if tasks:
            check_task_names(tasks, f"{part.component.kind} '{part.component.qualified_name}'")
        if tasks and not any(task.is_named(name) for name in tasks):
            raise ConfigError(f"{part.component.kind} '{part.component.name}' supports {' and '.join(tasks)}, but "
                              f"data set '{data_name}' is a {task.name} task. See 'cv list {part.component.kind}'.")
    for part in plan.parts:
        for field in ("num_classes", "in_channels"):
            value = part.options.get(field)
            if value is not None and value != getattr(info, field):
                raise ConfigError(
                    f"{part.component.kind} '{part.component.name}' is set to {field}={value}, but data set "
                    f"'{data_name}' has {field}={getattr(info, field)}. "
                    f"Remove the option to take it from the data."
                )


class Built:
    """Every component of a run, built, and the Trainer that ties them together."""

    def __init__(self, plan: Plan, run_dir: Path | None, *, resuming: bool = False) -> None:
        from cvcore.training import distributed
        from cvcore.training.trainer import Trainer, resolve_device, seed_everything, steps_per_epoch

        options = TrainerOptions(**{**plan.trainer, "run_dir": run_dir})
        distributed.setup(resolve_device(options.device))
        # One seed for every process, fixed before anything is built: weight init is seeded too.
        options = attrs.evolve(options, seed=distributed.shared_seed(options.seed))
        seed_everything(options.seed + distributed.rank())
        self.plan = plan
        dataset = plan.part("dataset")
        with distributed.main_first():  # a download (or a cache) is written once, by the main process
            self.data = dataset.component.build(**dataset.options)
        check_fit(plan, self.data.info)
        check_monitors(plan, self.data.info)
        context = self.data.info.fill()
        self.model = build_model(plan.part("model"), self.data.info, from_checkpoint=resuming)
        check_output_shape(self.model, self.data.info, plan.part("model").component.name)
        self.loss = _build(plan.part("loss"), context)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = _build(plan.part("optimizer"), context, trainable)
        context.update(steps_per_epoch=steps_per_epoch(len(self.data.train), options),
                       total_epochs=options.epochs)
        schedulers = [(_build(p, context, self.optimizer), p.component.metadata.get("interval", "epoch"))
                      for p in plan.chained("scheduler")]
        callbacks = [_build(p, context) for p in plan.chained("callbacks")]
        metadata = {"config": plan.config, "providers": providers(plan)}
        self.trainer = Trainer(model=self.model, loss=self.loss, optimizer=self.optimizer, data=self.data,
                               schedulers=schedulers, callbacks=callbacks, options=options, metadata=metadata)


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
    expected, wanted = task_for(info.task).expected_output(info)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        found = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"model '{name}' outputs {found}, but the data set needs "
                          f"{wanted} for its {info.num_classes} classes.")


def providers(plan: Plan) -> dict[str, str]:
    """'section/name' -> 'plugin (distribution version)' for every component: stored with checkpoints."""
    return {f"{p.section}/{p.component.qualified_name}": f"{p.component.plugin.provider}" for p in plan.parts}


def describe_parts(plan: Plan) -> list[str]:
    """'dataset digits <- datasets (cvcore 0.1.0)' for each component, for --dry-run."""
    return [f"{p.component.kind:<9} {p.component.name:<16} <- {p.component.plugin.name} "
            f"({p.component.plugin.provider})" for p in plan.parts]


def dry_run(plan: Plan) -> list[str]:
    """Build everything, check that it fits, run one forward/backward batch; return report lines."""
    built = Built(plan, None)
    trainer = built.trainer
    batch_size, loss = trainer.trial_step()
    params = sum(p.numel() for p in built.model.parameters())
    trainable = sum(p.numel() for p in built.model.parameters() if p.requires_grad)
    info = built.data.info
    return [*describe_parts(plan),
            f"data      {len(built.data.train)} train / {len(built.data.val)} val images, "
            f"{info.num_classes} classes, {info.in_channels}x{info.image_size[0]}x{info.image_size[1]}",
            f"model     {params:,} parameters ({trainable:,} trainable)",
            f"one batch of {batch_size}: loss {loss:.4f}, backward ok on {trainer.device}"]


def train(config: dict[str, Any], resume: Resume | None = None) -> tuple[dict[str, Any], Path | None]:
    """Run a whole training job, or continue one from a checkpoint; returns the summary and run directory.

    The run directory is claimed before anything is built and keeps only what a run wrote: a run
    that fails while building leaves no directory behind (or, resumed, its files as they were)."""
    from cvcore.runs.rundir import RunDir
    from cvcore.training import distributed

    checked = plan(config)
    claim = RunDir.claim(config, resuming=resume and resume.run_dir) if distributed.is_main() else None
    run_dir = claim.path if claim else None
    resolved = cfg.merge(config, {"trainer": {"run_dir": str(run_dir)}}) if run_dir else config
    try:
        built = Built(attrs.evolve(checked, config=resolved), run_dir, resuming=bool(resume and resume.checkpoint))
        if resume is not None:
            resume.verify(built)
    except BaseException:
        if claim:
            claim.abandon()
        raise
    try:
        if claim:
            if resume is not None:
                resume.rewind_metrics()
            (run_dir / "config.toml").write_text(cfg.to_toml(resolved), encoding="utf-8")
        summary = built.trainer.fit(resume.checkpoint if resume else None)
        if claim:
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    finally:
        if claim:
            claim.release()
    return summary, run_dir


class Resume:
    """A run to continue: its checkpoint, its directory and the configuration it was saved with.

    A run stopped before its first checkpoint has only its config.toml: it starts again from that
    (``checkpoint`` is None)."""

    def __init__(self, target: Path) -> None:
        from cvcore import checkpoint as ckpt

        target = Path(target)
        if target.is_dir() and (target / "config.toml").is_file() and not ckpt.last_of(target).is_file():
            self.path, self.checkpoint, self.run_dir = None, None, target
            self.config = cfg.load(target / "config.toml")
            print(f"note: '{target}' stopped before its first checkpoint; starting it again from its config.toml",
                  file=sys.stderr)
            return
        self.path = ckpt.find(target)
        self.checkpoint = ckpt.load_run(self.path)
        self.run_dir = target if target.is_dir() else self.path.parent.parent
        if not (self.run_dir / "config.toml").is_file():
            raise ConfigError(f"Cannot resume from '{self.path}': it is not inside a run directory "
                              f"(RUN/checkpoints/*.safetensors beside RUN/config.toml), and resuming writes to "
                              f"the run directory. Pass the run directory, or copy the file into one.")
        self.config = self.checkpoint.document["config"]

    def verify(self, built: Built) -> None:
        """Refuse a model, class count or weights that differ from the saved ones; warn about
        plugin versions that changed since the save."""
        if self.checkpoint is None:
            return
        saved, info = self.checkpoint.document, built.data.info
        saved_model, model = saved["config"]["model"]["name"], built.plan.part("model").component
        saved_classes = self.checkpoint.data_info().num_classes
        if not model.is_named(saved_model) or saved_classes != info.num_classes:
            raise ConfigError(f"Cannot resume '{self.path}': it holds model '{saved_model}' for "
                              f"{saved_classes} classes, this run builds '{model.qualified_name}' for "
                              f"{info.num_classes} classes.")
        self.checkpoint.load_weights_into(built.model, model.qualified_name)
        for key, provider in providers(built.plan).items():
            if saved.get("providers", {}).get(key, provider) != provider:
                print(f"warning: {key} was provided by {saved['providers'][key]} when saved, now by {provider}",
                      file=sys.stderr)

    def rewind_metrics(self) -> None:
        """Cut metrics.jsonl back to the checkpoint's epochs: a kill may have left rows past it
        (a run without a checkpoint starts again, so none are kept)."""
        rows = "".join(json.dumps(row) + "\n" for row in self.checkpoint.state()["history"]) if self.checkpoint else ""
        (self.run_dir / "metrics.jsonl").write_text(rows, encoding="utf-8")
