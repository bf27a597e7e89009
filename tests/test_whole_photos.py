"""The folder cache keeps whole photos: random crops draw from all of each one (as torchvision's
RandomResizedCrop does on the file), validation takes each one's centre (Resize + CenterCrop),
and detection boxes scale with the stored image, for landscape and portrait photos in one split."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

import cvcore
import cvcore.cache
from cvcore.training.preparation import Preparation
from test_detection import write_coco

SIZES = [(64, 48), (48, 64), (70, 48), (48, 48)]  # (width, height): landscape, portrait, 3:2-ish, square


def write_photos(root):
    """root/{train,val}/{a,b}/: photos of every shape in SIZES, random pixels (JPEG and PNG)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for index, (width, height) in enumerate(SIZES):
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{index}.{'png' if index % 2 else 'jpg'}",
                                             quality=95)
    return root


def torchvision_resized(path, resize):
    """The photo through torchvision's Resize(resize), as uint8 (C, H, W)."""
    return TF.resize(TF.pil_to_tensor(Image.open(path).convert("RGB")), resize, antialias=True)


def batch_of(split):
    (batch,) = split.on_device(torch.device("cpu")).batches(len(split), shuffle=False)
    return batch


@pytest.fixture
def photo_folder(tmp_path):
    root = write_photos(tmp_path / "data")
    data = cvcore.create("dataset", "imagefolder", root=root, image_size=24, resize=36)
    files = sorted(root.glob("train/*/*")), sorted(root.glob("val/*/*"))
    return data, files


def test_the_cache_holds_each_photo_whole(photo_folder):
    data, (train_files, _) = photo_folder
    assert data.train.extents.tolist() == [[36, 48], [48, 36], [36, 52], [36, 36]] * 2
    for image, (height, width), path in zip(data.train.images, data.train.extents, train_files):
        expected = torchvision_resized(path, 36)
        assert (image[:, :height, :width].int() - expected.int()).abs().max() <= 1
        assert (image[:, height:] == 0).all() and (image[:, :, width:] == 0).all()


@pytest.mark.parametrize("together", [False, True], ids=["crop by crop (CPU)", "all crops together (other devices)"])
def test_a_full_random_resized_crop_is_the_whole_photo_as_torchvisions(photo_folder, together, monkeypatch):
    """scale 1: each crop is (nearly) the whole photo, its pixels those of torchvision's
    resized_crop of the same box of torchvision's Resize of the file, on both resizing paths. From
    the old centre-square cache no crop could be wider than the square."""
    if together:
        from cvcore_transforms import geometric

        monkeypatch.setattr(geometric, "resized_one_by_one", geometric.resized_together)
    data, (train_files, _) = photo_folder
    crop = cvcore.create_transforms([("random_resized_crop", {"scale": [1.0, 1.0]})], data.info)
    batch = batch_of(data.train)
    boxes = torch.stack(crop[0].draw(batch[2], torch.Generator().manual_seed(0)), 1).int().tolist()
    images, _, _ = Preparation(data.info, torch.device("cpu"), crop, torch.Generator().manual_seed(0))(
        *batch, train=True)
    mean, std = torch.tensor(data.info.mean).view(3, 1, 1), torch.tensor(data.info.std).view(3, 1, 1)
    for image, path, box in zip(images, train_files, boxes):
        resized = torchvision_resized(path, 36)
        assert box[2] * box[3] >= 0.95 * min(resized.shape[-2:]) * min(max(resized.shape[-2:]), 48)
        theirs = TF.resized_crop(resized, *box, [24, 24], antialias=True)
        assert ((image * std + mean) * 255 - theirs.float()).abs().max() <= 1.01


def test_random_crops_draw_within_each_photo_only(photo_folder):
    """Crops of every share of the area: each is drawn inside its own photo (never the canvas's
    padding), and together they reach the photo's sides, beyond its centre square."""
    data, _ = photo_folder
    crop = cvcore.create("transform", "random_resized_crop", image_size=(24, 24))
    images, _, extents = batch_of(data.train)
    many = 400
    extents = extents.repeat(many // len(extents), 1)
    drawn = torch.stack(crop.draw(extents, torch.Generator().manual_seed(0)), 1)
    top, left, height, width = drawn.unbind(1)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= extents[:, 0]).all() and (left + width <= extents[:, 1]).all()
    landscape = extents[:, 1] == 48
    assert (left[landscape] + width[landscape] > 42).any() and (left[landscape] < 6).any()


def test_validation_takes_each_photos_centre_as_resize_and_center_crop(photo_folder):
    data, (_, val_files) = photo_folder
    images, _, _ = Preparation(data.info, torch.device("cpu"))(*batch_of(data.val), train=False)
    mean, std = torch.tensor(data.info.mean).view(3, 1, 1), torch.tensor(data.info.std).view(3, 1, 1)
    for image, path in zip(images, val_files):
        theirs = TF.center_crop(torchvision_resized(path, 36), [24, 24])
        assert ((image * std + mean) * 255 - theirs.float()).abs().max() <= 1.01


def test_transforms_that_do_not_read_extents_get_each_photos_centre_square(photo_folder):
    """pad_crop and flip know nothing of extents: they receive each photo's centre square (of the
    shorter side), as from the old cache, so a run that names them trains as before."""
    data, _ = photo_folder
    still = cvcore.create_transforms([("flip", {"p": 0.0})], data.info)
    batch = batch_of(data.train)
    trained, _, _ = Preparation(data.info, torch.device("cpu"), still, torch.Generator())(*batch, train=True)
    validated, _, _ = Preparation(data.info, torch.device("cpu"))(*batch, train=False)
    assert torch.allclose(trained, validated)


def test_cache_off_batches_carry_extents_and_train(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cvcore.commands.cli import cli

    monkeypatch.chdir(tmp_path)
    root = write_photos(tmp_path / "data")
    off = cvcore.create("dataset", "imagefolder", root=root, image_size=24, resize=36, cache="off")
    image, _, extent = off.train[1]
    assert extent.tolist() == [48, 36] and image.shape[-2:] == (54, 54)  # a canvas for any stored shape
    result = CliRunner().invoke(cli, ["train", "--dataset", "imagefolder", "--data-dir", str(root), "--model", "lenet",
                                      "--set", "dataset.image_size=24", "--set", "dataset.resize=36", "--set",
                                      "dataset.cache=off", "--epochs", "1", "--batch-size", "4", "--run-dir", "r"])
    assert result.exit_code == 0, result.output


def test_detection_boxes_scale_with_the_stored_photo(tmp_path, capsys):
    """A 96x72 photo stored at 48: its boxes are the file's times 2/3, whole, wherever they lie (the
    old centre square cut those at the sides); the second build reads the cache."""
    import json

    root = write_coco(tmp_path / "coco")
    data = cvcore.create("dataset", "coco", root=root, image_size=48)
    document = json.loads((root / "annotations" / "instances_train.json").read_text())
    for index, entry in enumerate(document["images"]):
        width, height = entry["width"], entry["height"]
        files = [a["bbox"] for a in document["annotations"] if a["image_id"] == entry["id"] and not a["iscrowd"]]
        expected = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in files]) * (48 / min(width, height))
        rows = data.train.targets[index]
        kept = rows[rows[:, 4] >= 0, :4]
        assert kept.shape == expected.shape and torch.allclose(kept, expected, atol=1e-4)
        assert data.train.extents[index].tolist() == [height * 48 // min(width, height), width * 48 // min(width, height)]
    cvcore.cache.finish_writing()
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:  # where each photo lies comes with the cache: no header is read
        patch.setattr(cvcore.cache, "upright_size", lambda path: pytest.fail(f"read the header of {path}"))
        again = cvcore.create("dataset", "coco", root=root, image_size=48)
    assert "decoding" not in capsys.readouterr().err and torch.equal(again.train.targets, data.train.targets)
    off = cvcore.create("dataset", "coco", root=root, image_size=48, cache="off")
    assert torch.equal(off.train.targets, data.train.targets)


def test_stored_sizes_are_torchvisions_resize_with_the_longer_side_capped():
    """cvcore.images.stored_extents (vectorised, read for every image of a cache) against the size
    torchvision's Resize gives, on random photo sizes, portrait and landscape."""
    from cvcore.images import STORED_ASPECT, stored_extents

    rng = np.random.default_rng(0)
    sizes = [tuple(int(v) for v in rng.integers(8, 700, 2)) for _ in range(300)] + [(375, 500), (500, 333), (10, 10)]
    for resize in (24, 256):
        extents = stored_extents(sizes, resize).tolist()
        for (height, width), stored in zip(sizes, extents):
            resized = TF.resize(torch.zeros(1, height, width), resize, antialias=False).shape[-2:]
            cap = int(resize * STORED_ASPECT)
            assert stored == [min(resized[0], cap), min(resized[1], cap)], (height, width, resize)


def test_detection_boxes_follow_random_crops_of_whole_photos(tmp_path):
    """coco's default transforms (random_resized_crop of at least half of each whole photo, flip):
    every box kept after them lies on its coloured rectangle."""
    root = write_coco(tmp_path / "coco")
    data = cvcore.create("dataset", "coco", root=root, image_size=48)
    transforms = cvcore.create_transforms(data.transforms, data.info)
    mean, std = torch.tensor(data.info.mean).view(3, 1, 1), torch.tensor(data.info.std).view(3, 1, 1)
    checked = 0
    for seed in range(4):
        prepare = Preparation(data.info, torch.device("cpu"), transforms, torch.Generator().manual_seed(seed))
        images, targets, _ = prepare(*batch_of(data.train), train=True)
        for image, rows in zip((images * std + mean) * 255, targets):
            for x0, y0, x1, y1, label in rows[rows[:, 4] >= 0].tolist():
                if x1 - x0 < 6 or y1 - y0 < 6:  # a sliver at the crop's edge
                    continue
                inside = image[:, int(y0) + 2:int(y1) - 2, int(x0) + 2:int(x1) - 2]
                channel = 0 if label == 1 else 1  # red or green
                assert inside[channel].mean() > 150 and inside[2].mean() < 100, (seed, x0, y0, x1, y1)
                checked += 1
    assert checked > 40


def test_bicubic_photos_are_torchvisions_bicubic_resize_and_predict_reads_them_alike(tmp_path):
    """interpolation=bicubic (timm's weights mostly name it): the cache holds torchvision's bicubic
    Resize of each photo, apart from the bilinear cache of the same folder, and `cv predict`
    resizes alike: its input is validation's, byte for byte."""
    from torchvision.transforms import InterpolationMode

    from cvcore.commands.inference import preprocess

    root = write_photos(tmp_path / "data")
    data = cvcore.create("dataset", "imagefolder", root=root, image_size=24, resize=36, interpolation="bicubic")
    bilinear = cvcore.create("dataset", "imagefolder", root=root, image_size=24, resize=36)
    assert data.info.interpolation == "bicubic" and not torch.equal(data.train.images, bilinear.train.images)
    for image, (height, width), path in zip(data.train.images, data.train.extents, sorted(root.glob("train/*/*"))):
        expected = TF.resize(TF.pil_to_tensor(Image.open(path).convert("RGB")), 36,
                             interpolation=InterpolationMode.BICUBIC, antialias=True)
        assert (image[:, :height, :width].int() - expected.int()).abs().max() <= 1
    validation, _, _ = Preparation(data.info, torch.device("cpu"))(*batch_of(data.val), train=False)
    info = {"image_size": [24, 24], "eval_resize": 36, "interpolation": "bicubic", "in_channels": 3,
            "mean": list(data.info.mean), "std": list(data.info.std)}
    predicted, _ = preprocess(sorted(root.glob("val/*/*")), info)
    assert torch.allclose(predicted, validation, atol=1e-5)
