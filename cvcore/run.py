"""From a configuration to a finished run: resolve names, check options, build, fit, write the run dir.

Everything that can be checked without data is checked in ``plan`` so that a typo fails in
milliseconds, before any file is read or any tensor allocated.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from cvcore import config as cfg
from cvcore.errors import ConfigError
from cvcore.loader import registry
from cvcore.options import describe, validate
from cvcore.registry import Component

KIND_OF = {"dataset": "dataset", "model": "model", "loss": "loss", "optimizer": "optimizer",
           "scheduler": "scheduler", "callbacks": "callback"}


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


def trainer_options_type():
    from cvcore.trainer import TrainerOptions

    return TrainerOptions


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
        extra = set(config.get(section, {})) - {"name", *cfg.names(config, section)}
        if extra:
            raise ConfigError(f"[{section}] has options for {sorted(extra)}, which are not in its name list "
                              f"{cfg.names(config, section)}.")
        parts += [_part(section, name, cfg.options_of(config, section, name)) for name in cfg.names(config, section)]
    trainer = validate(describe(trainer_options_type(), 0), config.get("trainer", {}), "[trainer]")
    return Plan(config, trainer, tuple(parts))


def _part(section: str, name: str, options: dict[str, Any]) -> Part:
    component = registry().get(KIND_OF[section], name)
    return Part(section, component, validate(component.options, options, f"{component.kind} '{name}'"))


def filled(part: Part, context: dict[str, Any]) -> dict[str, Any]:
    """The part's options plus those it declares and the user left unset, taken from ``context``."""
    declared = {opt.name for opt in part.component.options}
    return {**{k: v for k, v in context.items() if k in declared}, **part.options}


def check_fit(plan: Plan, info) -> None:
    """Refuse components made for another task, and options set by hand that contradict the data."""
    data_name = plan.part("dataset").component.name
    for part in plan.parts:
        tasks = part.component.metadata.get("tasks")
        if tasks and info.task not in tasks:
            raise ConfigError(f"{part.component.kind} '{part.component.name}' supports {' and '.join(tasks)}, but "
                              f"data set '{data_name}' is a {info.task} task. See 'cv list {part.component.kind}'.")
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

    def __init__(self, plan: Plan, run_dir: Path | None) -> None:
        from cvcore import distributed
        from cvcore.trainer import Trainer, TrainerOptions, seed_everything, steps_per_epoch

        options = TrainerOptions(**{**plan.trainer, "run_dir": run_dir})
        if options.seed is not None:  # before anything is built: weight init is seeded too
            seed_everything(options.seed + distributed.rank())
        self.plan = plan
        dataset = plan.part("dataset")
        self.data = dataset.component.build(**dataset.options)
        check_fit(plan, self.data.info)
        context = self.data.info.fill()
        self.model = _build(plan.part("model"), context)
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

    shape = (2, info.in_channels, *info.image_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape))
    except RuntimeError as exc:
        raise ConfigError(f"model '{name}' cannot take inputs of shape {tuple(shape)} from the data set: "
                          f"{str(exc).splitlines()[0]}") from exc
    finally:
        model.train(was_training)
    if info.task == "segmentation":
        expected, wanted = (2, info.num_classes, *info.image_size), f"(N, {info.num_classes}, H, W)"
    else:
        expected, wanted = (2, info.num_classes), f"(N, {info.num_classes})"
    if tuple(out.shape) != expected:
        raise ConfigError(f"model '{name}' outputs shape {tuple(out.shape)}, but the data set needs "
                          f"{wanted} for its {info.num_classes} classes.")


def new_run_dir(config: dict[str, Any]) -> Path:
    """The run directory: [trainer] run_dir, else runs/<time>-<dataset>-<model> (never reused)."""
    chosen = config.get("trainer", {}).get("run_dir")
    if chosen:
        path = Path(chosen)
        if (path / "metrics.jsonl").exists():
            raise ConfigError(f"Run directory '{path}' already holds a run; choose another --run-dir.")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path("runs") / f"{stamp}-{config['dataset']['name']}-{config['model']['name']}".replace("/", "_")
        path, index = base, 1
        while path.exists():
            index += 1
            path = base.with_name(f"{base.name}-{index}")
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def train(config: dict[str, Any], resume=None) -> tuple[dict[str, Any], Path]:
    """Run a whole training job, or continue one from a checkpoint; returns the summary and run directory."""
    from cvcore import distributed

    checked = plan(config)
    if resume is not None:
        run_dir = resume.run_dir
    else:
        run_dir = new_run_dir(config) if distributed.is_main() else None
    resolved = cfg.merge(config, {"trainer": {"run_dir": str(run_dir)}}) if run_dir else config
    if run_dir and distributed.is_main():
        (run_dir / "config.toml").write_text(cfg.to_toml(resolved), encoding="utf-8")
    built = Built(attrs.evolve(checked, config=resolved), run_dir if distributed.is_main() else None)
    if resume is not None:
        resume.check(built)
    summary = built.trainer.fit(resume.checkpoint if resume else None)
    if run_dir and distributed.is_main():
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary, run_dir


class Resume:
    """A run to continue: its checkpoint, its directory and the configuration it was saved with."""

    def __init__(self, target: Path) -> None:
        from cvcore import checkpoint as ckpt

        self.path = ckpt.find(target)
        self.checkpoint = ckpt.load(self.path)
        self.run_dir = Path(target) if Path(target).is_dir() else self.path.parent.parent
        self.config = self.checkpoint.document["config"]

    def check(self, built: Built) -> None:
        """Refuse a model or data set that differs from the saved one; warn about plugin versions;
        cut metrics.jsonl back to the checkpoint's epochs (a kill may have left rows past it)."""
        saved, info = self.checkpoint.document, built.data.info
        saved_model, model = saved["config"]["model"]["name"], built.plan.part("model").component.name
        if saved_model != model or saved["info"]["num_classes"] != info.num_classes:
            raise ConfigError(f"Cannot resume '{self.path}': it holds model '{saved_model}' for "
                              f"{saved['info']['num_classes']} classes, this run builds '{model}' for "
                              f"{info.num_classes} classes.")
        for key, provider in providers(built.plan).items():
            if saved.get("providers", {}).get(key, provider) != provider:
                print(f"warning: {key} was provided by {saved['providers'][key]} when saved, now by {provider}",
                      file=sys.stderr)
        history = self.checkpoint.state()["history"]
        rows = "".join(json.dumps(row) + "\n" for row in history)
        (self.run_dir / "metrics.jsonl").write_text(rows, encoding="utf-8")
