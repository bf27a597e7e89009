"""Find plugins in the ``cvcore.plugins`` entry-point group and load each in isolation.

One broken plugin never takes the others down: its failure is recorded on its :class:`Plugin`
and shown by ``cv list`` / ``cv plugins``; using one of its components raises that failure.

Environment:
- ``CVCORE_LOAD_PLUGINS``: comma-separated plugin names to load, and only those. Set but empty,
  it loads no plugin at all, built-ins included (they are ordinary plugins). Unset: load all.
- ``CVCORE_DISABLE_PLUGINS``: comma-separated plugin names to skip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points

import attrs
import pluggy

from cvcore import hookspecs
from cvcore.registry import KINDS, Component, Plugin, Register, Registry

GROUP = "cvcore.plugins"
_registry: Registry | None = None
_extra_plugins: list[tuple[str, object]] = []


def registry() -> Registry:
    """The registry of the current process, built on first need."""
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry


def reset() -> None:
    """Forget the loaded registry, so that the next use loads plugins again."""
    global _registry
    _registry = None


@contextmanager
def extra_plugin(plugin: object, name: str) -> Iterator[None]:
    """Load ``plugin`` (a module or object with hook implementations) beside the installed ones."""
    _extra_plugins.append((name, plugin))
    reset()
    try:
        yield
    finally:
        _extra_plugins.remove((name, plugin))
        reset()


def _env_names(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def selected_entry_points() -> list[EntryPoint]:
    """The entry points of the group that the environment variables leave enabled."""
    wanted, disabled = _env_names("CVCORE_LOAD_PLUGINS"), _env_names("CVCORE_DISABLE_PLUGINS") or set()
    found = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
    return [ep for ep in found if (wanted is None or ep.name in wanted) and ep.name not in disabled]


def one_line(exc: BaseException) -> str:
    """``ExcType: first line of the message``: the summary shown for a failed plugin."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_registry() -> Registry:
    """Import every selected plugin, let each register its components, and collect the result."""
    manager = pluggy.PluginManager("cvcore")
    manager.add_hookspecs(hookspecs)
    plugins: dict[str, Plugin] = {}
    for ep in selected_entry_points():
        dist = ep.dist
        info = Plugin(ep.name, dist.name if dist else None, dist.version if dist else None)
        plugins[ep.name] = _add(manager, info, ep.load)
    for name, obj in _extra_plugins:
        if manager.is_registered(obj):  # installed too: the test's registration takes its place
            del plugins[manager.get_name(obj)]
            manager.unregister(obj)
        plugins[name] = _add(manager, Plugin(name), lambda obj=obj: obj)
    components = _collect(manager, plugins)
    final = {name: plugins[name] for name in plugins}
    components = [attrs.evolve(c, plugin=final[c.plugin.name]) for c in components]
    return Registry(tuple(components), tuple(final.values()))


def _add(manager: pluggy.PluginManager, info: Plugin, load) -> Plugin:
    """Import and register one plugin; a failure is recorded on the returned Plugin."""
    start = time.perf_counter()
    try:
        obj = load()
        manager.register(obj, name=info.name)
        _check_hooks(manager, obj, info.name)
    except Exception as exc:  # a plugin's bug must not stop the others
        return attrs.evolve(info, error=one_line(exc), import_seconds=time.perf_counter() - start)
    return attrs.evolve(info, import_seconds=time.perf_counter() - start)


def _check_hooks(manager: pluggy.PluginManager, obj: object, name: str) -> None:
    """pluggy's check_pending for one plugin: a misspelled hook name is an error at load."""
    from cvcore.errors import PluginError, did_you_mean

    for caller in manager.get_hookcallers(obj) or ():
        if caller.spec is None:
            manager.unregister(obj)
            hooks = [hook for hook, _ in KINDS.values()]
            raise PluginError(
                f"plugin '{name}' implements unknown hook '{caller.name}'."
                f"{did_you_mean(caller.name, hooks)} Hooks: {', '.join(hooks)}."
            )


def _collect(manager: pluggy.PluginManager, plugins: dict[str, Plugin]) -> list[Component]:
    """Call each hook of each loaded plugin with its own ``register``; a raise marks it broken."""
    components: list[Component] = []
    for kind, (hook_name, _) in KINDS.items():
        for impl in reversed(getattr(manager.hook, hook_name).get_hookimpls()):
            plugin = plugins[impl.plugin_name]
            if plugin.error:
                continue
            register = Register(kind, plugin, components)
            try:
                impl.function(**({"register": register} if "register" in impl.argnames else {}))
            except Exception as exc:  # a plugin's bug must not stop the others
                plugins[impl.plugin_name] = attrs.evolve(plugin, error=f"in {hook_name}: {one_line(exc)}")
    return components
