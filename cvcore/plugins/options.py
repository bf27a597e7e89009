"""Options a component declares: read from its factory's signature and docstring, never by building it."""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from cvcore.errors import OptionError, did_you_mean

REQUIRED = inspect.Parameter.empty
_PARAM_LINE = re.compile(r"^\s*:param\s+(\w+):\s*(.*)$")


@attrs.frozen
class Between:
    """The range of an option, declared in its annotation so that it is checked with the run's plan,
    before any data is read: ``p: Annotated[float, Between(0, 1)] = 0.5``. ``low`` or ``high`` may be
    None (no bound). A sequence option has each item checked; ``ordered``: its items do not decrease,
    as a (low, high) pair."""

    low: float | None = None
    high: float | None = None
    ordered: bool = False

    def hint(self, value: Any) -> str:
        return ""

    def __str__(self) -> str:
        if self.ordered:
            low = f"{self.low} <= " if self.low is not None else ""
            high = f" <= {self.high}" if self.high is not None else ""
            return f"(low, high) with {low}low <= high{high}"
        if self.low is not None and self.high is not None:
            return f"between {self.low} and {self.high}"
        return f"at least {self.low}" if self.low is not None else f"at most {self.high}"

    def holds(self, value: Any) -> bool:
        """Whether ``value`` (a number, or a sequence of numbers) lies in this range."""
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        inside = all((self.low is None or self.low <= item) and (self.high is None or item <= self.high)
                     for item in items)
        return inside and (not self.ordered or items == sorted(items))


@attrs.frozen
class Named:
    """The names a string option takes, declared in its annotation so that a misspelt one is refused
    with the run's plan, before any data is read, naming the closest:
    ``encoder: Annotated[str, Named(ENCODERS, prefixes=("tu-",))] = "resnet34"``. A name starting
    with one of ``prefixes`` is taken too (an open family its owner checks when it builds)."""

    names: tuple[str, ...] = attrs.field(converter=tuple)
    prefixes: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def __str__(self) -> str:
        return f"one of {len(self.names)} names" + "".join(f" or {prefix}NAME" for prefix in self.prefixes)

    def holds(self, value: Any) -> bool:
        return value in self.names or (isinstance(value, str) and value.startswith(self.prefixes))

    def hint(self, value: Any) -> str:
        others = "".join(f", or {prefix}NAME" for prefix in self.prefixes)
        return f"{did_you_mean(str(value), self.names)} Valid names: {', '.join(self.names)}{others}."


@attrs.frozen
class Option:
    """One keyword option of a factory: its name, type, default and help text."""

    name: str
    type: Any
    default: Any
    help: str

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def type_name(self) -> str:
        return type_name(self.type)

    def check(self, value: Any, owner: str) -> Any:
        """Return ``value`` converted to this option's type, or raise OptionError naming both."""
        ok, converted = _conform(value, self.type)
        if not ok:
            raise OptionError(
                f"Option '{self.name}' of {owner} must be {self.type_name}, "
                f"got {value!r} ({type(value).__name__}).{self._closest_choice(value)}"
            )
        for bound in _bounds(self.type):
            if converted is not None and not bound.holds(converted):
                raise OptionError(f"Option '{self.name}' of {owner} must be {bound}, got {value!r}.{bound.hint(value)}")
        return converted

    def _closest_choice(self, value: Any) -> str:
        """' Did you mean ...?' for a misspelt choice of a Literal option (``cache=memry``)."""
        choices = [arm for arm in _literal_choices(self.type) if isinstance(arm, str)]
        return did_you_mean(value, choices) if isinstance(value, str) and choices else ""


def _bounds(tp: Any) -> list[Between | Named]:
    """The ranges and name lists declared in an annotation, also inside an Optional
    (``Annotated[float, Between(0, 1)] | None``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return [meta for meta in tp.__metadata__ if isinstance(meta, (Between, Named))]
    if origin in (typing.Union, types.UnionType):
        return [bound for arm in args for bound in _bounds(arm)]
    return []


def _literal_choices(tp: Any) -> tuple[Any, ...]:
    """The values of a Literal, also inside an Optional (``Literal['a', 'b'] | None``)."""
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(value for arm in typing.get_args(tp) for value in _literal_choices(arm))
    return ()


def summary_of(obj: Callable) -> str:
    """The first line of a factory's docstring: what `cv list` shows."""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n", 1)[0].strip()


def param_help(obj: Callable) -> dict[str, str]:
    """Map each ``:param name: text`` of a docstring to its text (continuation lines joined)."""
    return _split_doc(obj)[1]


def description(obj: Callable) -> str:
    """A factory's docstring without its ``:param`` entries (and their continuation lines)."""
    return _split_doc(obj)[0]


def _split_doc(obj: Callable) -> tuple[str, dict[str, str]]:
    body: list[str] = []
    helps: dict[str, str] = {}
    current = None
    for line in (inspect.getdoc(obj) or "").splitlines():
        match = _PARAM_LINE.match(line)
        if match:
            current = match.group(1)
            helps[current] = match.group(2).strip()
        elif current and line.startswith((" ", "\t")) and line.strip():
            helps[current] += " " + line.strip()
        else:
            current = None
            body.append(line)
    return "\n".join(body).strip(), helps


def _signature(factory: Callable) -> inspect.Signature:
    try:
        return inspect.signature(factory, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        # Annotations naming heavy types (kept under TYPE_CHECKING) stay as text: "any value".
        return inspect.signature(factory)


def describe(factory: Callable, inputs: int) -> tuple[Option, ...]:
    """The options of ``factory``: its parameters after the first ``inputs`` positional ones."""
    params = list(_signature(factory).parameters.values())
    helps = param_help(factory)
    options = []
    for param in params[inputs:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = Any if param.annotation is param.empty else param.annotation
        options.append(Option(param.name, annotation, param.default, helps.get(param.name, "")))
    return tuple(options)


def validate(options: Sequence[Option], given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Check ``given`` against the declared options: names known, types right, required present."""
    declared = {opt.name: opt for opt in options}
    for name in given:
        if name not in declared:
            valid = ", ".join(declared) or "none"
            raise OptionError(
                f"Unknown option '{name}' for {owner}.{did_you_mean(name, declared)} "
                f"Valid options: {valid}."
            )
    checked = {name: declared[name].check(value, owner) for name, value in given.items()}
    missing = [opt.name for opt in options if opt.required and opt.name not in checked]
    if missing:
        raise OptionError(f"{owner} needs option(s) {', '.join(missing)}.")
    return checked


def type_name(tp: Any) -> str:
    """A readable name for an annotation: 'int', 'list[int]', "'a' | 'b'", 'float | None'."""
    if tp is Any or isinstance(tp, str):
        return "any" if tp is Any else tp
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return " ".join([type_name(args[0]), *(str(bound) for bound in _bounds(tp))])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if tp is type(None):
        return "None"
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def _conform(value: Any, tp: Any) -> tuple[bool, Any]:
    """(does value fit tp, value converted to it): ints widen to float, lists to tuples, str to Path."""
    if tp is Any or isinstance(tp, str):
        return True, value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _conform(value, args[0])
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            ok, converted = _conform(value, arm)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        return value in args, value
    if origin in (list, tuple, Sequence, typing.Sequence) or tp in (list, tuple):
        return _conform_sequence(value, origin or tp, args)
    return _conform_scalar(value, tp)


def _conform_sequence(value: Any, origin: Any, args: tuple) -> tuple[bool, Any]:
    if not isinstance(value, (list, tuple)):
        return False, value
    item_type = args[0] if args else Any
    items = []
    for item in value:
        ok, converted = _conform(item, item_type)
        if not ok:
            return False, value
        items.append(converted)
    return True, (tuple(items) if origin is tuple else list(items))


def _conform_scalar(value: Any, tp: Any) -> tuple[bool, Any]:
    if tp is type(None) or tp is None:  # TOML has no null: the string "none" stands for it
        return value is None or value == "none", None
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        return fits, float(value) if fits else value
    if tp is Path:
        return isinstance(value, (str, Path)), Path(value) if isinstance(value, str) else value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value
