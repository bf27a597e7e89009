"""Terminal and JSON views of the registry for `cv list`, `cv info`, `cv plugins` and `cv doctor`."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cvcore.plugins.options import Option, description
from cvcore.plugins.registry import KINDS, Component, Plugin, Registry
from cvcore.runs.config import toml_value

PLURALS = {kind: kind + "es" if kind.endswith("s") else kind + "s" for kind in KINDS}


# Versions of the JSON documents cvcore prints and writes. Their keys are only ever added to; a
# change that removes or changes the meaning of one is a new version.
LIST_FORMAT, COMPONENT_FORMAT = "cvcore-list/1", "cvcore-component/1"


def component_detail_json(comp: Component) -> dict[str, Any]:
    """`cv info --json`: the listing's fields, the description, registration metadata and options."""
    options = [{"name": opt.name, "type": opt.type_name, "required": opt.required,
                "default": None if opt.required else _json_value(opt.default), "help": opt.help}
               for opt in comp.options]
    return {"format": COMPONENT_FORMAT, **component_json(comp, set()), "description": description(comp.factory),
            "metadata": {key: _json_value(value) for key, value in comp.metadata.items()}, "options": options}


def _json_value(value: Any) -> Any:
    """Tuples as lists, paths and other objects as text: what JSON can hold."""
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def component_json(comp: Component, conflicts: set[tuple[str, str]]) -> dict[str, Any]:
    return {
        "kind": comp.kind,
        "name": comp.name,
        "qualified_name": comp.qualified_name,
        "summary": comp.summary,
        "plugin": comp.plugin.name,
        "distribution": comp.plugin.distribution,
        "version": comp.plugin.version,
        "aliases": list(comp.aliases),
        "conflict": (comp.kind, comp.name) in conflicts,
    }


def plugin_json(plugin: Plugin, registry: Registry) -> dict[str, Any]:
    registered: dict[str, list[str]] = {}
    for comp in registry.components:
        if comp.plugin.name == plugin.name:
            registered.setdefault(comp.kind, []).append(comp.name)
    return {
        "name": plugin.name,
        "distribution": plugin.distribution,
        "version": plugin.version,
        "import_seconds": round(plugin.import_seconds, 4),
        "error": plugin.error,
        "registers": registered,
    }


FAMILY_SIZE = 3  # namespaced names (tv/resnet18, tv/resnet34, ...) at least this many to a family share a row


def print_components(console: Console, components: list[Component], registry: Registry,
                     group_families: bool = False) -> None:
    """One table per kind: name, summary, provider; conflicting short names are marked. With
    ``group_families`` a family of namespaced names (``tv/resnet*``) is one row listing its members."""
    conflicts = registry.conflicts()
    grouped = False
    for kind in KINDS:
        rows = [c for c in components if c.kind == kind]
        if not rows:
            continue
        table = Table(title=PLURALS[kind], title_justify="left", expand=False)
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("summary")
        table.add_column("provider", no_wrap=True)
        for family, members in _families(rows, group_families):
            comp = members[0]
            provider = escape(f"{comp.plugin.name} ({comp.plugin.provider})")
            if family:
                grouped = True
                shown = [m.name.split("/", 1)[1] for m in members]
                names = ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")
                table.add_row(f"{escape(family)} ({len(members)})", escape(names), provider)
                continue
            name = escape(comp.name)
            if (kind, comp.name) in conflicts:
                name += f" [red](conflict: use {escape(comp.qualified_name)})[/]"
            table.add_row(name, escape(comp.summary), provider)
        console.print(table)
    if grouped:
        console.print("A row NAME* (N) stands for N components; cv list 'NAME*' lists each.", highlight=False)
    print_failures(console, registry)


def _families(rows: list[Component], group: bool) -> list[tuple[str | None, list[Component]]]:
    """(pattern, members) for each family of FAMILY_SIZE or more namespaced names from one plugin
    ('tv/resnet*'), (None, [component]) for every other component; in listing order."""
    def family_of(comp: Component) -> str | None:
        found = re.match(r"^([^/]+/[A-Za-z]+)", comp.name) if group else None
        return f"{found[1]}*" if found else None

    sizes = Counter((family_of(c), c.plugin.name) for c in rows)
    out: list[tuple[str | None, list[Component]]] = []
    placed: dict[tuple[str, str], list[Component]] = {}
    for comp in rows:
        key = (family_of(comp), comp.plugin.name)
        if key[0] is None or sizes[key] < FAMILY_SIZE:
            out.append((None, [comp]))
        elif key in placed:
            placed[key].append(comp)
        else:
            placed[key] = [comp]
            out.append((key[0], placed[key]))
    return out


def print_failures(console: Console, registry: Registry) -> None:
    for plugin in registry.failures:
        console.print(
            f"[red]plugin '{escape(plugin.name)}' ({escape(plugin.provider)}) failed to load:[/] "
            f"{escape(plugin.error or '')}",
            highlight=False, markup=True, soft_wrap=True,
        )


def print_component(console: Console, comp: Component) -> None:
    """Docs and options of one component, for `cv info`."""
    console.print(f"[bold]{comp.kind} {escape(comp.qualified_name)}[/]  ({escape(comp.plugin.provider)})")
    if comp.aliases:
        console.print(f"aliases: {', '.join(comp.aliases)}", markup=False)
    for key, value in comp.metadata.items():
        console.print(f"{key}: {toml_value(value)}", markup=False)
    console.print("\n" + (description(comp.factory) or comp.summary) + "\n", highlight=False, markup=False)
    if comp.kind == "task":
        task = comp.build()
        logged = ", ".join(f"{prefix}_{name}" for prefix, detailed in (("train", False), ("val", True))
                           for name in task.metric_names(10, detailed))
        console.print(f"logs (10 classes): {logged}\nbest epoch by default: {task.default_monitor}\n", markup=False)
    if not comp.options:
        console.print("No options.")
        return
    table = Table(title="options", title_justify="left")
    for column in ("option", "type", "default", "help"):
        table.add_column(column)
    for opt in comp.options:
        table.add_row(*(escape(text) for text in (opt.name, opt.type_name, _default_text(opt), opt.help)))
    console.print(table)


def _default_text(opt: Option) -> str:
    """The default as a config file would write it: ``"data"``, ``[80, 120]``, ``none``."""
    if opt.required:
        return "(required)"
    return "none" if opt.default is None else toml_value(opt.default)


def print_plugins(console: Console, registry: Registry) -> None:
    table = Table(title="plugins", title_justify="left")
    for column in ("plugin", "distribution", "registers", "status"):
        table.add_column(column)
    for plugin in registry.plugins:
        data = plugin_json(plugin, registry)
        registers = ", ".join(f"{len(names)} {kind if len(names) == 1 else PLURALS[kind]}"
                              for kind, names in data["registers"].items())
        status = f"[red]{escape(plugin.error)}[/]" if plugin.error else "ok"
        table.add_row(escape(plugin.name), escape(plugin.provider), registers or "-", status)
    console.print(table)


def print_evaluation(console: Console, result: dict[str, Any]) -> None:
    """Metrics, per-class scores and the confusion matrix of `cv eval`."""
    metrics = Table(title="metrics", title_justify="left", show_header=False)
    for key, value in result["metrics"].items():
        metrics.add_row(key, f"{value:.4f}")
    console.print(metrics)
    names, matrix = result["class_names"], result["confusion"]
    title = f"per-class {result['per_class_metric']}"
    table = Table(title=f"confusion (rows: true, columns: predicted); {title}" if matrix else title, title_justify="left")
    table.add_column("class")
    table.add_column(result["per_class_metric"])
    for name in names if matrix else ():
        table.add_column(escape(name[:8]), justify="right")
    for name, row in zip(names, matrix or [[] for _ in names]):
        score = result["per_class"].get(name)
        table.add_row(escape(name), "-" if score is None else f"{score:.3f}", *(str(v) for v in row))
    console.print(table)
