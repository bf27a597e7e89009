"""Folders of images served from a decoded uint8 cache: the pixels of the per-image pipeline,
decoded once and reused while the folder is unchanged, in memory or memory-mapped."""

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torchvision import transforms as T
from torchvision.datasets import ImageFolder

import cvcore
import cvcore.cache as folder_cache
from cvcore.commands.cli import cli
from cvcore.training.preparation import Preparation
from fixtures import augmented, write_image_folder

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def prepared(split, info):
    """The whole split as validation batches reach the model."""
    images, _, _ = Preparation(info, torch.device("cpu"))(split.images, split.targets, split.extents, train=False)
    return images


def cache_files(root):
    folder_cache.finish_writing()  # caches that fit in memory are saved by a background thread
    return sorted(p.name for p in (root / "cvcore-cache" / "folders").iterdir())


def test_validation_pixels_are_those_of_torchvision_resize_and_center_crop_to_one_level(tmp_path):
    root = write_image_folder(tmp_path / "data", size=40)  # 40 x 48 JPEGs and PNGs
    splits = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    tutorial = T.Compose([T.Resize(36), T.CenterCrop(32), T.ToTensor(), T.Normalize(*IMAGENET)])
    reference = ImageFolder(str(root / "val"), tutorial)
    expected = torch.stack([reference[i][0] for i in range(len(reference))])
    difference = (prepared(splits.val, splits.info) - expected).abs() * torch.tensor(IMAGENET[1]).view(1, 3, 1, 1)
    assert difference.max() < 1 / 255 + 1e-6 and (difference > 1e-6).float().mean() < 0.05  # torch vs PIL rounding
    assert splits.val.targets.tolist() == reference.targets


def file_mapped_at(address: int) -> str:
    """The file mapped into this process at ``address`` (Linux), or ''."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, *rest = line.split()
            low, high = (int(x, 16) for x in span.split("-"))
            if low <= address < high:
                return rest[-1] if len(rest) == 5 else ""
    return ""


def test_the_cache_is_decoded_once_and_reused_while_the_folder_is_unchanged(tmp_path, monkeypatch, capsys):
    root = write_image_folder(tmp_path / "data")
    first = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    assert capsys.readouterr().err.count("note: decoding") == 2  # train and val
    before = cache_files(tmp_path)
    assert len(before) == 4  # data and description, per split

    def no_decoding(*args):
        raise AssertionError("decoded again")

    write = folder_cache._write
    monkeypatch.setattr(folder_cache, "_write", no_decoding)
    again = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    assert torch.equal(first.train.images, again.train.images) and capsys.readouterr().err == ""
    monkeypatch.setattr(folder_cache, "_write", write)

    changed = root / "train" / "ants" / "0.jpg"
    Image.fromarray(np.full((40, 48, 3), 200, dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(10**18, 10**18))  # another modification time, whatever the clock
    third = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    assert capsys.readouterr().err.count("note: decoding") == 1  # only train/ changed
    assert not torch.equal(first.train.images, third.train.images)
    assert torch.equal(first.val.images, third.val.images)
    after = cache_files(tmp_path)
    assert len(after) == 4 and len(set(after) - set(before)) == 2  # the older train cache is gone


def test_a_folder_reached_by_another_path_shares_its_cache_and_a_linked_image_is_followed(
        tmp_path, monkeypatch, capsys):
    """The cache is named by resolved paths (each folder resolved once, a file only when it is a
    link), so a relative path or one through a linked folder finds the same cache, and a link's
    target changing is a change."""
    root = write_image_folder(tmp_path / "data")
    first = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    (tmp_path / "linked").symlink_to(root, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "linked" / "train")
    capsys.readouterr()
    for same in (Path("../../data"), tmp_path / "linked", Path("..")):
        again = cvcore.create("dataset", "imagefolder", root=same, image_size=32, resize=36)
        assert capsys.readouterr().err == "" and torch.equal(again.train.images, first.train.images)
    outside = tmp_path / "outside.jpg"
    Image.fromarray(np.zeros((40, 48, 3), dtype=np.uint8)).save(outside)
    (root / "train" / "ants" / "9.jpg").symlink_to(outside)
    decodes = []
    for _ in range(3):
        cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
        decodes.append(capsys.readouterr().err.count("note: decoding"))
        Image.fromarray(np.full((40, 48, 3), len(decodes) * 60, dtype=np.uint8)).save(outside)
    assert decodes == [1, 1, 1]  # added, then its target rewritten twice: train decoded each time


@pytest.mark.parametrize("damage", ["description", "data"])
def test_a_cache_cut_short_or_damaged_is_decoded_again(tmp_path, capsys, damage):
    root = write_image_folder(tmp_path / "data")
    first = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    folder_cache.finish_writing()
    # The run that made it maps the cache's file: cutting that file short would stop it (SIGBUS).
    decoded = first.train.images.clone()
    folder = tmp_path / "cvcore-cache" / "folders"
    for path in folder.glob("*.json" if damage == "description" else "*.u8"):
        if damage == "description":
            path.unlink()  # a crash before the description is written
        else:
            path.write_bytes(path.read_bytes()[:100])  # a truncated data file
    capsys.readouterr()
    again = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    assert capsys.readouterr().err.count("note: decoding") == 2
    assert torch.equal(decoded, again.train.images)


def test_cache_off_serves_the_same_pixels_decoded_every_time(tmp_path):
    root = write_image_folder(tmp_path / "data")
    cached = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    direct = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36, cache="off")
    assert not isinstance(direct.train, cvcore.TensorImages)
    for i in range(len(direct.train)):
        image, label, (height, width) = direct.train[i]
        assert torch.equal(image[:, :height, :width], cached.train.images[i, :, :height, :width])
        assert (height, width) == tuple(cached.train.extents[i]) and int(label) == cached.train.targets[i]
        assert (image[:, height:] == 0).all() and (image[:, :, width:] == 0).all()
    assert not (tmp_path / "cvcore-cache").exists() or len(cache_files(tmp_path)) == 4


@pytest.mark.parametrize("keep", ["memory", "mmap"])
def test_the_cache_holds_each_image_as_cv_predict_reads_it_channels_last(tmp_path, keep):
    """Stored (N, H, W, C), served as (N, C, H, W) of that memory: the pixels of cvcore's reader."""
    from cvcore.images import read_stored

    root = write_image_folder(tmp_path / "data")
    train = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36, cache=keep).train
    assert train.images.is_contiguous(memory_format=torch.channels_last) and not train.images.is_contiguous()
    files = sorted((root / "train").rglob("*.*"))
    for i, path in enumerate(files):
        stored, _ = read_stored(path, 3, 36)
        assert torch.equal(train.images[i, :, :stored.shape[1], :stored.shape[2]], stored), path


def test_a_cache_of_an_earlier_format_is_not_read(tmp_path, monkeypatch, capsys):
    """Format 3 stored (N, C, H, W): read as today's (N, H, W, C) it would scramble every image."""
    root = write_image_folder(tmp_path / "data")
    monkeypatch.setattr(folder_cache, "FORMAT", folder_cache.FORMAT - 1)
    cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    monkeypatch.undo()
    capsys.readouterr()
    again = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    assert capsys.readouterr().err.count("note: decoding") == 2
    assert again.train.images.is_contiguous(memory_format=torch.channels_last)


def test_a_cache_larger_than_memory_is_memory_mapped_and_trains(in_tmp, monkeypatch):
    write_image_folder(in_tmp / "data")
    monkeypatch.setattr(folder_cache, "_available_memory", lambda: 1000)  # 2 x 6 x 3 x 36 x 36 bytes do not fit
    splits = cvcore.create("dataset", "imagefolder", root=in_tmp / "data", image_size=32, resize=36)
    assert splits.train.mapped and file_mapped_at(splits.train.images.data_ptr()).endswith(".u8")
    in_memory = cvcore.create("dataset", "imagefolder", root=in_tmp / "data", image_size=32, resize=36, cache="memory")
    assert not in_memory.train.mapped and torch.equal(in_memory.train.images, splits.train.images)
    result = CliRunner().invoke(cli, ["train", "--dataset", "imagefolder", "--data-dir", "data", "--model", "lenet",
                                      "--set", "dataset.image_size=32", "--set", "dataset.resize=36",
                                      "--epochs", "1", "--batch-size", "4", "--run-dir", "r"])
    assert result.exit_code == 0, result.output


def test_an_unreadable_image_is_named_when_the_cache_is_built(tmp_path):
    root = write_image_folder(tmp_path / "data")
    (root / "train" / "bees" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(cvcore.DataError, match="broken.jpg' cannot be read.*skip_unreadable=true"):
        cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    splits = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36, skip_unreadable=True)
    assert len(splits.train) == 6
    folder_cache.finish_writing()  # the second build's file is saved in the background
    assert not list((tmp_path / "cvcore-cache" / "folders").glob(".*partial"))


def test_resize_below_the_image_size_is_refused(tmp_path):
    with pytest.raises(cvcore.DataError, match=r"resize \(28\) must be at least image_size \(32\)"):
        cvcore.create("dataset", "imagefolder", root=write_image_folder(tmp_path), image_size=32, resize=28)


def test_default_transforms_crop_from_the_cached_margin(tmp_path):
    splits = cvcore.create("dataset", "imagefolder", root=write_image_folder(tmp_path, size=40), image_size=32, resize=40)
    assert splits.transforms == ("transforms:random_resized_crop", "transforms:flip")
    images, targets = augmented(splits.train, splits.transforms, info=splits.info)
    assert images.shape == (6, 3, 32, 32) and torch.equal(targets, splits.train.targets)
    plain = cvcore.create("dataset", "imagefolder", root=tmp_path, image_size=32, resize=40, augment=False)
    assert plain.transforms == ()


def test_segfolder_caches_masks_as_class_ids(tmp_path):
    from test_segmentation import write_segfolder

    root = write_segfolder(tmp_path / "seg", count=8, size=24)
    splits = cvcore.create("dataset", "segfolder", root=root, image_size=16)
    assert splits.train.images.shape[1:] == (3, 16, 16) and splits.train.targets.dtype == torch.uint8
    assert set(splits.train.targets.unique().tolist()) <= {0, 1, 2}
    off = cvcore.create("dataset", "segfolder", root=root, image_size=16, cache="off")
    image, mask, (height, width) = off.train[0]
    assert torch.equal(image[:, :height, :width], splits.train.images[0, :, :height, :width])
    assert torch.equal(mask[:height, :width], splits.train.targets[0, :height, :width])
    assert (mask[height:] == 255).all() and (mask[:, width:] == 255).all()  # beyond the image: ignored
    _, masks = augmented(splits.train, [], info=splits.info)
    assert masks.dtype == torch.long  # class ids for the loss


def test_an_unwritable_cache_folder_says_how_to_go_on(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "data")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("CVCORE_CACHE_DIR", str(tmp_path / "a-file" / "cache"))  # fails even for root
    with pytest.raises(cvcore.DataError, match="cannot be written in .*CVCORE_CACHE_DIR.*cache=off"):
        cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    assert len(cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36, cache="off").train) == 6


def test_an_unreadable_mask_is_named(tmp_path):
    from test_segmentation import write_segfolder

    root = write_segfolder(tmp_path / "seg", count=6, size=24)
    (root / "masks" / "2.png").write_bytes(b"not a png")
    with pytest.raises(cvcore.DataError, match="Mask '.*2.png' cannot be read"):
        cvcore.create("dataset", "segfolder", root=root, image_size=16, num_classes=3)


def test_a_cache_that_cannot_be_saved_is_warned_about_and_training_goes_on(tmp_path, monkeypatch, capsys):
    root = write_image_folder(tmp_path / "data")

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(folder_cache, "_publish", full_disk)
    splits = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    folder_cache.finish_writing()
    assert "warning: the image cache was not saved" in capsys.readouterr().err
    assert len(splits.train) == 6 and not list((tmp_path / "cvcore-cache" / "folders").iterdir())


def test_headers_on_a_slow_disk_are_read_in_threads_in_order(tmp_path, monkeypatch):
    sizes = [(20 + i % 7, 30 + i % 5) for i in range(200)]  # past the first probe
    for i, (height, width) in enumerate(sizes):
        Image.new("RGB", (width, height)).save(tmp_path / f"{i}.png")
    files = [tmp_path / f"{i}.png" for i in range(len(sizes))]
    threads = []

    def slow(path):  # as a network disk answers
        time.sleep(0.001)
        threads.append(threading.current_thread())
        return original(path)

    original = folder_cache.upright_size
    monkeypatch.setattr(folder_cache, "upright_size", slow)
    assert folder_cache._upright_sizes(files) == sizes
    assert threads[0] is threading.main_thread() and threads[-1] is not threading.main_thread()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="elsewhere the mapping is flushed before fsync")
def test_a_cache_is_made_durable_without_holding_the_gil_while_the_disk_writes(tmp_path, monkeypatch):
    """numpy's flush (msync) holds the GIL until the disk has the pages, stalling training for as
    long while a cache is saved beside it; on Linux fsync writes a shared mapping's pages as msync
    does, and releases the GIL."""
    root = write_image_folder(tmp_path / "data")
    synced = []

    def stalls_training(self):
        raise AssertionError("msync holds the GIL")

    fsync = os.fsync
    monkeypatch.setattr(np.memmap, "flush", stalls_training)
    monkeypatch.setattr(os, "fsync", lambda descriptor: synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
                        or fsync(descriptor))
    first = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    assert len(cache_files(tmp_path)) == 4  # both splits saved, each with its description
    assert sum(path.endswith(".partial") for path in synced) == 2  # each data file fsynced before its rename
    monkeypatch.setattr(folder_cache, "_write", stalls_training)  # read from the cache, not decoded again
    assert torch.equal(cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36).train.images,
                       first.train.images)
