"""The folder cache: image files decoded once into uint8 arrays, kept whole, which later runs read
at in-memory speed while the files are unchanged. Data set plugins store their splits through
:func:`image_split` (images with their targets) or :func:`stored_images` (the images alone, with
where each lies in its file, for targets that hold coordinates).

Each image is stored as :func:`cvcore.images.stored_placement` says: its shorter side at the data
set's ``resize`` and its longer side whole up to ``STORED_ASPECT`` times that (a 4:3 or 3:2 photo
whole, a panorama's centre), at the top-left of a canvas as large as the largest of the split, with
its extent (height, width) kept beside it. Training's random crops then draw from all of each photo
(:attr:`cvcore.Transform.reads_extents`), and validation takes the centre of each, as `cv predict`
does (:func:`cvcore.images.read_centre`). Images are stored channels last (each pixel's colours
together), as libjpeg decodes them and as torch crops and resizes bytes fastest.

The cache lives in ``$CVCORE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/cvcore``, else
``~/.cache/cvcore``), under ``folders/``; deleting that folder clears it. A cache is named by the
files' paths and what changes whenever a file does (size, inode, modification and change times in
nanoseconds: an edit that keeps the mtime, ``cp -p`` and folders swapped by renaming all change
it) and by the stored size, so that a changed folder is decoded again and its older cache of that
size removed; caches of other sizes stay, within ``$CVCORE_CACHE_GB`` (default 64), the least
recently used going first. Its description holds a checksum per block, the shape and each image's
size: a damaged cache is decoded again (a memory-mapped one is checked on a sample of blocks). A
cache that fits in half the available memory is read into memory; a larger one is memory-mapped.
Either is decoded straight into its file, which the run that builds it then trains from.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import stat
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import numpy as np
import torch
from PIL import Image

from cvcore.data import Placement
from cvcore.errors import DataError
from cvcore.files import make_directory, write_atomically
from cvcore import images
from cvcore.images import read_stored, stored_extents, stored_placement, stored_window, upright_size
from cvcore.training.tensor_data import IGNORE_INDEX, TensorImages

FORMAT = 4  # bump when what is stored changes (4: images channels last)
BLOCK = 16 << 20  # bytes per checksum
SAMPLED_BLOCKS = 8  # checked per read of a memory-mapped cache, besides the first and the last
Decode = Callable[[Path, int], np.ndarray]  # images (channels, height, width), masks (height, width)
# Headers read one after another, then in threads if they took longer than this each (a header in
# memory: 40 us; a slow or network disk: milliseconds).
HEADER_PROBE, SLOW_HEADER_SECONDS = 64, 200e-6

__all__ = ["StoredImages", "cache_dir", "finish_writing", "image_split", "read_mask", "stored_images",
           "stored_placements"]


def cache_dir() -> Path:
    if os.environ.get("CVCORE_CACHE_DIR"):
        return Path(os.environ["CVCORE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cvcore"


def decode_image(path: Path, resize: int, interpolation: str = "bilinear") -> np.ndarray:
    """An RGB image file as the cache stores it: uint8 (3, height, width), read as `cv predict`
    reads it (:func:`cvcore.images.read_stored`)."""
    return read_stored(path, 3, resize, interpolation)[0].numpy()


@functools.cache
def image_decoder(interpolation: str = "bilinear") -> Decode:
    """:func:`decode_image` resizing with ``interpolation`` (one of ``cvcore.images.INTERPOLATIONS``);
    its name, part of the cache's, tells the caches of one folder apart."""
    if interpolation not in images.INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {images.INTERPOLATIONS}, got {interpolation!r}")
    if interpolation == "bilinear":
        return decode_image

    def decode(path: Path, resize: int) -> np.ndarray:
        return decode_image(path, resize, interpolation)

    decode.__name__ = f"decode_image_{interpolation}"
    return decode


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


def decode_mask(path: Path, resize: int) -> np.ndarray:
    """A mask as the cache stores its image (:func:`cvcore.images.stored_placement`): uint8
    (height, width) class ids, resized with nearest neighbour (PIL's)."""
    mask = read_mask(path)
    placement = stored_placement(mask.height, mask.width, resize)
    (full_height, full_width), (top, left) = stored_window(placement, (0, 0, mask.width, mask.height))
    height, width = placement.input_size
    return np.array(mask.resize((full_width, full_height), Image.NEAREST))[top:top + height, left:left + width]


def stored_placements(files: Sequence[Path], resize: int) -> list[Placement]:
    """Where each file's stored copy lies in its image (:func:`cvcore.images.stored_placement`),
    from the files' headers alone: no pixel is decoded."""
    return [stored_placement(height, width, resize) for height, width in _upright_sizes(files)]


def _upright_sizes(files: Sequence[Path]) -> list[tuple[int, int]]:
    """Each file's upright (height, width), read from the headers: one after another while they come
    from memory (threads parsing headers in Python would only contend for the GIL: 4 times slower),
    the rest in parallel threads once reading them waits on the disk."""
    sizes, started = [], time.perf_counter()
    for start in range(0, len(files), HEADER_PROBE):
        sizes += map(upright_size, files[start:start + HEADER_PROBE])
        if time.perf_counter() - started > len(sizes) * SLOW_HEADER_SECONDS:
            with ThreadPoolExecutor(max_workers=8) as pool:
                return sizes + list(pool.map(upright_size, files[len(sizes):]))
    return sizes


@attrs.frozen
class StoredImages:
    """A split's images as the cache holds them."""

    #: uint8 (N, C, H, W), channels last in memory: each image at the top-left, zeros beyond its extent.
    pixels: torch.Tensor
    #: long (N, 2): (height, width) of each stored image.
    extents: torch.Tensor
    #: (height, width) of each file's upright image.
    sizes: list[tuple[int, int]]
    resize: int
    mapped: bool

    def placements(self) -> list[Placement]:
        """Where each stored image lies in its file's image (to move coordinates into it)."""
        return [stored_placement(height, width, self.resize) for height, width in self.sizes]


def stored_images(files: Sequence[Path], resize: int, *, split: str, keep: str = "auto",
                  interpolation: str = "bilinear") -> StoredImages:
    """The image files as the cache stores them, from the cache or decoded into it.

    :param split: what the files are (``train``, ``val``): one cache per folder, split and size.
    :param keep: auto (in memory when it fits, else mapped), memory, or mmap.
    :param interpolation: how images are resized (``cvcore.images.INTERPOLATIONS``).
    """
    pixels, sizes, mapped = cached(files, resize, image_decoder(interpolation), split=split, keep=keep)
    return StoredImages(pixels, _extents(sizes, resize), sizes, resize, mapped)


def _extents(sizes: list[tuple[int, int]], resize: int) -> torch.Tensor:
    return torch.from_numpy(stored_extents(sizes, resize))


def canvas_side(resize: int) -> int:
    """The longest side a stored image can have: the side of a canvas that holds any of them."""
    return int(resize * images.STORED_ASPECT)


class DecodedFiles(torch.utils.data.Dataset):
    """Files decoded on every access (the path without a cache), as the cache stores them: items
    are (canvas, extent), the canvas square and as large as any stored image can be, channels
    first in memory, the layout a DataLoader's collation gives batches whatever its items'."""

    def __init__(self, files: Sequence[Path], resize: int, decode: Decode, padding: int = 0) -> None:
        self.files, self.resize, self.decode, self.padding = list(files), resize, decode, padding

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = torch.from_numpy(self.decode(self.files[index], self.resize))
        side = canvas_side(self.resize)
        canvas = pixels.new_full((*pixels.shape[:-2], side, side), self.padding)
        canvas[..., :pixels.shape[-2], :pixels.shape[-1]] = pixels
        return canvas, torch.tensor(pixels.shape[-2:])


class Paired(torch.utils.data.Dataset):
    """``(image, target, extent)`` of decoded files with a tensor of targets or decoded masks."""

    def __init__(self, images: DecodedFiles, targets) -> None:
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, extent = self.images[index]
        target = self.targets[index]
        return image, target[0] if isinstance(self.targets, DecodedFiles) else target, extent


def image_split(files: Sequence[Path], targets, resize: int, *, split: str, cache: str,
                interpolation: str = "bilinear"):
    """A split of image files as a data set serves it: a :class:`cvcore.TensorImages` from the cache,
    or (``cache="off"``) the files decoded on every access. ``targets``: a tensor (one row per
    file) or mask files (PNG class ids, each the size of its image, resized by nearest neighbour)."""
    masks = not isinstance(targets, torch.Tensor)
    if cache == "off":
        return Paired(DecodedFiles(files, resize, image_decoder(interpolation)),
                      DecodedFiles(targets, resize, decode_mask, IGNORE_INDEX) if masks else targets)
    stored = stored_images(files, resize, split=split, keep=cache, interpolation=interpolation)
    if masks:
        _check_mask_sizes(targets, files, stored.sizes, resize)
        targets, _, _ = cached(targets, resize, decode_mask, split=split, keep="mmap" if stored.mapped else "memory",
                               sizes=stored.sizes, padding=IGNORE_INDEX)
    return TensorImages(stored.pixels, targets, extents=stored.extents, mapped=stored.mapped)


def _check_mask_sizes(masks: Sequence[Path], files: Sequence[Path], sizes: list[tuple[int, int]], resize: int) -> None:
    """Every mask is stored at its image's stored size (it has the image's size, or its shape at
    another scale), read from the headers before anything is decoded."""
    for mask, image, size in zip(masks, files, sizes):
        try:
            with Image.open(mask) as picture:
                found = picture.size[::-1]
        except OSError as exc:
            raise DataError(f"Mask '{mask}' cannot be read ({exc}).") from None
        if stored_placement(*found, resize).input_size != stored_placement(*size, resize).input_size:
            raise DataError(f"Mask '{mask}' is {found[0]}x{found[1]} (height x width) but its image '{image}' is "
                            f"{size[0]}x{size[1]} upright: a mask gives a class id per pixel of its image.")


def cached(files: Sequence[Path], resize: int, decode: Decode, *, split: str, keep: str = "auto",
           sizes: list[tuple[int, int]] | None = None, padding: int = 0) -> tuple[torch.Tensor, list, bool]:
    """The decoded files on one uint8 canvas (N, C, H, W) (channels last in memory) or, of masks,
    (N, H, W), the files' upright sizes, and whether the canvas is memory-mapped.

    :param sizes: the files' upright sizes, when known (masks: their images'); else read from the
        headers when decoding.
    :param padding: the value beyond each image's extent.
    """
    if not files:
        raise DataError(f"No image files to read for the {split} split.")
    files = [Path(f) for f in files]
    data_path = _cache_path(files, resize, decode, split)
    meta_path = data_path.with_suffix(".json")
    finish_writing(data_path)
    _remove_leftovers(data_path.parent)
    meta = _description(meta_path, data_path, len(files), resize)
    if meta is not None:
        shape = tuple(meta["shape"])
        mapped = _mapped(math.prod(shape), keep)
        array = (np.memmap(data_path, np.uint8, mode="c", shape=shape) if mapped
                 else np.fromfile(data_path, np.uint8).reshape(shape))
        if _intact(array, meta["blocks"], sampled=mapped):
            os.utime(meta_path)  # recently used: the budget evicts others first
            return _channels_first(array), [tuple(size) for size in meta["sizes"]], mapped
        print(f"note: the image cache '{data_path}' is damaged (a checksum does not match); decoding again",
              file=sys.stderr)
    if sizes is None:
        sizes = _upright_sizes(files)
    array, mapped = _write(files, resize, decode, data_path, meta_path, keep, sizes, padding)
    return _channels_first(array), sizes, mapped


def _channels_last(decoded: np.ndarray) -> np.ndarray:
    """A decoded image (C, H, W) as the cache stores it, (H, W, C) (a view); a mask as it is."""
    return np.moveaxis(decoded, 0, -1) if decoded.ndim == 3 else decoded


def _channels_first(array: np.ndarray) -> torch.Tensor:
    """Stored (N, H, W, C) images as an (N, C, H, W) tensor of the same memory; masks as they are."""
    pixels = torch.from_numpy(array)
    return pixels.permute(0, 3, 1, 2) if pixels.dim() == 4 else pixels


def _mapped(nbytes: int, keep: str) -> bool:
    """Memory-map the cache (rather than read it into this process's memory): when asked, when it
    is larger than half the available memory, or when several processes of a torchrun share this
    machine, since they then share one copy in the page cache instead of holding one each."""
    shared = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1
    return keep == "mmap" or (keep == "auto" and (shared or nbytes > _available_memory() / 2))


def _cache_path(files: list[Path], size: int, decode: Decode, split: str) -> Path:
    """FOLDER-CONTENT.u8: FOLDER names the folder, split, decoder and stored size; CONTENT the
    files' paths and file status."""
    stamp = _stamps(files)
    folder = _digest([os.path.commonpath([name for name, *_ in stamp]), split, decode.__name__, size])
    return cache_dir() / "folders" / f"{folder}-{_digest([FORMAT, images.STORED_ASPECT, size, stamp])}.u8"


def _stamps(files: list[Path]) -> list[tuple[str, int, int, int, int]]:
    """Each file's resolved path and what changes when the file does: size, inode, modification and
    change time (ns). The change time cannot be set by hand, so an edit that puts the mtime back
    still shows. Each folder is resolved once, and a file by itself only when it is a link:
    resolving a path costs ten times its status (30 s of every start for ImageNet's 1.28M files)."""
    folders: dict[str, str] = {}
    stamps = []
    for path in files:
        status = _status(path, os.lstat)
        if stat.S_ISLNK(status.st_mode):
            resolved, status = os.path.realpath(path), _status(path, os.stat)
        else:
            folder, name = os.path.split(path)
            if folder not in folders:
                folders[folder] = os.path.realpath(folder)
            resolved = os.path.join(folders[folder], name)
        stamps.append((resolved, status.st_size, status.st_ino, status.st_mtime_ns, status.st_ctime_ns))
    return stamps


def _status(path: Path, how: Callable[[Path], os.stat_result]) -> os.stat_result:
    """``how(path)`` (os.stat or os.lstat); a DataError naming the file where it cannot be read."""
    try:
        return how(path)
    except OSError as exc:
        raise DataError(f"Image '{path}' cannot be read ({exc}).") from None


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def _description(meta_path: Path, data_path: Path, count: int, resize: int) -> dict | None:
    """The cache's description, or None when there is no complete cache of these files: the
    description is written last (a cache cut short has none), names its data file (another
    folder's cache copied over it does not match) and gives a shape and image sizes that must fit
    the files, the stored size and the data file's length (nothing in it is trusted unchecked)."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        shape, blocks, sizes = meta["shape"], meta["blocks"], meta["sizes"]
        ok = (meta["data"] == data_path.name and shape[0] == count and len(sizes) == count
              and all(isinstance(n, int) and n > 0 for n in shape) and isinstance(blocks, list)
              and all(isinstance(n, int) and n > 0 for size in sizes for n in size)
              and (stored_extents(sizes, resize) <= shape[1:3]).all()
              and len(blocks) == max(1, math.ceil(math.prod(shape) / BLOCK)))
        return meta if ok and data_path.stat().st_size == math.prod(shape) else None
    except (OSError, ValueError, TypeError, KeyError, IndexError, ZeroDivisionError):
        return None


def _checksums(array: np.ndarray) -> list[int]:
    flat = array.reshape(-1)
    return [zlib.crc32(flat[start:start + BLOCK]) for start in range(0, max(flat.size, 1), BLOCK)]


def _intact(array: np.ndarray, blocks: list[int], *, sampled: bool) -> bool:
    """Whether the data matches its checksums: every block, or (a memory-mapped cache, read from
    disk batch by batch) the first, the last and a random sample of them."""
    flat = array.reshape(-1)
    chosen = range(len(blocks))
    if sampled and len(blocks) > SAMPLED_BLOCKS + 2:
        picks = np.random.default_rng().choice(len(blocks) - 2, SAMPLED_BLOCKS, replace=False) + 1
        chosen = [0, len(blocks) - 1, *picks.tolist()]
    return all(zlib.crc32(flat[i * BLOCK:(i + 1) * BLOCK]) == blocks[i] for i in chosen)


def _remove_older(data_path: Path) -> None:
    """Delete the caches of the same folder, split and size made before its files changed."""
    folder = data_path.name.split("-")[0]
    for older in data_path.parent.glob(f"{folder}-*"):
        if older.stem != data_path.stem:
            older.unlink(missing_ok=True)


def _remove_leftovers(folder: Path) -> None:
    """Delete what processes that died while writing left (``.NAME.PID.partial``, ``.NAME.tmp-PID``)
    and data files whose description never came: they would keep the disk full."""
    for leftover in [*folder.glob(".*.partial"), *folder.glob(".*.tmp-*")]:
        pid = leftover.name.rsplit(".", 2)[-2] if leftover.name.endswith(".partial") else leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            leftover.unlink(missing_ok=True)
    for data in folder.glob("*.u8"):  # a writer renames its data in, then describes it: allow it a minute
        if not data.with_suffix(".json").exists() and data not in _WRITERS and time.time() - data.stat().st_mtime > 60:
            data.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _keep_within_budget(folder: Path, needed: int) -> None:
    """Delete the least recently used caches until ``needed`` more bytes fit in $CVCORE_CACHE_GB."""
    budget = float(os.environ.get("CVCORE_CACHE_GB", "64")) * 1e9
    caches = sorted(((meta.stat().st_mtime, meta) for meta in folder.glob("*.json")), key=lambda item: item[0])
    used = sum(meta.with_suffix(".u8").stat().st_size for _, meta in caches if meta.with_suffix(".u8").exists())
    for _, meta in caches:
        if used + needed <= budget:
            break
        data = meta.with_suffix(".u8")
        used -= data.stat().st_size if data.exists() else 0
        meta.unlink(missing_ok=True)
        data.unlink(missing_ok=True)


def _write(files: list[Path], resize: int, decode: Decode, data_path: Path, meta_path: Path, keep: str,
           sizes: list[tuple[int, int]], padding: int) -> tuple[np.ndarray, bool]:
    """Decode every file in parallel threads (PIL and torch release the GIL while decoding and
    resizing) onto a canvas as large as the largest stored image (from ``sizes``), straight into
    the cache's file, its space reserved first (a full disk is an error, not a SIGBUS): the pixels
    reach the page cache once, with no copy to write out afterwards. A cache that fits in memory is
    then published by a background thread while training starts (on a full disk it is decoded in
    memory, with a warning); a larger one before it is returned. Returns the array, mapped
    copy-on-write (a write stays in this process, never reaches the cache), and whether it counts
    as mapped (too large for memory, or asked to be)."""
    started = time.perf_counter()
    first = _channels_last(decode(files[0], resize))
    extents = _extents(sizes, resize)
    shape = (len(files), *extents.max(0).values.tolist(), *first.shape[2:])
    nbytes, fill = math.prod(shape), (files, resize, decode, extents.tolist(), padding, first)
    mapped = _mapped(nbytes, keep)
    try:
        make_directory(data_path.parent)
    except DataError as exc:
        raise _unwritable(data_path.parent, exc) from None
    _keep_within_budget(data_path.parent, nbytes)
    partial = data_path.with_name(f".{data_path.name}.{os.getpid()}.partial")
    where = f"files under '{os.path.commonpath(files)}'" if len(files) > 1 else f"file '{files[0]}'"
    print(f"note: decoding {len(files)} {where} once into a cache, shorter sides at {resize} "
          f"({nbytes / 1e9:.2f} GB in {data_path.parent})", file=sys.stderr)
    try:
        stream = _reserve(partial, nbytes)
    except OSError as exc:
        if mapped:
            raise _unwritable(data_path.parent, exc) from None
        _warn_unsaved(data_path.parent, exc)
        array = np.empty(shape, np.uint8)
        _decode_into(array, *fill)
        return array, False
    made = {"sizes": sizes, "started": started}
    try:
        with stream:
            array = np.memmap(stream, np.uint8, mode="r+", shape=shape)
            _decode_into(array, *fill)
            readable = np.memmap(stream, np.uint8, mode="c", shape=shape)
        if mapped:
            _publish(array, partial, data_path, meta_path, made)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # decoding errors are DataErrors: this is the disk
            raise _unwritable(data_path.parent, exc) from None
        raise
    if not mapped:
        writer = threading.Thread(target=_save, args=(array, partial, data_path, meta_path, made),
                                  name="cvcore-cache-writer")  # not a daemon: the interpreter waits for it at exit
        _WRITERS[data_path] = writer
        writer.start()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: the other processes read it next
            finish_writing(data_path)
    return readable, mapped


def _reserve(path: Path, nbytes: int):
    """``path`` created (never through a link) with ``nbytes`` allocated on disk, open for reading
    and writing: ENOSPC here, not a SIGBUS mid-write."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(descriptor, 0, nbytes)
        else:
            os.ftruncate(descriptor, nbytes)
    except BaseException:
        os.close(descriptor)
        path.unlink(missing_ok=True)
        raise
    return os.fdopen(descriptor, "r+b")


_WRITERS: dict[Path, threading.Thread] = {}


def finish_writing(data_path: Path | None = None) -> None:
    """Wait until the cache at ``data_path`` (default: every cache this process is writing) is on disk."""
    for path in [data_path] if data_path else list(_WRITERS):
        writer = _WRITERS.pop(path, None)
        if writer is not None:
            writer.join()


def _save(array: np.ndarray, partial: Path, data_path: Path, meta_path: Path, made: dict) -> None:
    """Publish a cache decoded into its file. Failing (a full disk) only warns: the run has the
    images, and the next run decodes them again."""
    try:
        _publish(array, partial, data_path, meta_path, made)
    except (OSError, DataError) as exc:
        partial.unlink(missing_ok=True)
        _warn_unsaved(data_path.parent, exc)


def _warn_unsaved(folder: Path, exc: OSError | DataError) -> None:
    print(f"warning: the image cache was not saved, so the next run decodes the images again: "
          f"{_unwritable(folder, exc)}", file=sys.stderr)


def _publish(array: np.ndarray, partial: Path, data_path: Path, meta_path: Path, made: dict) -> None:
    """Make the finished file durable, rename it into place, then write its description (what
    makes it complete: the shape, a checksum per block and the images' sizes), then delete the
    caches of the folder's earlier contents. ``made``: the sizes, and when decoding started."""
    if sys.platform != "linux":  # there, fsync writes the mapping's pages too (msync is an fsync), and
        array.flush()  # releases the GIL, which numpy's flush (msync) holds while the disk writes
    descriptor = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    partial.replace(data_path)
    meta = {"data": data_path.name, "shape": list(array.shape), "blocks": _checksums(array),
            "sizes": [list(size) for size in made["sizes"]],
            "seconds": round(time.perf_counter() - made["started"], 2)}
    try:
        write_atomically(meta_path, json.dumps(meta).encode())
    except DataError:
        data_path.unlink(missing_ok=True)  # no orphan data file that fails every later save
        raise
    _remove_older(data_path)


def _unwritable(folder: Path, exc: OSError | DataError) -> DataError:
    return DataError(f"The image cache cannot be written in '{folder}' ({exc}). Set CVCORE_CACHE_DIR to a "
                     f"writable folder with room for it, or the data set option cache=off "
                     f"(--set dataset.cache=off) to decode the images in every epoch instead.")


def _decode_into(store: np.ndarray, files: list[Path], resize: int, decode: Decode, extents: list[list[int]],
                 padding: int, first: np.ndarray) -> None:
    """Each file decoded at the top-left of its place on the canvas, ``padding`` beyond its extent
    (``first``: the first file, already decoded)."""

    def fill(index: int) -> None:
        decoded = first if index == 0 else _channels_last(decode(files[index], resize))
        if list(decoded.shape[:2]) != extents[index]:  # its header said another size
            raise DataError(f"Image '{files[index]}' decodes to {decoded.shape[0]}x{decoded.shape[1]} pixels but "
                            f"its header says {extents[index][0]}x{extents[index][1]}; save it again.")
        height, width = extents[index]
        store[index, :height, :width] = decoded
        store[index, height:] = padding
        store[index, :height, width:] = padding

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(fill, range(len(files))))


def _available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable on Linux)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
