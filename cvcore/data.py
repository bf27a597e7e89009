"""What a data set tells the rest of a run: the task, the classes, the image geometry."""

from __future__ import annotations

from typing import Any

import attrs


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

    @class_names.validator
    def _names_match(self, attribute, value) -> None:
        if len(value) != self.num_classes:
            raise ValueError(f"{len(value)} class names for {self.num_classes} classes")

    def fill(self) -> dict[str, Any]:
        """The fields a component option may take its value from, by option name."""
        return attrs.asdict(self, recurse=False)


@attrs.frozen
class DataSplits:
    """What a dataset factory returns: training and validation sets, their metadata, and the
    training transforms the data set suggests (names, or ``(name, options)`` pairs), which a run
    uses unless it lists its own."""

    train: Any
    val: Any
    info: DataInfo
    transforms: tuple[str | tuple[str, dict[str, Any]], ...] = attrs.field(default=(), converter=tuple, kw_only=True)
