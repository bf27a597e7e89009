"""Reading image files the one way that training (the folder cache) and `cv predict` share, so that
a model sees the same pixels in both: EXIF orientation applied, 16-bit images scaled (not clipped)
to 8 bits, large JPEGs decoded at a reduced scale (PIL's draft mode) no smaller than needed, and
every failure, a decompression bomb included, one DataError naming the file."""

from __future__ import annotations

import contextlib
import functools
import typing
import warnings
from pathlib import Path

from cvcore.data import Interpolation
from cvcore.errors import DataError, UnreadableImageError

# Extensions read as images; other files in an image folder are counted and reported, not read.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# How PIL turns each EXIF orientation upright (as ImageOps.exif_transpose does); 5 to 8 swap the sides.
_TURNS = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}  # PIL.Image.Transpose values
_SWAPPING = (5, 6, 7, 8)
MAX_ASPECT = 16  # with ``smallest``: longer / shorter side kept of a strip, before resizing
# Longer / shorter side that the folder cache stores (and validation crops from): a 4:3 or 3:2
# photo whole, a panorama's centre.
STORED_ASPECT = 1.5
# How stored images are resized (antialiased, as torchvision's Resize on tensors): what data sets
# offer as their ``interpolation`` option, and a model's pretrained input may name.
INTERPOLATIONS: tuple[str, ...] = typing.get_args(Interpolation)


def read_image(path: Path, channels: int = 3, smallest: int | None = None):
    """The image at ``path`` as a PIL image with ``channels`` (1: "L", 3: "RGB").

    :param smallest: the shorter side the caller will resize to before taking a centre square: a
        JPEG at least twice as large is decoded at the largest reduced scale that keeps both sides at
        least this long, and of a strip longer than MAX_ASPECT times its width only the centre is
        kept (a 4000 x 1 PNG would otherwise be resized to 1,024,000 x 256 pixels).
    """
    return read_image_and_extent(path, channels, smallest)[0]


def read_image_and_extent(path: Path, channels: int = 3, smallest: int | None = None):
    """:func:`read_image`, and where its pixels lie in the file's upright image: ((height, width) of
    the file's image, upright; (x0, y0, x1, y1) of the returned image in its pixels). They differ
    from the returned image's own size after draft decoding or the cut of a long strip."""
    with _opened(path) as picture:
        stored, orientation = picture.size, _orientation(picture)
        if smallest is not None:
            picture.draft("RGB" if channels == 3 else "L", (smallest, smallest))
        picture.load()
        upright = _eight_bit(picture.transpose(_TURNS[orientation]) if orientation in _TURNS else picture)
        width, height = stored[::-1] if orientation in _SWAPPING else stored
        box = (0, 0, *upright.size) if smallest is None else _central_box(*upright.size)
        kept = upright.crop(box) if box != (0, 0, *upright.size) else upright
        scale_x, scale_y = width / upright.size[0], height / upright.size[1]
        extent = (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y)
        return kept.convert("L" if channels == 1 else "RGB"), (height, width), extent


def upright_size(path: Path) -> tuple[int, int]:
    """(height, width) of the image at ``path`` once turned upright by its EXIF orientation, from
    its header alone (no pixel is decoded)."""
    with _opened(path) as picture:
        width, height = picture.size
        return (width, height) if _orientation(picture) in _SWAPPING else (height, width)


@contextlib.contextmanager
def _opened(path: Path):
    """The image file at ``path``, opened by PIL; every failure is one DataError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                yield picture
    except FileNotFoundError:
        raise DataError(f"Image '{path}' does not exist.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImageError(f"Image '{path}' is too large to decode safely ({exc}).") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(f"Image '{path}' cannot be read: it is not an image file PIL can read.") from None
    except (OSError, SyntaxError, ValueError) as exc:  # not an image, truncated or damaged
        raise UnreadableImageError(f"Image '{path}' cannot be read ({exc}).") from None


def _orientation(picture) -> int:
    """The EXIF orientation (1 to 8) as the header gives it, before any pixel is decoded: the same
    for the cache's layout and for decoding. (A PNG's eXIf chunk placed after its pixel data, which
    PIL would find only by decoding them, is not read.)"""
    if picture.format == "PNG" and "exif" not in picture.info:
        return 1
    return picture.getexif().get(0x0112, 1)


def stored_placement(height: int, width: int, resize: int):
    """Where the folder cache's copy of an upright ``height`` x ``width`` image lies in it (a
    :class:`cvcore.Placement`, from the size alone): the image (the centre of a strip longer than
    MAX_ASPECT) with its shorter side resized to ``resize`` (torchvision's Resize(int): the longer
    side truncated), its longer side then cut to STORED_ASPECT times that, keeping the centre."""
    from cvcore.data import Placement

    x0, y0, x1, y1 = _central_box(width, height)
    short, long = sorted((y1 - y0, x1 - x0))
    full = (resize, int(resize * long / short))
    if y1 - y0 > x1 - x0:  # portrait
        full = full[::-1]
    (full_height, full_width), (out_height, out_width) = full, stored_extents([(height, width)], resize)[0].tolist()
    top, left = centred(full_height, out_height), centred(full_width, out_width)
    scale_x, scale_y = (x1 - x0) / full_width, (y1 - y0) / full_height
    return Placement(original_size=(height, width), input_size=(out_height, out_width),
                     box=(x0 + left * scale_x, y0 + top * scale_y,
                          x0 + (left + out_width) * scale_x, y0 + (top + out_height) * scale_y))


def stored_extents(sizes, resize: int):
    """(N, 2) int64 numpy array: the (height, width) that :func:`stored_placement` gives images of
    ``sizes`` (N pairs of upright height, width), computed for all at once (a million in a
    fraction of a second). A strip longer than MAX_ASPECT needs no cut here: its longer side is
    cut to STORED_ASPECT times the shorter anyway."""
    import numpy

    sizes = numpy.asarray(sizes, dtype=numpy.float64).reshape(-1, 2)
    short, long = sizes.min(1), sizes.max(1)
    stored_long = numpy.minimum(numpy.floor(resize * long / short), int(resize * STORED_ASPECT))
    portrait = sizes[:, 0] > sizes[:, 1]
    return numpy.stack([numpy.where(portrait, stored_long, resize), numpy.where(portrait, resize, stored_long)],
                       1).astype(numpy.int64)


def read_stored(path: Path, channels: int, resize: int, interpolation: str = "bilinear"):
    """The image at ``path`` as the folder cache stores it (:func:`stored_placement`), as a uint8
    tensor (channels, height, width) (a window of the resized image, channels last in memory), and
    its placement. Resized by torch (``interpolation``, one of INTERPOLATIONS, with antialiasing, on
    bytes: several times faster than PIL's resize)."""
    import torch.nn.functional as F

    pixels, original_size, extent = _decoded(path, channels, resize)
    placement = stored_placement(*original_size, resize)
    full, (top, left) = stored_window(placement, extent)
    resized = F.interpolate(pixels.unsqueeze(0), full, mode=interpolation, antialias=True, align_corners=False)[0]
    (height, width) = placement.input_size
    return resized[:, top:top + height, left:left + width], placement


def _decoded(path: Path, channels: int, resize: int):
    """(uint8 tensor (channels, H, W), upright size, extent) as :func:`read_image_and_extent` reads
    the file. A JPEG that PIL's draft mode would not reduce is decoded by torchvision's
    libjpeg-turbo instead: the same pixels (tested), about 1.4 times as fast."""
    import numpy
    import torch

    with _opened(path) as picture:
        size, orientation = picture.size, _orientation(picture)
        by_torchvision = (picture.format == "JPEG" and min(size) < 2 * resize and max(size) <= MAX_ASPECT * min(size)
                          and (picture.mode == "L" or (channels == 3 and picture.mode == "RGB")))
    width, height = size[::-1] if orientation in _SWAPPING else size
    decode = _torchvision_jpeg_decoder() if by_torchvision else None
    if decode is not None:
        try:
            pixels = decode(path, channels)
        except RuntimeError:  # what it cannot decode, PIL reads (or names in a clear error)
            pixels = None
        if pixels is not None and tuple(pixels.shape[-2:]) == (height, width):
            return pixels, (height, width), (0.0, 0.0, float(width), float(height))
    picture, original_size, extent = read_image_and_extent(path, channels, resize)
    pixels = torch.from_numpy(numpy.array(picture)).reshape(picture.height, picture.width, channels)
    return pixels.permute(2, 0, 1), original_size, extent  # channels last in memory, as libjpeg's


@functools.cache
def _torchvision_jpeg_decoder():
    """torchvision's JPEG decoder as ``decode(path, channels)``, or None where this torchvision has
    none. torchvision 0.29 deprecates its decoders in favour of TorchCodec; cvcore then reads with
    PIL, the same pixels, more slowly. Its deprecation warning is for callers of torchvision.io,
    which a cvcore user is not, so it is not shown for cvcore's calls."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg, read_file
    except ImportError:
        return None
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                            category=DeprecationWarning, module="torchvision")

    def decode(path: Path, channels: int):
        mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
        return decode_jpeg(read_file(str(path)), mode=mode, apply_exif_orientation=True)

    return decode


def stored_window(placement, extent: tuple[float, float, float, float]) -> tuple[tuple[int, int], tuple[int, int]]:
    """For a decoded picture that covers ``extent`` (x0, y0, x1, y1) of the original image: the
    (height, width) to resize it to, and the (top, left) of the stored window in that, on whole pixels."""
    x0, y0, x1, y1 = extent
    scale_x, scale_y = placement.scale
    full = (round((y1 - y0) / scale_y), round((x1 - x0) / scale_x))
    (height, width), (left, top) = placement.input_size, placement.to_input(x0, y0)
    return full, (min(max(round(-top), 0), full[0] - height), min(max(round(-left), 0), full[1] - width))


def centred(extent: int, size: int) -> int:
    """The offset of a centred window of ``size`` in ``extent`` pixels, rounded as torchvision's CenterCrop."""
    return int(round((extent - size) / 2.0))


def read_centre(path: Path, channels: int, size: tuple[int, int], resize: int, interpolation: str = "bilinear"):
    """The image at ``path`` as validation and `cv predict` see it: stored as the folder cache stores
    it (:func:`read_stored`), then its centre ``size`` (height, width) kept, as a uint8 tensor
    (channels, height, width); and its :class:`cvcore.Placement` in the file's image."""
    from cvcore.data import Placement

    stored, placement = read_stored(path, channels, resize, interpolation)
    (height, width), (stored_height, stored_width) = size, stored.shape[-2:]
    if stored_height < height or stored_width < width:
        raise DataError(f"Image '{path}' is {stored_height}x{stored_width} after resizing to {resize}, smaller "
                        f"than the input size {height}x{width}.")
    top, left = centred(stored_height, height), centred(stored_width, width)
    x0, y0 = placement.to_original(left, top)
    x1, y1 = placement.to_original(left + width, top + height)
    return (stored[:, top:top + height, left:left + width],
            Placement(original_size=placement.original_size, input_size=size, box=(x0, y0, x1, y1)))


def _central_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The box of a picture kept: all of it, or the centre of a strip longer than MAX_ASPECT."""
    keep_width, keep_height = min(width, MAX_ASPECT * height), min(height, MAX_ASPECT * width)
    left, top = (width - keep_width) // 2, (height - keep_height) // 2
    return left, top, left + keep_width, top + keep_height


def _eight_bit(picture):
    """16-bit greyscale scaled to 0-255: PIL's own conversion clips every value above 255 to white."""
    if picture.mode not in _SIXTEEN_BIT:
        return picture
    import numpy
    from PIL import Image

    values = numpy.asarray(picture, dtype=numpy.float64)
    return Image.fromarray(numpy.clip(numpy.round(values / 257), 0, 255).astype(numpy.uint8), "L")
