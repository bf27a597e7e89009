"""The registry: every component the loaded plugins registered, found by short or qualified name."""

from __future__ import annotations

import fnmatch
import functools
import importlib
import re
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from cvcore.errors import (
    AmbiguousNameError,
    BuildError,
    CvcoreError,
    OptionError,
    PluginError,
    UnknownNameError,
    did_you_mean,
    one_line,
)
from cvcore.images import INTERPOLATIONS
from cvcore.plugins.options import Option, describe, summary_of, validate

# kind -> (hook name, number of positional inputs the factory receives before its options)
KINDS: dict[str, tuple[str, int]] = {
    "dataset": ("register_datasets", 0),
    "model": ("register_models", 0),
    "loss": ("register_losses", 0),
    "optimizer": ("register_optimizers", 1),
    "scheduler": ("register_schedulers", 1),
    "callback": ("register_callbacks", 0),
    "task": ("register_tasks", 0),
    "transform": ("register_transforms", 0),
}


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _word(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _suggestions(value: Any) -> bool:
    def pair(v: Any) -> bool:
        return isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], dict)

    return isinstance(value, tuple) and all(isinstance(v, str) or pair(v) for v in value)


def _task_names(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and all(isinstance(v, str) for v in value)


def _pretrained_input(value: Any) -> bool:
    def fits(key: str, v: Any) -> bool:
        if key == "interpolation":
            return v in INTERPOLATIONS
        return key in ("image_size", "resize") and isinstance(v, int) and not isinstance(v, bool) and v > 0

    return isinstance(value, Mapping) and bool(value) and all(fits(key, v) for key, v in value.items())


# kind -> register() keyword -> (check, what it must be); task names are checked against the
# registered tasks when a run is planned, since plugins load in any order
_METADATA = {
    "dataset": {"task": (_word, "a task name"), "loss": (_word, "a loss name"),
                "transforms": (_suggestions, "a tuple of transform names or (name, options) pairs")},
    "scheduler": {"interval": (lambda v: v in ("step", "epoch"), "one of ('step', 'epoch')")},
    "model": {"tasks": (_task_names, "a non-empty tuple of task names"), "output": (_word, "an output form"),
              "pretrained_input": (_pretrained_input, "a mapping of 'image_size' and 'resize' (positive ints) "
                                                      f"and 'interpolation' ({' or '.join(map(repr, INTERPOLATIONS))}), "
                                                      "any of them")},
    "loss": {"tasks": (_task_names, "a non-empty tuple of task names"), "soft_targets": (_flag, "True or False")},
    "task": {"default": (_flag, "True or False"), "output": (_word, "an output form"),
             "loss": (_word, "a loss name")},
    "transform": {"tasks": (_task_names, "a non-empty tuple of task names"), "soft_targets": (_flag, "True or False")},
}
# kind -> (module, class) that what its factory returns must be an instance of, and how to say it
_RETURNS = {
    "dataset": ("cvcore.data", "DataSplits", "a cvcore.DataSplits"),
    "model": ("torch.nn", "Module", "a torch.nn.Module"),
    "optimizer": ("torch.optim", "Optimizer", "a torch.optim.Optimizer"),
    "scheduler": ("torch.optim.lr_scheduler", "LRScheduler", "a torch.optim.lr_scheduler.LRScheduler"),
    "callback": ("cvcore.callbacks", "Callback", "a cvcore.Callback"),
    "task": ("cvcore.tasks", "Task", "a cvcore.Task"),
    "transform": ("cvcore.transforms", "Transform", "a cvcore.Transform"),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is one of KINDS, else raise an error listing them."""
    if kind not in KINDS:
        raise UnknownNameError(
            f"Unknown component kind '{kind}'.{did_you_mean(kind, KINDS)} "
            f"Kinds: {', '.join(KINDS)}."
        )
    return kind


@attrs.frozen
class Plugin:
    """A plugin the loader found: where it came from and whether it loaded."""

    name: str
    distribution: str | None = None
    version: str | None = None
    import_seconds: float = 0.0
    error: str | None = None

    @property
    def provider(self) -> str:
        if self.distribution is None:
            return self.name
        return f"{self.distribution} {self.version}"


@attrs.frozen(slots=False)  # slots=False: `options` is cached in the instance __dict__
class Component:
    """A registered factory with what can be known about it without calling it."""

    kind: str
    name: str
    plugin: Plugin
    factory: Callable[..., Any] = attrs.field(repr=False)
    summary: str = ""
    aliases: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin.name}:{self.name}"

    def is_named(self, name: str) -> bool:
        """Whether ``name`` (short, alias, or either qualified with the plugin) names this component."""
        plugin, _, short = name.rpartition(":")
        return short in (self.name, *self.aliases) and plugin in ("", self.plugin.name)

    @functools.cached_property
    def options(self) -> tuple[Option, ...]:
        return describe(self.factory, KINDS[self.kind][1])

    def build(self, *inputs: Any, **options: Any) -> Any:
        """Check ``options`` against the declared ones, then call the factory."""
        if self.plugin.error:
            raise PluginError(
                f"{self.kind} '{self.qualified_name}' is unavailable: plugin '{self.plugin.name}' "
                f"({self.plugin.provider}) failed to load: {self.plugin.error}"
            )
        expected = KINDS[self.kind][1]
        if len(inputs) != expected:
            raise OptionError(
                f"{self.kind} '{self.name}' takes {expected} positional input(s), got {len(inputs)}."
            )
        checked = validate(self.options, options, f"{self.kind} '{self.name}'")
        try:
            built = self.factory(*inputs, **checked)
        except OptionError as exc:  # a factory's own range check: say whose option it is
            owner = f"{self.kind} '{self.name}'"
            raise OptionError(str(exc) if owner in str(exc) else f"{owner}: {exc}") from None
        except CvcoreError:
            raise
        except Exception as exc:  # the plugin's own error, told as one paragraph with its origin
            raise BuildError(f"{self._origin()} failed: {one_line(exc)}. Set CVCORE_DEBUG=1 for the "
                             f"traceback.") from exc
        self._check_returned(built)
        return built

    def _origin(self) -> str:
        return (f"building {self.kind} '{self.qualified_name}' (plugin '{self.plugin.name}', "
                f"{self.plugin.provider})")

    def _check_returned(self, built: Any) -> None:
        """Refuse a factory result of the wrong type here, not as an AttributeError in the loop."""
        if self.kind == "loss":
            ok, expected = callable(built), "a callable (output, target) -> loss tensor, e.g. a torch.nn.Module"
        else:
            module, name, expected = _RETURNS[self.kind]
            ok = isinstance(built, getattr(importlib.import_module(module), name))
        if not ok:
            raise BuildError(f"{self._origin()} returned {type(built).__module__}.{type(built).__qualname__}, "
                             f"but a {self.kind} factory must return {expected}.")


class Register:
    """The ``register`` callable handed to one plugin's hook: records who provided what."""

    def __init__(self, kind: str, plugin: Plugin, sink: list[Component]) -> None:
        self.kind, self.plugin, self._sink = kind, plugin, sink
        self._taken: set[str] = set()  # names and aliases this plugin registered of this kind

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        summary: str | None = None,
        aliases: Iterable[str] = (),
        **metadata: Any,
    ) -> None:
        aliases = tuple(aliases)
        for each in (name, *aliases):
            if not isinstance(each, str) or not _NAME.match(each):
                raise PluginError(f"invalid {self.kind} name {each!r}: use letters, digits, _.-/")
        if isinstance(factory, types.ModuleType):
            raise PluginError(f"{self.kind} '{name}': the factory is the module {factory.__name__}; importing a "
                              f"submodule named like the factory function replaced it: rename the submodule")
        if not callable(factory):
            raise PluginError(f"{self.kind} '{name}': factory {factory!r} is not callable")
        self._check_metadata(name, metadata)
        if self._taken.intersection((name, *aliases)):
            raise PluginError(f"{self.kind} '{name}' is registered twice by this plugin")
        self._taken.update((name, *aliases))
        self._sink.append(
            Component(self.kind, name, self.plugin, factory,
                      summary if summary is not None else summary_of(factory), aliases, metadata)
        )

    def _check_metadata(self, name: str, metadata: Mapping[str, Any]) -> None:
        allowed = _METADATA.get(self.kind, {})
        for key, value in metadata.items():
            if key not in allowed:
                raise PluginError(
                    f"{self.kind} '{name}': unknown register() argument '{key}'"
                    f"{did_you_mean(key, allowed)}"
                )
            check, expected = allowed[key]
            if not check(value):
                raise PluginError(f"{self.kind} '{name}': {key} must be {expected}, got {value!r}")


@attrs.frozen
class Registry:
    """Every component by kind, plus the plugins that were found (loaded or broken)."""

    components: tuple[Component, ...]
    plugins: tuple[Plugin, ...]
    warnings: tuple[str, ...] = ()  # unknown names in the plugin selection, plugins that register nothing
    selection: str = ""  # what CVCORE_LOAD_PLUGINS limits loading to, if set

    @property
    def selection_note(self) -> str:
        """The environment's plugin selection, to append where a name was not found."""
        return "".join(f" {note}" for note in (self.selection, *self.warnings) if note.startswith("CVCORE_"))

    @property
    def failures(self) -> tuple[Plugin, ...]:
        return tuple(p for p in self.plugins if p.error)

    def of_kind(self, kind: str) -> list[Component]:
        check_kind(kind)
        return list(self._by_kind.get(kind, ()))

    @functools.cached_property
    def _by_kind(self) -> dict[str, list[Component]]:
        grouped: dict[str, list[Component]] = {}
        for component in self.components:
            grouped.setdefault(component.kind, []).append(component)
        return grouped

    @functools.cached_property
    def _by_short_name(self) -> dict[tuple[str, str], list[Component]]:
        """(kind, name or alias) to its components: a lookup costs the same with 1,400 timm models."""
        index: dict[tuple[str, str], list[Component]] = {}
        for component in self.components:
            for name in dict.fromkeys((component.name, *component.aliases)):
                index.setdefault((component.kind, name), []).append(component)
        return index

    def conflicts(self) -> set[tuple[str, str]]:
        """(kind, short name) pairs that more than one plugin registers."""
        seen: dict[tuple[str, str], set[str]] = {}
        for comp in self.components:
            for name in (comp.name, *comp.aliases):
                seen.setdefault((comp.kind, name), set()).add(comp.plugin.name)
        return {key for key, owners in seen.items() if len(owners) > 1}

    def list(self, kind: str | None = None, pattern: str | None = None) -> list[Component]:
        """Components of ``kind`` (all when None) whose short or qualified name matches ``pattern``."""
        found = self.of_kind(kind) if kind else list(self.components)
        if pattern:
            found = [c for c in found
                     if fnmatch.fnmatchcase(c.name, pattern) or fnmatch.fnmatchcase(c.qualified_name, pattern)]
        return sorted(found, key=lambda c: (list(KINDS).index(c.kind), c.name, c.plugin.name))

    def get(self, kind: str, name: str) -> Component:
        """The component called ``name`` (short, alias or ``PLUGIN:NAME``), or a helpful error."""
        check_kind(kind)
        short = name.rpartition(":")[2]
        matches = [c for c in self._by_short_name.get((kind, short), ()) if c.is_named(name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            names = ", ".join(sorted(c.qualified_name for c in matches))
            raise AmbiguousNameError(
                f"{kind.capitalize()} '{name}' is registered by several plugins: {names}. "
                f"Use the qualified name, e.g. --{kind} {matches[0].qualified_name}."
            )
        raise self.unknown(kind, name)

    def unknown(self, kind: str | None, name: str) -> UnknownNameError:
        """The error for a name nothing registers: close names, and the failed plugins that may hold it."""
        candidates = self.of_kind(kind) if kind else self.components
        names = {n for c in candidates for n in (c.name, c.qualified_name, *c.aliases)}
        what, listing = (kind, f"cv list {kind}") if kind else ("component", "cv list")
        message = f"Unknown {what} '{name}'.{did_you_mean(name, names)} See '{listing}'."
        plugin = name.rpartition(":")[0]
        for failed in self.failures:
            if plugin in ("", failed.name):
                message += (f" Plugin '{failed.name}' ({failed.provider}) failed to load and may "
                            f"provide it: {failed.error}")
        return UnknownNameError(message + self.selection_note)
