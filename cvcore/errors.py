"""Errors a user can act on. The CLI prints them as one paragraph, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CvcoreError(Exception):
    """Base class of every error caused by input (names, options, files), not by a bug."""


class UnknownNameError(CvcoreError, LookupError):
    """A component name that no loaded plugin registers."""


class AmbiguousNameError(CvcoreError, LookupError):
    """A short name that two plugins register: only a qualified name can choose."""


class OptionError(CvcoreError, ValueError):
    """An option a component does not declare, or a value of the wrong type."""


class PluginError(CvcoreError):
    """A plugin that failed to load or to register, or broke the hook contract."""


class ConfigError(CvcoreError, ValueError):
    """A configuration file or override that cannot be used."""


class DataError(CvcoreError):
    """Data files that are missing or malformed."""


class UnreadableImageError(DataError):
    """An image file that cannot be decoded (damaged, not an image, a decompression bomb): a data
    set that can leave such files out catches it to say how."""


class BuildError(CvcoreError):
    """A component's factory raised, or returned something other than its kind promises."""


def one_line(exc: BaseException) -> str:
    """``ExcType: first line of the message``: how a plugin's own exception is summarised."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' Did you mean 'a' or 'b'?' for the closest choices, or '' when none is close."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
