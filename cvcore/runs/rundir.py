"""The run directory: claimed by one `cv train` for the run's whole life, never shared by two.

The claim is an exclusive ``flock`` on the directory itself, so it is atomic and a killed run
leaves no stale lock behind (the kernel drops it with the process). Where ``fcntl`` does not
exist (Windows) only the "already holds a run" check guards the directory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cvcore.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class RunDir:
    """A claimed run directory; :meth:`release` gives it up, :meth:`abandon` also removes it if
    this claim created it and nothing was written to it (a run that failed while building)."""

    def __init__(self, path: Path, created: list[Path]) -> None:
        self.path, self.created = path, created  # the folders this claim made, innermost first
        self._fd = os.open(path, os.O_RDONLY)
        try:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ConfigError(f"Run directory '{path}' is in use by another running `cv train`; wait for it to "
                              f"end, or choose another --run-dir.") from None

    @classmethod
    def claim(cls, config: dict[str, Any], *, resuming: Path | None = None) -> RunDir:
        """Claim ``resuming``, or [trainer] run_dir, or a new runs/<time>-<dataset>-<model>."""
        if resuming is not None:
            return cls(resuming, created=[])
        chosen = config.get("trainer", {}).get("run_dir")
        path = Path(chosen).expanduser() if chosen else _fresh_path(config)
        created = [folder for folder in (path, *path.parents) if not folder.exists()]
        try:
            path.mkdir(parents=True, exist_ok=bool(chosen))
        except FileExistsError:  # another run took this name in the same second
            return cls.claim(config)
        except OSError as exc:
            raise ConfigError(f"Cannot create run directory '{path}': {exc.strerror or exc}. "
                              f"Choose another --run-dir.") from None
        claim = cls(path, created)
        if (path / "config.toml").exists():
            claim.release()
            raise ConfigError(f"Run directory '{path}' already holds a run; choose another --run-dir, or continue "
                              f"it with: cv train --resume {path}")
        return claim

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def abandon(self) -> None:
        self.release()
        for folder in self.created:
            try:
                folder.rmdir()  # only while empty: never removes what something wrote
            except OSError:
                return


def _fresh_path(config: dict[str, Any]) -> Path:
    """runs/<time>-<dataset>-<model> with short names, numbered if that exists already."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    short = [config[section]["name"].rpartition(":")[2].replace("/", "_") for section in ("dataset", "model")]
    base = Path("runs") / f"{stamp}-{short[0]}-{short[1]}"
    path, index = base, 1
    while path.exists():
        index += 1
        path = base.with_name(f"{base.name}-{index}")
    return path
