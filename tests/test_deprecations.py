"""Every deprecation in cvcore.deprecations is triggered here by its old form, warns with a message
naming its removal release, and the old form still does what it did."""

import re

import pytest
import torch

import cvcore
from cvcore import deprecations


def _normalisation():
    data = cvcore.TensorImages(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2), (0.5,), (0.25,))
    assert data.suggested_transforms == ()


def _augmentation():
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    train = cvcore.TensorImages(images, torch.zeros(2), crop_padding=2, flip=True)
    info = cvcore.DataInfo(num_classes=2, class_names=["a", "b"], in_channels=1, image_size=(4, 4),
                           mean=(0.5,), std=(0.25,))
    assert cvcore.DataSplits(train, train, info).transforms == (("pad_crop", {"padding": 2}), "flip")
    assert cvcore.DataSplits(train, train, info, transforms=["flip"]).transforms == ("flip",)  # chosen wins


TRIGGERS = {"TENSOR_IMAGES_NORMALISATION": _normalisation, "TENSOR_IMAGES_AUGMENTATION": _augmentation}


def test_every_deprecation_has_a_trigger_here():
    declared = {name for name, value in vars(deprecations).items() if isinstance(value, deprecations.Deprecation)}
    assert declared == set(TRIGGERS)


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_the_old_form_warns_and_still_works(name):
    deprecation = getattr(deprecations, name)
    with pytest.warns(deprecations.CvcoreDeprecationWarning, match=re.escape(deprecation.message)) as caught:
        TRIGGERS[name]()
    assert caught[0].filename == __file__  # the warning points at the caller's line, not cvcore's
    assert re.fullmatch(r"\d+\.\d+\.\d+", deprecation.removed_in) and deprecation.removed_in > deprecation.since
    assert issubclass(deprecations.CvcoreDeprecationWarning, DeprecationWarning)
