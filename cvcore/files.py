"""Writing into run directories and caches that other people may share: never through a symbolic link.

A run directory copied from someone else may hold ``metrics.jsonl -> ~/.bashrc``; writing by name
would follow the link and overwrite its target. Whole files are written to a new temporary file and
renamed over the name (a rename replaces a link itself, never what it points to), appends refuse a
link (``O_NOFOLLOW``), and the folders written into must not be links either.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from cvcore.errors import DataError

_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and a rename: the file is whole or
    untouched, and a link at ``path`` is replaced, not followed. A failed write (a full disk)
    removes the temporary file and raises a DataError, leaving the previous file as it was."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        make_directory(path.parent)
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o666)
        with open(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # the folder itself may be what cannot be written
            temporary.unlink(missing_ok=True)
        kept = "the previous version is kept" if path.exists() else "nothing was written"
        raise DataError(f"Could not write '{path}': {exc.strerror or exc}; {kept}.") from exc
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def write_text(path: Path, text: str) -> None:
    write_atomically(path, text.encode("utf-8"))


def append_text(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` (created if missing); a link at ``path`` is refused."""
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NO_FOLLOW, 0o666)
    except OSError as exc:
        if path.is_symlink():
            raise _link_refused(path) from None
        raise DataError(f"Could not write '{path}': {exc.strerror or exc}.") from exc
    with open(descriptor, "a", encoding="utf-8") as stream:
        stream.write(text)


def make_directory(path: Path) -> Path:
    """``path`` as a folder (made if missing), refused if it, or a folder on the way to it that
    this call would write into, is a symbolic link."""
    path = Path(path)
    if path.is_symlink():
        raise _link_refused(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"Could not create the folder '{path}': {exc.strerror or exc}.") from None
    return path


def _link_refused(path: Path) -> DataError:
    return DataError(f"'{path}' is a symbolic link; cvcore never writes through one (it could point anywhere). "
                     f"Remove the link, or write elsewhere.")


def save_figure(figure, path: Path, **options) -> Path:
    """A matplotlib figure as a PNG at ``path``, written atomically (savefig itself follows links)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **options)
    write_atomically(path, buffer.getvalue())
    return Path(path)


def save_image(image, path: Path) -> Path:
    """A PIL image as a PNG at ``path``, written atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomically(path, buffer.getvalue())
    return Path(path)
