"""Every deprecation of cvcore's public API, in one place: what changed, since which release, and
the release that removes the old way (kept at least one minor release: CONTRIBUTING.md's
compatibility policy). Each is tested in tests/test_deprecations.py."""

from __future__ import annotations

import warnings

import attrs


class CvcoreDeprecationWarning(DeprecationWarning):
    """A use of cvcore's public API that a later release removes; the message names that release
    and the way that replaces it. The `cv` command shows them (a plugin that will break should be
    seen by its users too) unless Python's -W options or PYTHONWARNINGS say otherwise."""


@attrs.frozen
class Deprecation:
    """One deprecated way of using the API and its replacement."""

    old: str
    instead: str
    since: str
    removed_in: str

    @property
    def message(self) -> str:
        return (f"{self.old} is deprecated since cvcore {self.since} and will be removed in cvcore "
                f"{self.removed_in}: {self.instead}")

    def warn(self, stacklevel: int = 3) -> None:
        """Warn, pointing at the caller's caller (the plugin's line) by default."""
        warnings.warn(self.message, CvcoreDeprecationWarning, stacklevel=stacklevel)


TENSOR_IMAGES_NORMALISATION = Deprecation(
    "TensorImages(images, targets, mean, std)",
    "call TensorImages(images, targets); images are normalised with the DataInfo's mean and std.",
    since="0.2.0", removed_in="0.3.0")

TENSOR_IMAGES_AUGMENTATION = Deprecation(
    "TensorImages(..., crop_padding=P, flip=True)",
    "suggest the transforms with DataSplits(train, val, info, transforms=[('pad_crop', {'padding': P}), "
    "'flip']); they now run on whole batches on the device, for every kind of data set.",
    since="0.2.0", removed_in="0.3.0")
