"""What a data set tells the rest of a run: the task, the classes, the image geometry."""

from __future__ import annotations

from typing import Any, Literal

import attrs

#: The ``cache`` option of data sets that store files through :mod:`cvcore.cache`: auto (in
#: memory when it fits in half the available memory, else memory-mapped), memory, mmap, or off
#: (decode the files in every epoch).
CacheMode = Literal["auto", "memory", "mmap", "off"]
# How images are resized (antialiased, as torchvision's Resize on tensors), as an option type.
Interpolation = Literal["bilinear", "bicubic"]


@attrs.frozen(kw_only=True)
class DataInfo:
    """Metadata that models, losses and metrics adapt to (the Trainer fills matching options)."""

    #: The registered task (``cv list task``); None: the task registered as the default.
    task: str | None = None
    num_classes: int
    class_names: tuple[str, ...] = attrs.field(converter=tuple)
    in_channels: int
    image_size: tuple[int, int] = attrs.field(converter=tuple)
    mean: tuple[float, ...] = attrs.field(converter=tuple)
    std: tuple[float, ...] = attrs.field(converter=tuple)
    #: Target value that losses and metrics leave out (segmentation masks: 255), filled into losses
    #: that declare an ``ignore_index`` option.
    ignore_index: int | None = None
    #: Validation (and ``cv predict``) resize the shorter side to this, then center-crop to
    #: ``image_size``; None: resize straight to the crop size.
    eval_resize: int | None = None
    #: How images were resized (``cvcore.images.INTERPOLATIONS``): `cv predict` resizes alike.
    interpolation: str = "bilinear"

    @class_names.validator
    def _names_match(self, attribute, value) -> None:
        if len(value) != self.num_classes:
            raise ValueError(f"{len(value)} class names for {self.num_classes} classes")

    def fill(self) -> dict[str, Any]:
        """The fields a component option may take its value from, by option name."""
        return attrs.asdict(self, recurse=False)


@attrs.frozen(kw_only=True)
class Placement:
    """Where a model's input lies in the image file it was made from (resized, centre-cropped, maybe
    decoded at a reduced scale), so that a task maps what the model says about input pixels back to
    the photo. Coordinates are continuous: (0, 0) is the top-left corner of the top-left pixel."""

    #: (height, width) of the file's image, upright (after its EXIF orientation).
    original_size: tuple[int, int] = attrs.field(converter=tuple)
    #: (height, width) of the model's input.
    input_size: tuple[int, int] = attrs.field(converter=tuple)
    #: (x0, y0, x1, y1): the input's extent in the original image's pixels.
    box: tuple[float, float, float, float] = attrs.field(converter=tuple)

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per input pixel, (along x, along y)."""
        return ((self.box[2] - self.box[0]) / self.input_size[1], (self.box[3] - self.box[1]) / self.input_size[0])

    def to_original(self, x, y):
        """Input coordinates (numbers or tensors) as (x, y) in the original image's pixels."""
        scale_x, scale_y = self.scale
        return self.box[0] + x * scale_x, self.box[1] + y * scale_y

    def to_input(self, x, y):
        """Original image coordinates as (x, y) in the input's pixels: :meth:`to_original` undone."""
        scale_x, scale_y = self.scale
        return (x - self.box[0]) / scale_x, (y - self.box[1]) / scale_y


@attrs.frozen
class DataSplits:
    """What a dataset factory returns: training and validation sets, their metadata, and the
    training transforms the data set suggests (names, or ``(name, options)`` pairs), which a run
    uses unless it lists its own."""

    train: Any
    val: Any
    info: DataInfo
    transforms: tuple[str | tuple[str, dict[str, Any]], ...] = attrs.field(converter=tuple, kw_only=True)

    @transforms.default
    def _asked_of_the_training_set(self) -> tuple:
        """What a 0.1 TensorImages asked for with ``crop_padding`` / ``flip`` (deprecated), else none."""
        return tuple(getattr(self.train, "suggested_transforms", ()))
