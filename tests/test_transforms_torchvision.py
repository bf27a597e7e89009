"""Every deterministic operation of the built-in transforms, pixel by pixel against torchvision's
``transforms.v2.functional`` (or the torchvision transform it names) on the same parameters.
Distribution tests let a shear about the wrong corner or a hue shift in the wrong colour space
through; these do not."""


import pytest
import torch
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

import cvcore
from cvcore_transforms import geometric
from cvcore_transforms import photometric as ph
from cvcore_transforms.policies import SPACE, TrivialAugment

BINS = 31
THEIRS = {"identity": "Identity", "shear_x": "ShearX", "shear_y": "ShearY", "translate_x": "TranslateX",
          "translate_y": "TranslateY", "rotate": "Rotate", "brightness": "Brightness", "color": "Color",
          "contrast": "Contrast", "sharpness": "Sharpness", "posterize": "Posterize", "solarize": "Solarize",
          "autocontrast": "AutoContrast", "equalize": "Equalize"}
EIGHT_BIT = {"posterize", "solarize", "autocontrast", "equalize"}  # torchvision defines these on bytes



def extents_of(images):
    """Every image's whole (height, width): what a batch of one size amounts to."""
    return torch.tensor(images.shape[-2:]).expand(len(images), 2)

def photo(count=4, height=20, width=28, seed=0) -> torch.Tensor:
    """uint8 pictures that are not square, with smooth and sharp parts (edges decide nearest sampling)."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (count, 3, height, width), generator=generator, dtype=torch.uint8)
    pixels[1] = pixels[1] // 4 + 100  # low contrast
    return pixels


def build(name, **options):
    return cvcore.create("transform", name, **options)


def test_trivial_augment_space_is_torchvisions():
    theirs = v2.TrivialAugmentWide(num_magnitude_bins=BINS)._AUGMENTATION_SPACE
    for name, (largest, signed) in SPACE.items():
        magnitudes_of, their_signed = theirs[THEIRS[name]]
        magnitudes = magnitudes_of(BINS, 20, 28)
        assert signed == their_signed, name
        if name not in ("posterize", "solarize", "identity", "autocontrast", "equalize"):
            assert torch.allclose(magnitudes, torch.linspace(0, largest, BINS)), name


@pytest.mark.parametrize("name, sign", [(name, sign) for name, (_, signed) in SPACE.items() if name != "identity"
                                        for sign in ((1.0, -1.0) if signed else (1.0,))])
@pytest.mark.parametrize("level", [1, 13, 30])
def test_trivial_augment_operations_equal_torchvisions(name, level, sign):
    largest, signed = SPACE[name]
    pixels = photo()
    magnitude = torch.full((len(pixels),), level / (BINS - 1) * largest * (sign if signed else 1.0))
    ours = TrivialAugment(BINS, 255)._apply(name, pixels.float() / 255, None, magnitude)[0]
    their_magnitudes = v2.TrivialAugmentWide._AUGMENTATION_SPACE[THEIRS[name]][0](BINS, *pixels.shape[-2:])
    their_magnitude = 0.0 if their_magnitudes is None else float(their_magnitudes[level])
    their_magnitude *= sign if signed else 1.0
    augment = v2.TrivialAugmentWide(num_magnitude_bins=BINS, interpolation=InterpolationMode.NEAREST)
    source = pixels if name in EIGHT_BIT else pixels.float() / 255
    theirs = torch.stack([augment._apply_image_or_video_transform(image, THEIRS[name], their_magnitude,
                                                                   InterpolationMode.NEAREST, augment._fill)
                          for image in source])
    if name in EIGHT_BIT:
        assert ((ours * 255).round() - theirs.float()).abs().max() <= 1
    elif name == "rotate":  # nearest sampling: a pixel centre on a tie may round the other way
        assert ((ours - theirs).abs().amax(1) > 1e-5).float().mean() < 0.005
    else:
        assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


@pytest.mark.parametrize("ours, theirs", [
    (ph.brightness, TF.adjust_brightness), (ph.contrast, TF.adjust_contrast),
    (ph.saturation, TF.adjust_saturation), (ph.sharpness, TF.adjust_sharpness), (ph.hue, TF.adjust_hue),
])
def test_colour_operations_equal_torchvisions_for_each_factor(ours, theirs):
    images = photo(5).float() / 255
    factors = torch.tensor([-0.4, 0.0, 0.3, 0.45, 0.5]) if ours is ph.hue else torch.tensor([0.0, 0.3, 1.0, 1.7, 2.5])
    expected = torch.stack([theirs(image, float(f)) for image, f in zip(images, factors)])
    assert torch.allclose(ours(images, factors), expected, atol=1e-5)


def test_flip_equals_torchvisions_flips():
    images = photo().float()
    masks = images[:, 0].long()
    for vertical, theirs in ((False, TF.horizontal_flip), (True, TF.vertical_flip)):
        out, moved = build("flip", p=1.0, vertical=vertical)(images, masks, torch.Generator())
        assert torch.equal(out, theirs(images)) and torch.equal(moved, theirs(masks))


def test_pad_crop_equals_torchvisions_pad_then_crop():
    images, padding = photo(), 3
    masks = images[:, 0].long()
    generator = torch.Generator().manual_seed(5)
    out, moved = build("pad_crop", padding=padding)(images, masks, generator)
    shifts = torch.randint(0, 2 * padding + 1, (2, len(images)), generator=torch.Generator().manual_seed(5))
    for i, (top, left) in enumerate(shifts.T.tolist()):
        assert torch.equal(out[i], TF.crop(TF.pad(images[i], [padding]), top, left, 20, 28))
        assert torch.equal(moved[i], TF.crop(TF.pad(masks[i:i + 1], [padding], fill=255), top, left, 20, 28)[0])


@pytest.fixture(params=["crop by crop (CPU)", "all crops together (other devices)"])
def resize_path(request, monkeypatch):
    """random_resized_crop resizes crop by crop on the CPU and in matrix products elsewhere: both
    are checked here, on the CPU."""
    if request.param.startswith("all"):
        monkeypatch.setattr(geometric, "resized_one_by_one", geometric.resized_together)
    return request.param


def test_random_resized_crop_equals_torchvisions_resized_crop_of_its_boxes(resize_path):
    images = photo(6).float() / 255
    masks = (photo(6, seed=1)[:, 0] // 64).long()
    crop = build("random_resized_crop", image_size=(12, 16))
    boxes = torch.stack(crop.draw(extents_of(images), torch.Generator().manual_seed(3)), 1).int().tolist()
    out, moved = crop(images, masks, torch.Generator().manual_seed(3))
    for i, (top, left, height, width) in enumerate(boxes):
        expected = TF.resized_crop(images[i], top, left, height, width, [12, 16], antialias=True)
        assert torch.allclose(out[i], expected, atol=1e-6)
        expected_mask = TF.resized_crop(masks[i:i + 1], top, left, height, width, [12, 16],
                                        interpolation=InterpolationMode.NEAREST_EXACT)[0]
        assert torch.equal(moved[i], expected_mask)


def test_random_resized_crop_of_bytes_is_within_a_level_of_torchvisions_resizes(resize_path):
    """Bytes: the products resize in float and round, equal to torchvision's float resize rounded
    but where float rounding lands on a half; torch's CPU byte kernel (crop by crop) rounds
    fixed-point weights instead. Each differs from the other by a level here and there."""
    images = photo(32, 40, 56)
    crop = build("random_resized_crop", image_size=(24, 32))
    boxes = torch.stack(crop.draw(extents_of(images), torch.Generator().manual_seed(3)), 1).int().tolist()
    out, _ = crop(images, torch.zeros(32), torch.Generator().manual_seed(3))
    assert out.dtype == torch.uint8
    rounded = torch.stack([TF.resized_crop(images[i].float(), *box, [24, 32], antialias=True).round()
                           for i, box in enumerate(boxes)]).clamp(0, 255)
    from_bytes = torch.stack([TF.resized_crop(images[i], *box, [24, 32], antialias=True) for i, box in enumerate(boxes)])
    assert (out.float() - rounded).abs().max() <= 1 and (out.int() - from_bytes.int()).abs().max() <= 1
    assert torch.equal(out, from_bytes) if resize_path.startswith("crop") else (out.float() == rounded).float().mean() > 0.999


@pytest.mark.parametrize("size, scale, ratio", [((10, 100), (0.9, 1.0), (3 / 4, 4 / 3)),
                                                ((100, 10), (0.9, 1.0), (3 / 4, 4 / 3)),
                                                ((40, 60), (0.95, 1.0), (2.0, 3.0))])
def test_random_resized_crop_falls_back_to_torchvisions_central_box(size, scale, ratio):
    images = torch.zeros(20, 1, *size)  # no box of these ratios covers that share: the fallback
    crop = build("random_resized_crop", image_size=(8, 8), scale=list(scale), ratio=list(ratio))
    ours = torch.stack(crop.draw(extents_of(images), torch.Generator().manual_seed(0)), 1).int().tolist()
    theirs = list(v2.RandomResizedCrop.get_params(images[0], list(scale), list(ratio)))
    assert all(box == theirs for box in ours)


def test_random_erasing_ratio_is_height_over_width_as_torchvisions():
    images = torch.ones(400, 1, 60, 60)
    out, _ = build("random_erasing", p=1.0, scale=[0.05, 0.1], ratio=[2.0, 3.0], value=0.0)(
        images, torch.zeros(400), torch.Generator().manual_seed(0))
    erased = out[:, 0] == 0
    heights, widths = erased.any(2).sum(1).float(), erased.any(1).sum(1).float()
    torch.manual_seed(0)
    their = [v2.RandomErasing(p=1.0, scale=(0.05, 0.1), ratio=(2.0, 3.0), value=0).make_params([images[0]])
             for _ in range(400)]
    their_ratio = torch.tensor([p["h"] / p["w"] for p in their])
    assert (heights / widths).median() == pytest.approx(their_ratio.median().item(), rel=0.1)
    assert ((heights / widths) > 1.5).all()  # taller than wide, as ratio (2, 3) says
    expected = torch.stack([TF.erase(images[i], int(erased[i].any(1).nonzero()[0]), int(erased[i].any(0).nonzero()[0]),
                                     int(heights[i]), int(widths[i]), torch.tensor(0.0)) for i in range(400)])
    assert torch.equal(out, expected)  # one solid box per image
