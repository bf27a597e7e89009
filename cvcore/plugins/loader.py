"""Find plugins in the ``cvcore.plugins`` entry-point group and load each in isolation.

One broken plugin never takes the others down: its failure is recorded on its :class:`Plugin`
and shown by ``cv list`` / ``cv plugins``; using one of its components raises that failure.

Environment:
- ``CVCORE_LOAD_PLUGINS``: comma-separated plugin names to load, and only those. Set but empty,
  it loads no plugin at all, built-ins included (they are ordinary plugins). Unset: load all.
- ``CVCORE_DISABLE_PLUGINS``: comma-separated plugin names to skip.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points

import attrs
import pluggy

from cvcore.errors import PluginError, did_you_mean, one_line
from cvcore.plugins import hookspecs
from cvcore.plugins.registry import KINDS, Component, Plugin, Register, Registry

GROUP = "cvcore.plugins"
_registry: Registry | None = None
_selection: tuple[str | None, str | None] | None = None  # the environment the registry was loaded under
_extra_plugins: list[tuple[str, object]] = []


def registry() -> Registry:
    """The registry of the current process, built on first need (and again if the plugin
    selection in the environment changed since)."""
    global _registry, _selection
    selection = (os.environ.get("CVCORE_LOAD_PLUGINS"), os.environ.get("CVCORE_DISABLE_PLUGINS"))
    if _registry is None or selection != _selection:
        _registry, _selection = load_registry(), selection
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


def selected_entry_points() -> tuple[list[EntryPoint], list[str], str]:
    """The entry points of the group that the environment variables leave enabled, warnings naming
    the variable for each plugin name it lists that is not installed, and what CVCORE_LOAD_PLUGINS
    limits loading to ('' when unset)."""
    wanted, disabled = _env_names("CVCORE_LOAD_PLUGINS"), _env_names("CVCORE_DISABLE_PLUGINS") or set()
    found = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
    installed = {ep.name for ep in found}
    warnings = []
    for variable, names in (("CVCORE_LOAD_PLUGINS", wanted or set()), ("CVCORE_DISABLE_PLUGINS", disabled)):
        for name in sorted(names - installed):
            warnings.append(f"{variable} names '{name}', which is not an installed plugin."
                            f"{did_you_mean(name, installed)} Installed: {', '.join(sorted(installed)) or 'none'}.")
    selection = "" if wanted is None else (f"CVCORE_LOAD_PLUGINS={os.environ['CVCORE_LOAD_PLUGINS']!r} loads only "
                                           f"{', '.join(sorted(wanted & installed)) or 'no plugin'}.")
    if disabled & installed:
        selection += (" " if selection else "") + (f"CVCORE_DISABLE_PLUGINS={os.environ['CVCORE_DISABLE_PLUGINS']!r} "
                                                   f"leaves out {', '.join(sorted(disabled & installed))}.")
    enabled = [ep for ep in found if (wanted is None or ep.name in wanted) and ep.name not in disabled]
    return enabled, warnings, selection


def load_registry() -> Registry:
    """Import every selected plugin, let each register its components, and collect the result."""
    manager = pluggy.PluginManager("cvcore")
    manager.add_hookspecs(hookspecs)
    selected, warnings, selection = selected_entry_points()
    plugins: dict[str, Plugin] = {}
    clashing: list[Plugin] = []
    for name, group in itertools.groupby(selected, key=lambda ep: ep.name):
        eps = list(group)
        if len(eps) > 1:  # two distributions claim one name: PLUGIN:NAME could mean either
            clashing += _name_clash([_plugin_info(ep) for ep in eps])
        else:
            info = _plugin_info(eps[0])
            plugins[name] = info if info.error else _add(manager, info, eps[0].load)
    for name, obj in _extra_plugins:
        if manager.is_registered(obj):  # installed too: the test's registration takes its place
            del plugins[manager.get_name(obj)]
            manager.unregister(obj)
        plugins[name] = _add(manager, Plugin(name), lambda obj=obj: obj)
    components = _collect(manager, plugins)
    components = [attrs.evolve(c, plugin=plugins[c.plugin.name]) for c in components]
    registering = {c.plugin.name for c in components}
    warnings += [f"plugin '{p.name}' ({p.provider}) registers nothing: does each hook function carry "
                 f"@cvcore.hookimpl and call register(...)?" for p in plugins.values()
                 if not p.error and p.name not in registering]
    return Registry(tuple(components), (*plugins.values(), *clashing), tuple(warnings), selection)


def _plugin_info(ep: EntryPoint) -> Plugin:
    dist = ep.dist
    info = Plugin(ep.name, dist.name if dist else None, dist.version if dist else None)
    return attrs.evolve(info, error=_other_cvcore_needed(dist.requires or ())) if dist else info


# A Requires-Dist line on cvcore itself (not on cvcore-foo): only these are parsed.
_CVCORE_REQUIREMENT = re.compile(r"\s*cvcore(?![\w.-])", re.IGNORECASE)


def _other_cvcore_needed(requires) -> str | None:
    """Why a distribution's ``Requires-Dist: cvcore...`` excludes this cvcore, or None: read from its
    metadata, so a plugin written for another release is reported without being imported."""
    from packaging.requirements import InvalidRequirement, Requirement

    from cvcore import __version__

    for line in filter(_CVCORE_REQUIREMENT.match, requires):  # parsing every line would take 1 ms each
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        applies = requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        if requirement.name.lower() != "cvcore" or not applies:
            continue
        if not requirement.specifier.contains(__version__, prereleases=True):
            return (f"PluginError: it needs cvcore{requirement.specifier}, and this is cvcore {__version__}: "
                    f"install a release of the plugin made for it, or the cvcore it needs.")
    return None


def _name_clash(infos: list[Plugin]) -> list[Plugin]:
    """Each of several plugins with one entry-point name, marked failed with the others named."""
    reasons = []
    for info in infos:
        others = ", ".join(other.provider for other in infos if other is not info)
        reasons.append(attrs.evolve(info, error=(
            f"PluginError: the entry-point name '{info.name}' is also used by {others}; PLUGIN:NAME could "
            f"mean either, so neither loads. Uninstall one, or rename its entry point in its pyproject.toml.")))
    return reasons


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
    """pluggy's check_pending for one plugin: a misspelled hook name is an error at load, and so is
    a hook function without @cvcore.hookimpl, which pluggy would skip without a word."""
    for hook, _ in KINDS.values():
        function = getattr(obj, hook, None)
        if callable(function) and not hasattr(function, "cvcore_impl"):
            manager.unregister(obj)
            raise PluginError(f"plugin '{name}' defines {hook} without @cvcore.hookimpl, so it is never called: "
                              f"decorate it with @cvcore.hookimpl.")
    for caller in manager.get_hookcallers(obj) or ():
        wrappers = [impl for impl in caller.get_hookimpls()
                    if impl.plugin is obj and (impl.hookwrapper or getattr(impl, "wrapper", False))]
        if wrappers:
            manager.unregister(obj)
            raise PluginError(f"plugin '{name}' declares '{caller.name}' as a pluggy wrapper; cvcore calls each "
                              f"plugin's hook with its own register function, so a wrapper would register "
                              f"nothing. Use a plain @cvcore.hookimpl.")
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
