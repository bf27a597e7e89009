"""Planning a run: every component name resolved and every option checked against its declaration,
before any data is read, so that a typo fails in milliseconds."""

from __future__ import annotations

from typing import Any

import attrs

from cvcore.errors import ConfigError, CvcoreError, did_you_mean
from cvcore.plugins.loader import registry
from cvcore.plugins.options import describe, validate
from cvcore.plugins.registry import Component
from cvcore.runs import config as cfg
from cvcore.training.options import TrainerOptions

KIND_OF = {"dataset": "dataset", "model": "model", "loss": "loss", "optimizer": "optimizer",
           "scheduler": "scheduler", "callbacks": "callback", "transforms": "transform"}


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
    #: False when the loss is the one suggested before the data was read (its task then unknown
    #: or the default): the data's own task may then suggest another (:func:`with_data_task_loss`).
    loss_chosen: bool = True
    #: What planning chose for the user, to tell them once (`cv train` prints these).
    notes: tuple[str, ...] = ()

    def part(self, section: str) -> Part:
        return next(p for p in self.parts if p.section == section)

    def chained(self, section: str) -> list[Part]:
        return [p for p in self.parts if p.section == section]

    def with_part(self, part: Part, settings: dict[str, Any]) -> Plan:
        """This plan with ``part`` in place of its section's one part, and ``settings`` recorded in
        that section of the config."""
        config = {**self.config, part.section: {**self.config[part.section], **settings}}
        return attrs.evolve(self, config=config, parts=tuple(part if p.section == part.section else p for p in self.parts))


def plan(config: dict[str, Any]) -> Plan:
    """Resolve every component name and validate every option against its declaration."""
    cfg.check_sections(config, "the configuration")
    check_root(config)
    loss_chosen = "name" in config.get("loss", {})
    config = with_suggested_loss(config)
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
    checked = with_pretrained_input(Plan(config, trainer, tuple(parts), loss_chosen))
    declared = declared_task(checked)
    if declared:  # the data set says its task: components made for another are refused before its data
        for part in checked.parts:
            check_supports(part.component, declared, f"data set '{checked.part('dataset').component.name}'")
    check_monitors(checked)
    check_soft_targets(checked.part("loss").component,
                       [(p.component.name, p.component.metadata.get("soft_targets", False))
                        for p in checked.chained("transforms")])
    return checked


def with_suggested_loss(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with a loss named: the user's, else the one its data set suggests when registered
    (``loss="..."``), else its task's, else the default task's. Known before any data is read; the
    run's config.toml records it, so the run runs again as it was."""

    if "name" in config.get("loss", {}):
        return config
    dataset = config.get("dataset", {}).get("name")
    if not isinstance(dataset, str):
        return config  # planning asks for a data set by name
    component = registry().get("dataset", dataset)
    task = _task_of(component)
    suggested = component.metadata.get("loss") or (task.metadata.get("loss") if task else None)
    if suggested is None:
        return config  # planning asks for a loss by name
    return {**config, "loss": {**config.get("loss", {}), "name": suggested}}


def with_data_task_loss(plan: Plan, task: str | None) -> Plan:
    """``plan`` with the loss that the data's task suggests, when the loss was not chosen and the
    data set did not say its task before its data was read."""
    from cvcore.tasks import task_component

    suggested = task_component(task).metadata.get("loss")
    current = plan.part("loss").component
    if plan.loss_chosen or suggested is None or current.is_named(suggested):
        return plan
    return plan.with_part(_part("loss", suggested, plan.part("loss").options), {"name": suggested})


_SIZES = {"image_size", "resize"}  # a pretrained input's sizes: taken together or not at all


def with_pretrained_input(plan: Plan) -> Plan:
    """``plan`` with the data set's ``image_size``, ``resize`` and ``interpolation`` (those it takes)
    from the input the model's pretrained weights were trained at (``pretrained_input`` when
    registered), where it starts from them (``pretrained=true``): the weights then see images
    prepared as in their training. The sizes go together, unless the user chose either; the
    interpolation unless the user chose it. The run's config records them."""
    model, dataset = plan.part("model"), plan.part("dataset")
    wanted = model.component.metadata.get("pretrained_input")
    if not wanted or not model.options.get("pretrained"):
        return plan
    declared, chosen = {option.name for option in dataset.component.options}, set(dataset.options)
    sizes = {key: value for key, value in wanted.items()
             if key in declared and key not in chosen and not (key in _SIZES and _SIZES & chosen)}
    if not sizes:
        return plan
    options = validate(dataset.component.options, {**dataset.options, **sizes}, f"dataset '{dataset.component.name}'")
    taken = ", ".join(f"{key} {value}" for key, value in sizes.items())
    settings = " or ".join(f"dataset.{key}" for key in sizes)
    note = (f"note: data set {taken}, the input model '{model.component.name}'s pretrained weights were trained "
            f"at (set {settings} to choose)")
    chosen_for_user = plan.with_part(Part("dataset", dataset.component, options), sizes)
    return attrs.evolve(chosen_for_user, notes=(*plan.notes, note))


def check_soft_targets(loss: Component, transforms: list[tuple[str, bool]]) -> None:
    """Refuse a transform that makes class probabilities (mixup, cutmix) paired with a loss that
    takes class ids only: it would fail at the first batch. ``transforms``: (name, makes them)."""
    if loss.metadata.get("soft_targets"):
        return
    for name, makes_soft in transforms:
        if makes_soft:
            takers = sorted(c.name for c in registry().of_kind("loss") if c.metadata.get("soft_targets"))
            raise ConfigError(f"transform '{name}' turns labels into class probabilities, which loss '{loss.name}' "
                              f"cannot take. Use a loss that takes them ({', '.join(takers)}), or drop '{name}'.")


def check_root(config: dict[str, Any]) -> None:
    """A data set with no ``root`` option reads no files of the user's: --data-dir does not apply."""
    name = config.get("dataset", {}).get("name")
    if not isinstance(name, str) or "root" not in config.get("dataset", {}):
        return
    component = registry().get("dataset", name)
    if not any(option.name == "root" for option in component.options):
        raise ConfigError(f"Data set '{component.name}' reads no files of yours (it is generated, or ships with a "
                          f"package), so --data-dir (its root) does not apply: drop it, or choose a data set that "
                          f"reads a folder (see 'cv list dataset').")


def declared_task(plan: Plan) -> str | None:
    """The task a run's data set declares when registered (its data not yet read), if installed."""

    dataset = plan.part("dataset").component
    task = _task_of(dataset) if dataset.metadata.get("task") else None
    return task.name if task else None


def _task_of(dataset: Component) -> Component | None:
    """The registered task a data set declares (the default task if it declares none), or None when
    that task's plugin is not loaded: the data set's build will say so."""
    from cvcore.tasks import task_component

    try:
        return task_component(dataset.metadata.get("task"))
    except CvcoreError:
        return None


def check_supports(component: Component, task: str | None, data: str) -> None:
    """Refuse ``component`` when it declares what it serves and ``task`` (None: the default task)
    is not of it: a model serves the tasks it names and every task that needs the output form it
    gives (``output="vector"``), a loss or a transform the tasks it names."""
    from cvcore.tasks import check_task_names, task_component

    tasks, output = component.metadata.get("tasks", ()), component.metadata.get("output")
    if not tasks and not output:
        return
    check_task_names(tasks, f"{component.kind} '{component.qualified_name}'")
    kind = task_component(task)
    needed = kind.metadata.get("output")
    if any(kind.is_named(name) for name in tasks) or (output is not None and output == needed):
        return
    serves = [*tasks, *([f"tasks that need {_FORMS.get(output, output)}"] if output else [])]
    needs = f", which needs {_FORMS.get(needed, needed)}" if needed else ""
    raise ConfigError(f"{component.kind} '{component.name}' serves {' and '.join(serves)}, but {data} is a "
                      f"{kind.name} task{needs}. See 'cv list {component.kind}'.")


# How to say the output forms that the built-in tasks and models declare; a plugin may name others.
_FORMS = {"vector": "a vector per image (output form 'vector')", "map": "a vector per pixel (output form 'map')"}


def check_monitors(plan: Plan, info=None) -> None:
    """Every metric a run monitors ([trainer] monitor, a callback's monitor option) must be one the
    run logs: before data, against the task its data set declares (else every task's metrics), and
    against the data's task after."""
    from cvcore.tasks import logged_names, task_name

    task = info.task if info else declared_task(plan)
    if info:
        logged = logged_names(task, info.num_classes)
    elif task:
        logged = logged_names(task)
    else:
        logged = logged_names(any_task=True)
    wanted = [("[trainer] monitor", plan.trainer.get("monitor"))]
    wanted += [(f"{p.component.kind} '{p.component.name}' monitor", p.options.get("monitor")) for p in plan.parts]
    for where, name in wanted:
        if name is not None and name not in logged:
            whose = f" for task {task_name(task)}" if info or task else ""
            raise ConfigError(f"{where} is '{name}', which no epoch logs{whose}.{did_you_mean(name, logged)} "
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


def with_default_transforms(plan: Plan, suggested) -> Plan:
    """``plan`` with the transforms a data set suggests (names or (name, options) pairs), unless
    the configuration chose its own; the configuration then records them, to run again as they were."""
    if "name" in plan.config.get("transforms", {}):
        return plan
    pairs = [(item, {}) if isinstance(item, str) else item for item in suggested]
    parts = tuple(_part("transforms", name, dict(options)) for name, options in pairs)
    section = {"name": [p.component.qualified_name for p in parts]}
    section.update({p.component.qualified_name: p.options for p in parts if p.options})
    return attrs.evolve(plan, config={**plan.config, "transforms": section}, parts=plan.parts + parts)


def _part(section: str, name: str, options: dict[str, Any]) -> Part:
    component = registry().get(KIND_OF[section], name)
    return Part(section, component, validate(component.options, options, f"{component.kind} '{name}'"))


def filled(part: Part, context: dict[str, Any]) -> dict[str, Any]:
    """The part's options plus those it declares and the user left unset, taken from ``context``."""
    declared = {opt.name for opt in part.component.options}
    return {**{k: v for k, v in context.items() if k in declared}, **part.options}


def providers(plan: Plan) -> dict[str, str]:
    """'section/name' -> 'plugin (distribution version)' for every component: stored with checkpoints."""
    return {f"{p.section}/{p.component.qualified_name}": f"{p.component.plugin.provider}" for p in plan.parts}


def describe_parts(plan: Plan) -> list[str]:
    """'dataset digits <- datasets (cvcore 0.1.0)' for each component, for --dry-run."""
    return [f"{p.component.kind:<9} {p.component.name:<16} <- {p.component.plugin.name} "
            f"({p.component.plugin.provider})" for p in plan.parts]
