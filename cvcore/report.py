"""Terminal and JSON views of the registry for `cv list`, `cv info`, `cv plugins` and `cv doctor`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cvcore.options import Option
from cvcore.registry import KINDS, Component, Plugin, Registry

PLURALS = {kind: kind + "es" if kind.endswith("s") else kind + "s" for kind in KINDS}


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


def print_components(console: Console, components: list[Component], registry: Registry) -> None:
    """One table per kind: name, summary, provider; conflicting short names are marked."""
    conflicts = registry.conflicts()
    for kind in KINDS:
        rows = [c for c in components if c.kind == kind]
        if not rows:
            continue
        table = Table(title=PLURALS[kind], title_justify="left", expand=False)
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("summary")
        table.add_column("provider", no_wrap=True)
        for comp in rows:
            name = escape(comp.name)
            if (kind, comp.name) in conflicts:
                name += f" [red](conflict: use {escape(comp.qualified_name)})[/]"
            table.add_row(name, escape(comp.summary), escape(f"{comp.plugin.name} ({comp.plugin.provider})"))
        console.print(table)
    print_failures(console, registry)


def print_failures(console: Console, registry: Registry) -> None:
    for plugin in registry.failures:
        console.print(
            f"[red]plugin '{escape(plugin.name)}' ({escape(plugin.provider)}) failed to load:[/] "
            f"{escape(plugin.error or '')}",
            highlight=False, markup=True, soft_wrap=True,
        )


def print_component(console: Console, comp: Component) -> None:
    """Docs and options of one component, for `cv info`."""
    import inspect

    console.print(f"[bold]{comp.kind} {escape(comp.qualified_name)}[/]  ({escape(comp.plugin.provider)})")
    if comp.aliases:
        console.print(f"aliases: {', '.join(comp.aliases)}", markup=False)
    for key, value in comp.metadata.items():
        console.print(f"{key}: {value}", markup=False)
    doc = inspect.getdoc(comp.factory) or comp.summary
    console.print("\n" + "\n".join(line for line in doc.splitlines() if not line.startswith(":param")).strip() + "\n",
                  highlight=False, markup=False)
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
    return "(required)" if opt.required else repr(opt.default)


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
    names = result["class_names"]
    confusion = Table(title=f"confusion (rows: true, columns: predicted); per-class {result['per_class_metric']}",
                      title_justify="left")
    confusion.add_column("class")
    confusion.add_column(result["per_class_metric"])
    for name in names:
        confusion.add_column(escape(name[:8]), justify="right")
    for name, row in zip(names, result["confusion"]):
        score = result["per_class"][name]
        confusion.add_row(escape(name), "-" if score is None else f"{score:.3f}", *(str(v) for v in row))
    console.print(confusion)
