"""What a data set tells the rest of a run: the task, the classes, the image geometry."""

from __future__ import annotations

from typing import Any, Literal

import attrs

Task = Literal["classification", "segmentation"]


@attrs.frozen(kw_only=True)
class DataInfo:
    """Metadata that models, losses and metrics adapt to (the Trainer fills matching options)."""

    task: Task = "classification"
    num_classes: int
    class_names: tuple[str, ...] = attrs.field(converter=tuple)
    in_channels: int
    image_size: tuple[int, int] = attrs.field(converter=tuple)
    mean: tuple[float, ...] = attrs.field(converter=tuple)
    std: tuple[float, ...] = attrs.field(converter=tuple)

    @class_names.validator
    def _names_match(self, attribute, value) -> None:
        if len(value) != self.num_classes:
            raise ValueError(f"{len(value)} class names for {self.num_classes} classes")

    def fill(self) -> dict[str, Any]:
        """The fields a component option may take its value from, by option name."""
        return attrs.asdict(self, recurse=False)


@attrs.frozen
class DataSplits:
    """What a dataset factory returns: training and validation sets and their metadata."""

    train: Any
    val: Any
    info: DataInfo
