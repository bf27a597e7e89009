"""Run configuration: TOML files, command-line overrides, and the resolved TOML that runs again.

A configuration is a dict shaped like the TOML file::

    [trainer]            # TrainerOptions: epochs, batch_size, precision, device, seed, ...
    [dataset]            # name = "digits", then the data set's options
    [model]              # name = "lenet", then its options (likewise [loss], [optimizer])
    [scheduler]          # name = ["warmup", "multistep"], chained in order
    [scheduler.warmup]   # options of one scheduler (likewise [callbacks] / [callbacks.NAME])
    [transforms]         # name = ["random_resized_crop", "flip"], applied in order; left out: the
                         # data set's own list; name = [] (or --transform none): no augmentation
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from cvcore.errors import ConfigError, did_you_mean

SINGLE = ("dataset", "model", "loss", "optimizer")
CHAINED = ("scheduler", "callbacks", "transforms")
SECTIONS = ("trainer", *SINGLE, *CHAINED)

# Names that cvcore itself chooses are qualified (PLUGIN:NAME) with the built-in plugin, so that a
# plugin registering the same short name never makes the defaults ambiguous.
# Under every configuration: what a run has unless its file or flags say otherwise.
# The loss is the one the data set or its task suggests (plan.with_suggested_loss) unless chosen.
BASE: dict[str, Any] = {"scheduler": {"name": []},
                        "callbacks": {"name": ["callbacks:checkpoint"]}}

# The default job (`cv train` with no file): real handwritten digits, offline, in seconds.
DEFAULT_JOB: dict[str, Any] = {
    "trainer": {"epochs": 12, "batch_size": 32},
    "dataset": {"name": "datasets:digits"},
    "model": {"name": "models:lenet"},
    "optimizer": {"name": "optim:adam", "lr": 0.002},
    "scheduler": {"name": ["optim:cosine"]},
}
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def load(path: Path) -> dict[str, Any]:
    """Read a TOML configuration file; a missing or malformed file is a ConfigError naming it."""
    try:
        with open(path, "rb") as stream:
            config = tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(f"Configuration file '{path}' does not exist.") from None
    except IsADirectoryError:
        raise ConfigError(f"Configuration file '{path}' is a directory; pass a .toml file.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"'{path}' is not UTF-8 text (byte {exc.start}): TOML files are UTF-8.") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        reason = exc if isinstance(exc, tomllib.TOMLDecodeError) else "nested too deeply"
        raise ConfigError(f"'{path}' is not valid TOML: {reason}.") from None
    check_sections(config, str(path))
    return config


def check_sections(config: dict[str, Any], where: str) -> None:
    for section, value in config.items():
        if section not in SECTIONS:
            raise ConfigError(f"Unknown section [{section}] in {where}.{did_you_mean(section, SECTIONS)} "
                              f"Sections: {', '.join(SECTIONS)}.")
        if not isinstance(value, dict):
            raise ConfigError(f"[{section}] in {where} must be a table, got {value!r}.")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``override`` laid over it, table by table."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def choose_components(config: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``config``, where a section whose component is replaced loses the
    options written for the old one: options belong to a component (``--optimizer sgd`` over the
    default job's adam keeps no adam ``lr``; ``--lr`` still applies, being in ``override``)."""
    kept = copy.deepcopy(config)
    for section in SINGLE:
        name = override.get(section, {}).get("name")
        if name is not None and name != kept.get(section, {}).get("name"):
            kept[section] = {}
    for section in CHAINED:
        if "name" in override.get(section, {}):
            new = {name.rpartition(":")[2] for name in names(override, section)}
            kept[section] = {k: v for k, v in kept.get(section, {}).items() if k.rpartition(":")[2] in new}
    return merge(kept, override)


def parse_value(text: str) -> Any:
    """A TOML value (``0.9``, ``true``, ``[80, 120]``, ``"x"``); anything else is a bare string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_set(config: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply one ``--set KEY=VALUE`` (``optimizer.momentum=0.9``, ``scheduler.multistep.gamma=0.2``)."""
    key, sep, text = assignment.partition("=")
    if not sep:
        raise ConfigError(f"--set expects SECTION.OPTION=VALUE (e.g. optimizer.momentum=0.9), got '{assignment}'.")
    return set_value(config, key.strip(), parse_value(text.strip()), said=assignment)


def apply_sets(config: dict[str, Any], assignments) -> dict[str, Any]:
    """Apply ``--set KEY=VALUE`` assignments in order."""
    for assignment in assignments:
        config = apply_set(config, assignment)
    return config


def set_value(config: dict[str, Any], key: str, value: Any, *, said: str | None = None) -> dict[str, Any]:
    """``config`` with the option at dotted ``key`` (``optimizer.lr``) set to ``value``; ``said``:
    how the user wrote it, for the error."""
    parts = key.split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set expects SECTION.OPTION=VALUE (e.g. optimizer.momentum=0.9), got '{said or key}'.")
    check_sections({parts[0]: {}}, "--set")
    override: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        override = {part: override}
    return merge(config, override)


def names(config: dict[str, Any], section: str) -> list[str]:
    """The component names of a chained section (a single string counts as a list of one;
    ``none`` names nothing)."""
    value = config.get(section, {}).get("name", [])
    return [name for name in ([value] if isinstance(value, str) else value) if name != "none"]


def options_of(config: dict[str, Any], section: str) -> dict[str, Any]:
    """The options of a single section's component: its keys but ``name``."""
    return {k: v for k, v in config.get(section, {}).items() if k != "name"}


def to_toml(config: dict[str, Any]) -> str:
    """Serialise a configuration back to TOML (tables of scalars, lists and sub-tables)."""
    lines: list[str] = []
    for section in SECTIONS:
        if section in config:
            _write_table(lines, section, config[section])
    return "\n".join(lines).strip() + "\n"


def toml_key(key: str) -> str:
    """``key`` as TOML writes it: bare when it can be, else quoted (``"acme:halving"``)."""
    return key if _BARE_KEY.match(key) else toml_value(key)


def _write_table(lines: list[str], name: str, table: dict[str, Any]) -> None:
    lines.append(f"[{name}]")
    nested = []
    for key, value in table.items():
        if isinstance(value, dict):
            nested.append((key, value))
        elif value is not None:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    lines.append("")
    for key, value in nested:
        _write_table(lines, f"{name}.{toml_key(key)}", value)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string
