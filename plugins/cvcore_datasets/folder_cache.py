"""Folders of image files at in-memory speed: each file is decoded once into a uint8 square, and the
squares of a folder are stored in one file that later runs read while the folder is unchanged.

The cache lives in ``$CVCORE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/cvcore``, else
``~/.cache/cvcore``), under ``folders/``; deleting that folder clears it. A cache is named by the
files' paths, sizes and modification times and by the stored size, so that a changed folder is
decoded again (and its older cache removed). A cache that fits in half the available memory is
read into memory; a larger one is memory-mapped and its batches are read from disk.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cvcore import DataError

FORMAT = 1  # bump when what is stored changes
Decode = Callable[[Path, int], np.ndarray]


def cache_dir() -> Path:
    if os.environ.get("CVCORE_CACHE_DIR"):
        return Path(os.environ["CVCORE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cvcore"


def _fitted(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(new height, new width, top, left): the shorter side resized to ``size``, then the centre
    ``size`` x ``size`` cropped, with torchvision's Resize and CenterCrop rounding."""
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_width, new_height = int(size * width / height), size
    return new_height, new_width, int(round((new_height - size) / 2.0)), int(round((new_width - size) / 2.0))


def decode_image(path: Path, size: int) -> np.ndarray:
    """An RGB image file as a uint8 (3, size, size) array: decoded by PIL (JPEGs at least twice the
    size at a reduced scale, PIL's draft mode), resized by torch (bilinear with antialiasing, which
    differs from PIL's by at most one level in a few pixels, at a fraction of its time)."""
    try:
        with Image.open(path) as picture:
            picture.draft("RGB", (size, size))
            pixels = torch.from_numpy(np.array(picture.convert("RGB")))
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"Image '{path}' cannot be read ({exc}). Remove it, or set the data set option "
                        f"skip_unreadable=true (--set dataset.skip_unreadable=true) to leave such files out.") from None
    new_height, new_width, top, left = _fitted(pixels.shape[1], pixels.shape[0], size)
    image = pixels.permute(2, 0, 1).unsqueeze(0)  # channels-last memory: torch's fast path for bytes
    resized = F.interpolate(image, (new_height, new_width), mode="bilinear", antialias=True, align_corners=False)
    return resized[0, :, top:top + size, left:left + size].numpy()


def read_mask(path: Path) -> Image.Image:
    """A mask PNG (pixel = class id, palette images keep their indices), loaded and checked."""
    try:
        with Image.open(path) as picture:
            if picture.mode not in ("L", "P"):
                raise DataError(f"Mask '{path}' has mode {picture.mode}; masks are single-channel PNGs of class ids.")
            picture.load()
            return picture.copy()
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"Mask '{path}' cannot be read ({exc}).") from None


def decode_mask(path: Path, size: int) -> np.ndarray:
    """A mask as a uint8 (size, size) array of class ids, resized with nearest neighbour (PIL's)."""
    mask = read_mask(path)
    new_height, new_width, top, left = _fitted(*mask.size, size)
    return np.array(mask.resize((new_width, new_height), Image.NEAREST))[top:top + size, left:left + size]


class DecodedFiles(torch.utils.data.Dataset):
    """Files decoded on every access (the path without a cache), as the cache stores them."""

    def __init__(self, files: Sequence[Path], size: int, decode: Decode) -> None:
        self.files, self.size, self.decode = list(files), size, decode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.decode(self.files[index], self.size))


class Paired(torch.utils.data.Dataset):
    """``(images[i], targets[i])``: decoded files with a tensor of labels or decoded masks."""

    def __init__(self, images, targets) -> None:
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.targets[index]


def cached(files: Sequence[Path], size: int, decode: Decode, *, split: str,
           keep: str = "auto") -> tuple[torch.Tensor, bool]:
    """The decoded files as one uint8 tensor (N, ...) and whether it is memory-mapped.

    :param split: what the files are (``train``, ``val``): one cache per folder and split.
    :param keep: auto (in memory when it fits, else mapped), memory, or mmap.
    """
    if not files:
        raise DataError(f"No image files to read for the {split} split.")
    files = [Path(f) for f in files]
    data_path = _cache_path(files, size, decode, split)
    meta_path = data_path.with_suffix(".json")
    finish_writing(data_path)
    meta = _complete(meta_path, data_path, len(files))
    if meta is None:
        array, mapped = _write(files, size, decode, data_path, meta_path, keep)
        return torch.from_numpy(array), mapped
    shape = tuple(meta["shape"])
    mapped = _mapped(math.prod(shape), keep)
    array = (np.memmap(data_path, np.uint8, mode="c", shape=shape) if mapped
             else np.fromfile(data_path, np.uint8).reshape(shape))
    return torch.from_numpy(array), mapped


def _mapped(nbytes: int, keep: str) -> bool:
    return keep == "mmap" or (keep == "auto" and nbytes > _available_memory() / 2)


def _cache_path(files: list[Path], size: int, decode: Decode, split: str) -> Path:
    """FOLDER-CONTENT.u8: FOLDER names the folder, split and decoder; CONTENT the files' paths,
    sizes and modification times and the stored size."""
    stamp = [(str(f.resolve()), *_stat(f)) for f in files]
    folder = _digest([os.path.commonpath([name for name, _, _ in stamp]), split, decode.__name__])
    return cache_dir() / "folders" / f"{folder}-{_digest([FORMAT, size, stamp])}.u8"


def _stat(path: Path) -> tuple[int, int]:
    try:
        status = path.stat()
    except OSError as exc:
        raise DataError(f"Image '{path}' cannot be read ({exc}).") from None
    return status.st_size, status.st_mtime_ns


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def _complete(meta_path: Path, data_path: Path, count: int) -> dict | None:
    """The cache's description, or None when there is no complete cache: the description is
    written last, so a cache cut short has none, and a damaged data file has the wrong size."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        shape = meta["shape"]
        ok = shape[0] == count and all(isinstance(n, int) and n > 0 for n in shape)
        return meta if ok and data_path.stat().st_size == math.prod(shape) else None
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return None


def _remove_older(data_path: Path) -> None:
    """Delete the caches of the same folder and split made before its files changed."""
    folder = data_path.name.split("-")[0]
    for older in data_path.parent.glob(f"{folder}-*"):
        if older.stem != data_path.stem:
            older.unlink(missing_ok=True)


def _write(files: list[Path], size: int, decode: Decode, data_path: Path, meta_path: Path,
           keep: str) -> tuple[np.ndarray, bool]:
    """Decode every file in parallel threads (PIL and torch release the GIL while decoding and
    resizing). A cache that fits in memory is decoded there and saved to disk by a background
    thread while training starts; a larger one is decoded straight into its memory-mapped file.
    Returns the array and whether it is mapped."""
    started = time.perf_counter()
    first = decode(files[0], size)
    shape = (len(files), *first.shape)
    mapped = _mapped(math.prod(shape), keep)
    try:
        data_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(data_path.parent, exc) from None
    partial = data_path.with_name(f".{data_path.name}.{os.getpid()}.partial")
    print(f"note: decoding {len(files)} files under '{os.path.commonpath(files)}' once into a {size}x{size} cache "
          f"({math.prod(shape) / 1e9:.2f} GB in {data_path.parent})", file=sys.stderr)
    if mapped:
        try:
            array = np.memmap(partial, np.uint8, mode="w+", shape=shape)
            _decode_into(array, files, size, decode, first)
            array.flush()
        except BaseException as exc:
            partial.unlink(missing_ok=True)
            if isinstance(exc, OSError):  # decoding errors are DataErrors: this is the disk
                raise _unwritable(data_path.parent, exc) from None
            raise
        _publish(partial, data_path, meta_path, shape, started)
        return np.memmap(data_path, np.uint8, mode="c", shape=shape), True  # read-only: training never writes
    array = np.empty(shape, np.uint8)
    _decode_into(array, files, size, decode, first)
    writer = threading.Thread(target=_save, args=(array, partial, data_path, meta_path, started),
                              name="cvcore-cache-writer")  # not a daemon: the interpreter waits for it at exit
    _WRITERS[data_path] = writer
    writer.start()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: the other processes read it next
        finish_writing(data_path)
    return array, False


_WRITERS: dict[Path, threading.Thread] = {}


def finish_writing(data_path: Path | None = None) -> None:
    """Wait until the cache at ``data_path`` (default: every cache this process is writing) is on disk."""
    for path in [data_path] if data_path else list(_WRITERS):
        writer = _WRITERS.pop(path, None)
        if writer is not None:
            writer.join()


def _save(array: np.ndarray, partial: Path, data_path: Path, meta_path: Path, started: float) -> None:
    """Write a decoded cache to disk and publish it. Failing (a full disk) only warns: the run has
    the images in memory, and the next run decodes them again."""
    try:
        array.tofile(partial)
        _publish(partial, data_path, meta_path, array.shape, started)
    except (OSError, DataError) as exc:
        partial.unlink(missing_ok=True)
        print(f"warning: the image cache was not saved, so the next run decodes the images again: "
              f"{_unwritable(data_path.parent, exc)}", file=sys.stderr)


def _publish(partial: Path, data_path: Path, meta_path: Path, shape: tuple[int, ...], started: float) -> None:
    """Rename the finished file into place, then write its description (what makes it complete),
    then delete the caches of the folder's earlier contents."""
    from cvcore.checkpoint import write_atomically

    partial.replace(data_path)
    meta = {"shape": list(shape), "seconds": round(time.perf_counter() - started, 2)}
    write_atomically(meta_path, json.dumps(meta).encode())
    _remove_older(data_path)


def _unwritable(folder: Path, exc: OSError) -> DataError:
    return DataError(f"The image cache cannot be written in '{folder}' ({exc}). Set CVCORE_CACHE_DIR to a "
                     f"writable folder with room for it, or the data set option cache=off "
                     f"(--set dataset.cache=off) to decode the images in every epoch instead.")


def _decode_into(store: np.ndarray, files: list[Path], size: int, decode: Decode, first: np.ndarray) -> None:
    store[0] = first

    def fill(index: int) -> None:
        store[index] = decode(files[index], size)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(fill, range(1, len(files))))


def _available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable on Linux)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def stored_split(files: Sequence[Path], targets, size: int, *, split: str, cache: str):
    """A split of image files as the data set serves it: a TensorImages from the cache, or (cache
    "off") the files decoded on every access. ``targets``: a tensor of labels, or mask files."""
    from cvcore import TensorImages

    masks = not isinstance(targets, torch.Tensor)
    if cache == "off":
        return Paired(DecodedFiles(files, size, decode_image),
                      DecodedFiles(targets, size, decode_mask) if masks else targets)
    pixels, mapped = cached(files, size, decode_image, split=split, keep=cache)
    if masks:
        targets, _ = cached(targets, size, decode_mask, split=split, keep="mmap" if mapped else "memory")
    return TensorImages(pixels, targets, mapped=mapped)
