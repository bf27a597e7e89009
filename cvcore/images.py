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
    return read_image_and_extent(path, channels, smallest)[0]


def read_image_and_extent(path: Path, channels: int = 3, smallest: int | None = None):
    """:func:`read_image`, and where its pixels lie in the file's upright image: ((height, width) of
    the file's image, upright; (x0, y0, x1, y1) of the returned image in its pixels). They differ
    from the returned image's own size after draft decoding or the cut of a long strip."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                stored = picture.size
                if smallest is not None:
                    picture.draft("RGB" if channels == 3 else "L", (smallest, smallest))
                picture.load()
                upright = _eight_bit(ImageOps.exif_transpose(picture))
                turned = upright.size != picture.size  # EXIF orientations 5 to 8 swap the sides
                width, height = stored[::-1] if turned else stored
                box = (0, 0, *upright.size) if smallest is None else _central_box(*upright.size)
                kept = upright.crop(box) if box != (0, 0, *upright.size) else upright
                scale_x, scale_y = width / upright.size[0], height / upright.size[1]
                extent = (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y)
                return kept.convert("L" if channels == 1 else "RGB"), (height, width), extent
    except FileNotFoundError:
        raise DataError(f"Image '{path}' does not exist.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"Image '{path}' is too large to decode safely ({exc}).") from None
    except UnidentifiedImageError:
        raise DataError(f"Image '{path}' cannot be read: it is not an image file PIL can read.") from None
    except (OSError, SyntaxError, ValueError) as exc:  # not an image, truncated or damaged
        raise DataError(f"Image '{path}' cannot be read ({exc}).") from None


def read_centre(path: Path, channels: int, size: tuple[int, int], resize: int):
    """The image at ``path`` as validation and `cv predict` see it: its shorter side resized to
    ``resize`` (torchvision's Resize, antialiased), the centre ``size`` (height, width) kept, as a
    uint8 tensor (channels, height, width); and its :class:`cvcore.Placement` in the file's image."""
    import torch
    from torchvision.transforms.v2 import functional as F

    from cvcore.data import Placement

    height, width = size
    picture, original_size, (x0, y0, x1, y1) = read_image_and_extent(path, channels, resize)
    pixels = F.pil_to_tensor(picture)
    short, long = sorted(pixels.shape[-2:])
    resized = (resize, int(resize * long / short))  # torchvision's Resize(int): the longer side truncated
    resized_height, resized_width = resized if pixels.shape[-2] <= pixels.shape[-1] else resized[::-1]
    top, left = int(round((resized_height - height) / 2.0)), int(round((resized_width - width) / 2.0))
    pixels = F.center_crop(F.resize(pixels, [resized_height, resized_width], antialias=True), [height, width])
    scale_x, scale_y = (x1 - x0) / resized_width, (y1 - y0) / resized_height
    box = (x0 + left * scale_x, y0 + top * scale_y, x0 + (left + width) * scale_x, y0 + (top + height) * scale_y)
    return pixels.to(torch.uint8), Placement(original_size=original_size, input_size=(height, width), box=box)


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
