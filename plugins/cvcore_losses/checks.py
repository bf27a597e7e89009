"""Option checks shared by the loss factories."""

from __future__ import annotations

from cvcore import OptionError


def check_weight(weight: list[float] | None, num_classes: int) -> None:
    if weight and num_classes and len(weight) != num_classes:
        raise OptionError(f"{len(weight)} class weights given for {num_classes} classes.")
