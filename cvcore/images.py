"""Reading image files the one way that training (the folder cache) and `cv predict` share, so that
a model sees the same pixels in both: EXIF orientation applied, 16-bit images scaled (not clipped)
to 8 bits, large JPEGs decoded at a reduced scale (PIL's draft mode) no smaller than needed, and
every failure, a decompression bomb included, one DataError naming the file."""

from __future__ import annotations

import warnings
from pathlib import Path

from cvcore.errors import DataError

# Extensions read as images; other files in an image folder are counted and reported, not read.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
MAX_ASPECT = 16  # with ``smallest``: longer / shorter side kept, since only a centre square is used


def read_image(path: Path, channels: int = 3, smallest: int | None = None):
    """The image at ``path`` as a PIL image with ``channels`` (1: "L", 3: "RGB").

    :param smallest: the shorter side the caller will resize to before taking a centre square: a
        JPEG at least twice as large is decoded at the largest reduced scale that keeps both sides at
        least this long, and of a strip longer than MAX_ASPECT times its width only the centre is
        kept (a 4000 x 1 PNG would otherwise be resized to 1,024,000 x 256 pixels).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                if smallest is not None:
                    picture.draft("RGB" if channels == 3 else "L", (smallest, smallest))
                picture.load()
                upright = _eight_bit(ImageOps.exif_transpose(picture))
                kept = upright if smallest is None else _central_strip(upright)
                return kept.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise DataError(f"Image '{path}' does not exist.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"Image '{path}' is too large to decode safely ({exc}).") from None
    except UnidentifiedImageError:
        raise DataError(f"Image '{path}' cannot be read: it is not an image file PIL can read.") from None
    except (OSError, SyntaxError, ValueError) as exc:  # not an image, truncated or damaged
        raise DataError(f"Image '{path}' cannot be read ({exc}).") from None


def _central_strip(picture):
    width, height = picture.size
    if max(width, height) <= MAX_ASPECT * min(width, height):
        return picture
    keep_width, keep_height = min(width, MAX_ASPECT * height), min(height, MAX_ASPECT * width)
    left, top = (width - keep_width) // 2, (height - keep_height) // 2
    return picture.crop((left, top, left + keep_width, top + keep_height))


def _eight_bit(picture):
    """16-bit greyscale scaled to 0-255: PIL's own conversion clips every value above 255 to white."""
    if picture.mode not in _SIXTEEN_BIT:
        return picture
    import numpy
    from PIL import Image

    values = numpy.asarray(picture, dtype=numpy.float64)
    return Image.fromarray(numpy.clip(numpy.round(values / 257), 0, 255).astype(numpy.uint8), "L")
