"""Each built-in transform against its definition: the distribution of what it draws (compared with
torchvision's own sampling where torchvision has the transform), per-image parameters, and
masks carried with the image."""

import math

import numpy as np

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

import cvcore
from cvcore_transforms import geometric, photometric
from cvcore_transforms.policies import SPACE, TrivialAugment, pixel_matrices

COUNT = 4000



def extents_of(images):
    """Every image's whole (height, width): what a batch of one size amounts to."""
    return torch.tensor(images.shape[-2:]).expand(len(images), 2)

def build(name, **options):
    return cvcore.create("transform", name, **options)


def run(transform, images, targets, seed=0):
    return transform(images, targets, torch.Generator().manual_seed(seed))


def quantiles(values) -> torch.Tensor:
    return torch.quantile(torch.as_tensor(values, dtype=torch.float64), torch.linspace(0.1, 0.9, 9, dtype=torch.float64))


def test_random_resized_crop_draws_boxes_as_torchvision_does():
    images = torch.zeros(COUNT, 1, 60, 90)
    crop = build("random_resized_crop", image_size=(16, 16))
    top, left, height, width = (v.double() for v in crop.draw(extents_of(images), torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    theirs = torch.tensor([v2.RandomResizedCrop.get_params(images[0], [0.08, 1.0], [3 / 4, 4 / 3])
                           for _ in range(COUNT)], dtype=torch.float64)
    ours = torch.stack([top, left, height, width], 1)
    area_ours, area_theirs = ours[:, 2] * ours[:, 3] / 5400, theirs[:, 2] * theirs[:, 3] / 5400
    assert (quantiles(area_ours) - quantiles(area_theirs)).abs().max() < 0.03
    aspect_ours, aspect_theirs = (ours[:, 3] / ours[:, 2]).log(), (theirs[:, 3] / theirs[:, 2]).log()
    assert (quantiles(aspect_ours) - quantiles(aspect_theirs)).abs().max() < 0.05
    # Offsets: uniform over the room left, so the box centre is as likely left as right.
    for axis, room in ((0, 60), (1, 90)):
        centre = (ours[:, axis] + ours[:, axis + 2] / 2) / room
        assert abs(centre.mean().item() - 0.5) < 0.02
    assert (ours[:, 0] + ours[:, 2] <= 60).all() and (ours[:, 1] + ours[:, 3] <= 90).all() and (ours >= 0).all()


def test_random_resized_crop_moves_masks_with_the_image_and_resizes_to_the_size():
    masks = torch.zeros(200, 40, 40, dtype=torch.long)
    masks[:, :, :20], masks[:, 20:, 20:] = 1, 2
    images = (masks.float() / 2).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    out, moved = run(build("random_resized_crop", image_size=(24, 24)), images, masks)
    assert out.shape == (200, 3, 24, 24) and moved.shape == (200, 24, 24) and moved.dtype == torch.long
    # Bilinear (image) and nearest (mask) resampling differ only next to class edges.
    area = moved.unsqueeze(1).float()
    interior = (F.max_pool2d(area, 3, 1, 1) == -F.max_pool2d(-area, 3, 1, 1)).squeeze(1)
    assert torch.equal((out[:, 0] * 2).round().long()[interior], moved[interior])
    assert interior.float().mean() > 0.5
    assert len({tuple(m.unique().tolist()) for m in moved}) > 3  # crops differ from image to image


def test_flip_flips_a_share_p_of_the_images_and_their_masks():
    images = torch.zeros(COUNT, 1, 4, 4)
    images[..., 0] = 1
    masks = images[:, 0].long()
    out, moved = run(build("flip", p=0.3), images, masks)
    flipped = out[:, 0, 0, -1] == 1
    assert abs(flipped.float().mean().item() - 0.3) < 0.03
    assert torch.equal(moved, out[:, 0].long())
    vertical, _ = run(build("flip", p=1.0, vertical=True), images.transpose(-1, -2), masks)
    assert (vertical[:, 0, -1, :] == 1).all()


def test_pad_crop_shifts_by_up_to_the_padding_uniformly():
    images = torch.zeros(COUNT, 1, 9, 9)
    images[:, :, 4, 4] = 1
    out, _ = run(build("pad_crop", padding=2), images, torch.zeros(COUNT, dtype=torch.long))
    position = out[:, 0].flatten(1).argmax(1)
    rows, cols = position // 9, position % 9
    counts = torch.bincount(rows * 9 + cols, minlength=81).view(9, 9)[2:7, 2:7].float() / COUNT
    assert (counts - 1 / 25).abs().max() < 0.015  # 5 x 5 equally likely shifts


def test_color_jitter_factors_are_uniform_per_image():
    grey = torch.full((COUNT, 3, 2, 2), 0.5)
    out, _ = run(build("color_jitter", brightness=0.4, contrast=0, saturation=0), grey, torch.zeros(COUNT))
    values = out[:, 0, 0, 0]
    assert abs(values.mean().item() - 0.5) < 0.01
    assert values.min() >= 0.3 - 1e-6 and values.max() <= 0.7 + 1e-6
    assert abs(values.std().item() - 0.5 * 0.8 / math.sqrt(12)) < 0.01  # U[0.6, 1.4] times 0.5


def test_color_jitter_leaves_a_share_1_minus_p_untouched():
    images = torch.rand(COUNT, 3, 4, 4)
    out, _ = run(build("color_jitter", p=0.25), images, torch.zeros(COUNT))
    changed = (out != images).flatten(1).any(1).float().mean().item()
    assert abs(changed - 0.25) < 0.03


def test_color_jitter_on_the_cpu_in_chunks_gives_the_pixels_of_the_whole_batch(monkeypatch):
    """On the CPU the batch is jittered a few images at a time (chunks that stay in the cache), with
    the factors drawn for the whole batch: the same pixels as in one piece, an uneven last chunk too."""
    images = photo_batch(10)
    jitter = build("color_jitter", hue=0.2, p=0.7)
    whole, _ = run(jitter, images, torch.zeros(10))
    monkeypatch.setattr(photometric, "CPU_CHUNK_BYTES", 3 * images[0].nbytes)
    chunked, _ = run(jitter, images, torch.zeros(10))
    assert not torch.equal(whole, images)
    assert torch.allclose(chunked, whole, atol=1e-6, rtol=0)


def test_random_erasing_draws_boxes_as_torchvision_does():
    images = torch.ones(COUNT, 1, 32, 48)
    out, _ = run(build("random_erasing", p=0.5, value=0.0), images, torch.zeros(COUNT))
    erased = (out == 0).flatten(1).float().mean(1)
    assert abs((erased > 0).float().mean().item() - 0.5) < 0.03
    torch.manual_seed(0)
    eraser = v2.RandomErasing(p=1.0, value=0)
    theirs = [eraser.make_params([images[0]]) for _ in range(COUNT // 2)]
    areas = torch.tensor([p["h"] * p["w"] / (32 * 48) for p in theirs])
    assert (quantiles(erased[erased > 0]) - quantiles(areas)).abs().max() < 0.02


def test_random_erasing_fills_with_noise_by_default():
    out, _ = run(build("random_erasing", p=1.0), torch.full((50, 3, 32, 32), 0.5), torch.zeros(50))
    noise = out[out != 0.5]
    assert noise.numel() > 1000 and 0.45 < noise.mean() < 0.55 and noise.std() > 0.25


def test_mixup_shares_follow_beta_alpha_alpha_per_image_and_label_the_mixture():
    alpha, count = 0.8, COUNT * 2
    images = torch.arange(count).float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2) / count
    labels = torch.arange(count) % 2
    out, soft = run(build("mixup", alpha=alpha, p=1.0, num_classes=2), images, labels)
    lam = soft[torch.arange(count), labels]  # partners (mirrored places) have the other label
    assert torch.allclose(soft.sum(1), torch.ones(count))
    assert abs(lam.mean().item() - 0.5) < 0.02
    assert abs(lam.var().item() - 1 / (4 * (2 * alpha + 1))) < 0.01  # Beta(a, a) variance
    assert torch.allclose(out, lam.view(-1, 1, 1, 1) * images + (1 - lam.view(-1, 1, 1, 1)) * images.flip(0), atol=1e-6)


@pytest.mark.parametrize("alpha", [0.02, 0.1])
def test_mixing_shares_stay_symmetric_for_small_alpha(alpha):
    # Beta(a, a) is symmetric about 0.5; for a small alpha both gamma draws underflow float32 unless
    # drawn in logs (alpha 0.02 gave P(share < 0.5) = 0.665).
    labels = torch.arange(COUNT * 2) % 2
    _, soft = run(build("mixup", alpha=alpha, p=1.0, num_classes=2), torch.zeros(COUNT * 2, 1, 1, 1), labels)
    lam = soft[torch.arange(COUNT * 2), labels]
    assert abs((lam < 0.5).float().mean().item() - 0.5) < 0.025
    reference = np.random.default_rng(0).beta(alpha, alpha, COUNT * 10)
    at_the_ends = ((lam < 0.01) | (lam > 0.99)).float().mean().item()
    assert at_the_ends == pytest.approx(((reference < 0.01) | (reference > 0.99)).mean(), abs=0.03)


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mixing_changes_a_share_p_of_the_images(name):
    images = torch.rand(COUNT, 1, 8, 8)
    out, _ = run(build(name, p=0.3, num_classes=2), images, torch.arange(COUNT) % 2)
    assert abs((out != images).flatten(1).any(1).float().mean().item() - 0.3) < 0.03


def test_cutmix_label_share_is_the_pasted_area():
    count = 500
    images = (torch.arange(count).float() + 1).view(-1, 1, 1, 1).expand(-1, 1, 20, 30).contiguous()
    labels = torch.arange(count) % 2
    out, soft = run(build("cutmix", num_classes=2), images, labels)
    own = (out == images).flatten(1).float().mean(1)
    assert torch.allclose(soft[torch.arange(count), labels], own, atol=1e-6)
    assert own.min() < 0.3 and own.max() == 1.0 and own.std() > 0.15  # one share per image


def test_trivial_augment_draws_each_operation_for_a_fair_share_of_the_images():
    chosen, level, sign = build("trivial_augment").draw(torch.zeros(COUNT * 2), torch.Generator().manual_seed(0))
    assert (torch.bincount(chosen, minlength=len(SPACE)) - COUNT * 2 / len(SPACE)).abs().max() < 0.2 * COUNT * 2 / len(SPACE)
    assert torch.equal((level * 30).round().unique(), torch.arange(31.0)) and set(sign.unique().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("path", ["applied_together", "applied_by_operation"])
def test_trivial_augment_gives_each_image_the_operation_and_magnitude_it_drew(path):
    """Both paths (every operation on the whole batch, each image keeping its own, for GPUs; each
    operation on the images that drew it, on the CPU): image by image, the output equals that one
    operation applied to that image alone."""
    count = 3 * len(SPACE)
    chosen = torch.arange(count).roll(5) % len(SPACE)  # each operation's images not side by side
    level, sign = torch.rand(count), torch.where(torch.rand(count) < 0.5, -1.0, 1.0)
    policy = build("trivial_augment", ignore_index=255)
    masks = torch.randint(0, 3, (count, 20, 28))
    images = photo_batch(count)
    out, moved, drawn = getattr(policy, path)(images, masks, chosen, level, sign)
    matrices = policy.maps(drawn, images)
    for i, index in enumerate(chosen.tolist()):
        name = list(SPACE)[index]
        largest, signed = SPACE[name]
        magnitude = level[i:i + 1] * largest * (sign[i:i + 1] if signed else 1)
        expected, expected_mask, theta = ((images[i:i + 1], masks[i:i + 1], None) if name == "identity" else
                                          policy._apply(name, images[i:i + 1], masks[i:i + 1], magnitude))
        assert torch.allclose(out[i:i + 1], expected, atol=1e-6), name
        assert torch.equal(moved[i:i + 1], expected_mask), name
        assert torch.allclose(matrices[i], pixel_matrices(theta, 20, 28)[0] if theta is not None else torch.eye(3),
                              atol=1e-5), name


def photo_batch(count: int) -> torch.Tensor:
    """Float pictures, not square, with smooth and sharp parts."""
    images = torch.rand(count, 3, 20, 28, generator=torch.Generator().manual_seed(1))
    images[:, :, 5:15] = images[:, :, 5:15].round()
    return images


@pytest.mark.parametrize("operation", ["rotate", "shear_x", "translate_y"])
def test_trivial_augment_moves_masks_with_geometric_operations(operation):
    masks = torch.randint(0, 3, (16, 24, 24))
    images = (masks.float() / 2).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    policy = build("trivial_augment", ignore_index=255)
    magnitude = torch.linspace(-SPACE[operation][0], SPACE[operation][0], 16) * 0.5
    out, moved, _ = policy._apply(operation, images, masks, magnitude)
    inside = moved != 255
    assert (~inside).any() and inside.float().mean() > 0.5
    assert torch.equal((out[:, 0] * 2).round().long()[inside], moved[inside])
    assert (out[:, 0][~inside] == 0).all()  # uncovered pixels are black


def test_transforms_keep_segmentation_ignore_values(tmp_path):
    masks = torch.full((64, 16, 16), 255, dtype=torch.long)
    masks[:, 4:12, 4:12] = 1
    images = torch.rand(64, 3, 16, 16)
    for name in ("pad_crop", "flip", "random_resized_crop", "trivial_augment"):
        options = {"image_size": (16, 16)} if name == "random_resized_crop" else {}
        _, moved = run(build(name, **options), images, masks)
        assert set(moved.unique().tolist()) <= {1, 255}, name


class TensorCalls(torch.overrides.TorchFunctionMode):
    """Records the name of every torch function and tensor method called inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


HOST_READS = {"item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__", "cpu"}


def builtin_transforms() -> list[tuple[str, torch.dtype]]:
    """Each built-in transform with the pixels it may receive: geometric ones bytes or floats, the
    others floats (the Trainer converts bytes before them)."""
    names = sorted(c.name for c in cvcore.list_components("transform") if c.plugin.name == "transforms")
    return [(name, pixels) for name in names for pixels in (torch.uint8, torch.float32)
            if pixels == torch.float32 or build(name, **SIZED.get(name, {})).geometric]


SIZED = {"random_resized_crop": {"image_size": (24, 28)}}


@pytest.mark.parametrize("name, pixels", builtin_transforms())
def test_every_builtin_transform_runs_a_constant_number_of_operations_without_reading_the_host(name, pixels,
                                                                                             monkeypatch):
    """On a GPU each operation is a launch and each read of a tensor to the host a wait: whatever
    the batch size, a transform makes the same calls, and never reads a value back. (The CPU's own
    resizing of random_resized_crop, crop by crop, trivial_augment's operations applied to the
    images that drew them and color_jitter's chunks are set aside for the paths of every other device.)"""
    monkeypatch.setattr(geometric, "resized_one_by_one", geometric.resized_together)
    monkeypatch.setattr(TrivialAugment, "applied_by_operation", TrivialAugment.applied_together)
    monkeypatch.setattr(photometric, "CPU_CHUNK_BYTES", 2**62)
    transform = build(name, **SIZED.get(name, {}))
    calls = []
    for count in (16, 128):
        images = torch.randint(0, 256, (count, 3, 30, 36), dtype=torch.uint8)
        images = images if pixels == torch.uint8 else images.float() / 255
        targets = torch.randint(0, 10, (count,))
        with TensorCalls() as recorded:
            run(transform, images, targets)
        calls.append(recorded.names)
    assert not HOST_READS & set(calls[1]), f"{name} reads tensors back to the host: {HOST_READS & set(calls[1])}"
    assert len(calls[0]) == len(calls[1]), f"{name}: {len(calls[0])} calls for 16 images, {len(calls[1])} for 128"


@pytest.mark.parametrize("name", ["pad_crop", "flip", "random_resized_crop", "trivial_augment"])
def test_a_transform_called_without_its_maps_gives_the_pixels_and_masks_of_moved(name):
    """Classification batches call the transform (its affine maps left out); tasks whose targets
    move call ``moved``: from the same generator both give the same images and masks."""
    transform = build(name, **({"image_size": (16, 24)} if name == "random_resized_crop" else {}))
    images, masks = photo_batch(40), torch.randint(0, 3, (40, 20, 28))
    out, moved_masks = run(transform, images, masks)
    expected, expected_masks, maps = transform.moved(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(out, expected) and torch.equal(moved_masks, expected_masks) and maps.shape == (40, 3, 3)


def test_classification_batches_are_prepared_without_affine_maps_and_detection_batches_with_them(monkeypatch):
    """The maps only move coordinates; at 32 px they cost a fifth of a classification batch."""
    from cvcore.training.preparation import Preparation

    asked = []
    flip, shift = build("flip"), build("pad_crop")
    for transform in (flip, shift):
        maps = type(transform).maps
        monkeypatch.setattr(type(transform), "maps", lambda self, *args, maps=maps: asked.append(self) or maps(self, *args))
    for task, targets in (("classification", torch.zeros(8, dtype=torch.long)),
                          ("detection", torch.zeros(8, 1, 5))):
        info = cvcore.DataInfo(num_classes=2, class_names=["a", "b"], in_channels=3, image_size=(20, 28),
                               mean=(0.5,) * 3, std=(0.5,) * 3, task=task)
        Preparation(info, torch.device("cpu"), [flip, shift], torch.Generator())(
            torch.zeros(8, 3, 20, 28, dtype=torch.uint8), targets, train=True)
        assert asked == ([] if task == "classification" else [flip, shift]), task


@pytest.mark.parametrize("name, pixels", [(name, pixels) for name, pixels in builtin_transforms()
                                          if build(name, **SIZED.get(name, {})).geometric])
@pytest.mark.parametrize("path", ["cpu", "whole batch"])
def test_every_geometric_builtin_gives_the_same_pixels_from_a_channels_last_batch(name, pixels, path, monkeypatch):
    """The folder cache's batches are channels last in memory, and geometric transforms receive
    them so (the others get the standard layout): each gives them exactly the pixels it gives the
    same batch in the standard layout, on the CPU's path and on every other device's."""
    if path == "whole batch":
        monkeypatch.setattr(geometric, "resized_one_by_one", geometric.resized_together)
    transform = build(name, **SIZED.get(name, {}))
    images = photo_batch(24)
    images = (images * 255).round().to(torch.uint8) if pixels == torch.uint8 else images
    targets = torch.randint(0, 10, (24,), generator=torch.Generator().manual_seed(1))
    expected, expected_targets = run(transform, images, targets)
    out, out_targets = run(transform, images.contiguous(memory_format=torch.channels_last), targets)
    assert torch.equal(out, expected) and torch.equal(out_targets, expected_targets)


@pytest.mark.parametrize("name", ["flip", "random_resized_crop"])
def test_crops_and_flips_of_channels_last_bytes_stay_channels_last(name):
    """The layout torch crops, resizes and gathers bytes fastest in is kept to the normalisation."""
    images = torch.randint(0, 256, (8, 3, 30, 36), dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    out, _ = run(build(name, **SIZED.get(name, {})), images, torch.zeros(8, dtype=torch.long))
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


def test_take_images_gives_index_selects_values_in_the_batchs_layout():
    images = torch.randint(0, 256, (6, 3, 5, 7), dtype=torch.uint8)
    index = torch.tensor([4, 0, 4, 2])
    standard = cvcore.take_images(images, index)
    channels_last = cvcore.take_images(images.contiguous(memory_format=torch.channels_last), index)
    assert torch.equal(standard, images.index_select(0, index)) and standard.is_contiguous()
    assert torch.equal(channels_last, standard) and channels_last.is_contiguous(memory_format=torch.channels_last)


def test_random_resized_crop_on_the_cpu_answers_on_the_images_device_whatever_the_default_device():
    """A script that sets torch's default device (to a GPU, say) still gets CPU batches cropped on the CPU."""
    images = torch.randint(0, 256, (4, 3, 12, 14), dtype=torch.uint8)
    expected, _ = run(build("random_resized_crop", image_size=(8, 8)), images, torch.zeros(4, dtype=torch.long))
    with torch.device("meta"):
        out, _ = run(build("random_resized_crop", image_size=(8, 8)), images, torch.zeros(4, dtype=torch.long))
    assert out.device == images.device and torch.equal(out, expected)
