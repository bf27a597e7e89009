"""The Python API over the registry: build components and list them by name."""

from __future__ import annotations

from typing import Any

from cvcore.plugins.loader import registry
from cvcore.plugins.registry import Component


def create(kind: str, name: str, *inputs: Any, **options: Any) -> Any:
    """Build the ``kind`` component called ``name`` with ``options`` (checked against its declared ones).

    ``inputs`` are what the kind's factories receive before their options: the parameters for an
    optimizer, the optimizer for a scheduler, nothing otherwise. Options set to ``None`` are
    dropped so that the component's own defaults hold (as timm does).
    """
    given = {key: value for key, value in options.items() if value is not None}
    return registry().get(kind, name).build(*inputs, **given)


def get_component(kind: str, name: str) -> Component:
    """The registered component ``name`` of ``kind``, without building it."""
    return registry().get(kind, name)


def list_components(kind: str | None = None, pattern: str | None = None) -> list[Component]:
    """Registered components, optionally of one kind and matching an fnmatch ``pattern``.

    Each entry has ``kind``, ``name``, ``qualified_name``, ``summary``, ``options`` and
    ``plugin`` (with ``name``, ``distribution`` and ``version``).
    """
    return registry().list(kind, pattern)


def create_transforms(transforms, info) -> list[Any]:
    """Build transforms given as names or ``(name, options)`` pairs (a data set's suggested
    ``DataSplits.transforms``), filling options they declare from ``info`` (a DataInfo), as a run does."""
    from cvcore.runs.plan import check_supports

    context = info.fill()
    built = []
    for item in transforms:
        name, options = (item, {}) if isinstance(item, str) else item
        component = registry().get("transform", name)
        check_supports(component, info.task, "the data")  # as a run checks it
        declared = {option.name for option in component.options}
        built.append(component.build(**{**{k: v for k, v in context.items() if k in declared}, **options}))
    return built
