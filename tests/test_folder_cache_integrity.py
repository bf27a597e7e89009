"""The folder cache never serves wrong pixels: it notices every way a folder changes (an edit that
keeps the mtime, cp -p, class folders swapped as from an archive), checks its own data (flipped
bytes, zeros, another folder's cache, an edited shape), survives a full disk and dead writers, and
keeps caches of several sizes."""

import errno
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import cvcore
import cvcore.cache as folder_cache
from fixtures import write_image_folder


def load(root, **options):
    splits = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36, **options)
    folder_cache.finish_writing()
    return splits


def direct(root, **options):
    """Each image (its stored extent) and label decoded from the files now, without a cache."""
    options = {**options, "cache": "off"}
    splits = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36, **options)
    items = [splits.train[i] for i in range(len(splits.train))]
    return [image[:, :h, :w] for image, _, (h, w) in items], torch.tensor([int(label) for _, label, _ in items])


def assert_serves_the_files(root, **options):
    served = load(root, **options).train
    images, labels = direct(root, **options)
    kept = [image[:, :h, :w] for image, (h, w) in zip(served.images, served.extents)]
    assert len(kept) == len(images) and all(torch.equal(a, b) for a, b in zip(kept, images))
    assert torch.equal(served.targets, labels)


def same_stat_copy(source, target):
    """Replace ``target``'s content by ``source``'s, keeping ``target``'s size and times (cp -p style)."""
    status = target.stat()
    shutil.copyfile(source, target)
    os.utime(target, ns=(status.st_atime_ns, status.st_mtime_ns))


def write_same_size_folder(root):
    """Two classes whose images share names, byte sizes and modification times (as unpacked from an
    archive), but not pixels."""
    for label, value in (("ants", 30), ("bees", 220)):
        for index in range(4):
            for split in ("train", "val"):
                folder = root / split / label
                folder.mkdir(parents=True, exist_ok=True)
                pixels = np.full((40, 48, 3), value, dtype=np.uint8)
                pixels[index, :, :] = 255 - value
                Image.fromarray(pixels).save(folder / f"{index}.bmp")  # BMP: the size depends on the shape alone
                os.utime(folder / f"{index}.bmp", ns=(10**18, 10**18))
    return root


def test_class_folders_swapped_as_from_an_archive_are_decoded_again(tmp_path):
    root = write_same_size_folder(tmp_path / "data")
    load(root)
    train = root / "train"
    (train / "ants").rename(train / "swap")
    (train / "bees").rename(train / "ants")
    (train / "swap").rename(train / "bees")
    assert_serves_the_files(root)


def test_an_edit_that_keeps_size_and_mtime_is_decoded_again(tmp_path):
    root = write_same_size_folder(tmp_path / "data")
    load(root)
    same_stat_copy(root / "train" / "bees" / "0.bmp", root / "train" / "ants" / "0.bmp")
    assert_serves_the_files(root)


def test_files_replaced_by_cp_p_are_decoded_again(tmp_path):
    root = write_same_size_folder(tmp_path / "data")
    load(root)
    for index in range(4):
        target = root / "train" / "ants" / f"{index}.bmp"
        target.unlink()
        shutil.copy2(root / "train" / "bees" / f"{index}.bmp", target)  # cp -p
    assert_serves_the_files(root)


def cache_of(tmp_path, suffix):
    return sorted((tmp_path / "cvcore-cache" / "folders").glob(f"*{suffix}"))


@pytest.mark.parametrize("damage", ["flipped bytes", "zeros", "another folder", "edited shape"])
@pytest.mark.parametrize("keep", ["memory", "mmap"])
def test_a_damaged_cache_is_decoded_again(tmp_path, capsys, damage, keep):
    root = write_image_folder(tmp_path / "data", per_class=3)
    other = write_image_folder(tmp_path / "other", per_class=4, size=44)
    load(root, cache=keep)
    load(other, cache=keep)
    data = [p for p in cache_of(tmp_path, ".u8")]
    mine = [p for p in data if json.loads(p.with_suffix(".json").read_text())["shape"][0] == 6]
    theirs = [p for p in data if p not in mine]
    for path in mine:
        content = bytearray(path.read_bytes())
        if damage == "flipped bytes":
            content[len(content) // 2] ^= 0xFF
        elif damage == "zeros":
            content = bytearray(len(content))
        elif damage == "another folder":
            content = bytearray(theirs[0].read_bytes())
            shutil.copyfile(theirs[0].with_suffix(".json"), path.with_suffix(".json"))
        else:
            meta = json.loads(path.with_suffix(".json").read_text())
            meta["shape"] = [6, 18, 72, 3]
            path.with_suffix(".json").write_text(json.dumps(meta))
        path.write_bytes(bytes(content))
    capsys.readouterr()
    assert_serves_the_files(root, cache=keep)
    assert "note: decoding" in capsys.readouterr().err


def test_runs_with_different_sizes_keep_each_others_cache(tmp_path, capsys):
    root = write_image_folder(tmp_path / "data")
    load(root)
    cvcore.create("dataset", "imagefolder", root=root, image_size=28, resize=30)
    folder_cache.finish_writing()
    capsys.readouterr()
    load(root)  # the first size again: read, not decoded
    assert "note: decoding" not in capsys.readouterr().err
    assert len(cache_of(tmp_path, ".u8")) == 4


def test_the_size_budget_evicts_the_least_recently_used_cache(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "data")
    load(root)
    first = cache_of(tmp_path, ".u8")
    monkeypatch.setenv("CVCORE_CACHE_GB", str(sum(p.stat().st_size for p in first) / 1e9))
    cvcore.create("dataset", "imagefolder", root=root, image_size=28, resize=30)
    folder_cache.finish_writing()
    assert len(cache_of(tmp_path, ".u8")) < 4  # room for one size: older ones went


def test_a_full_disk_is_one_message_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    root = write_image_folder(tmp_path / "data")

    def full(descriptor, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(cvcore.DataError, match="No space left on device.*cache=off"):
        load(root, cache="mmap")
    assert cache_of(tmp_path, "") == []  # no hidden partial file keeps the disk full
    assert_serves_the_files(root, cache="memory")  # a cache that fits in memory trains on, unsaved
    assert "the image cache was not saved" in capsys.readouterr().err and cache_of(tmp_path, "") == []


def test_writes_into_the_images_never_reach_the_cache(tmp_path, capsys):
    """The run that decodes the cache trains on the cache file's pages: a transform that wrote into
    them in place must change its own copy, not what later runs read (nor damage the cache)."""
    root = write_image_folder(tmp_path / "data")
    made = load(root)
    made.train.images.fill_(7)
    capsys.readouterr()
    assert_serves_the_files(root)
    assert "note:" not in capsys.readouterr().err  # read from the cache, intact: not decoded again


def test_leftovers_of_dead_writers_are_removed(tmp_path):
    root = write_image_folder(tmp_path / "data")
    load(root)
    folder = tmp_path / "cvcore-cache" / "folders"
    dead = 2**22 + 12345  # above pid_max's default: no such process
    (folder / f".left-over.u8.{dead}.partial").write_bytes(b"x" * 1000)
    (folder / f".left-over.json.tmp-{dead}").write_text("{")
    orphan = folder / "left-over.u8"
    orphan.write_bytes(b"x" * 1000)
    os.utime(orphan, (1, 1))  # published long ago, its description never came
    load(root)
    assert sorted(p.name for p in folder.iterdir() if "left-over" in p.name) == []


def test_processes_of_one_torchrun_share_one_mapping_of_the_cache(tmp_path, monkeypatch):
    from test_folder_cache import file_mapped_at

    root = write_image_folder(tmp_path / "data")
    load(root)  # built by one process
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    splits = load(root)
    assert splits.train.mapped and file_mapped_at(splits.train.images.data_ptr()).endswith(".u8")


def test_a_data_set_larger_than_half_a_gpus_free_memory_stays_on_the_host(monkeypatch):
    from cvcore.training import tensor_data

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10 * 2**30, 80 * 2**30))
    assert tensor_data.fits_on(torch.device("cuda", 0), 4 * 2**30)
    assert not tensor_data.fits_on(torch.device("cuda", 0), 6 * 2**30)
    assert tensor_data.fits_on(torch.device("cpu"), 10**15)


def test_a_full_disk_when_describing_the_cache_leaves_no_orphan_data_file(tmp_path, monkeypatch, capsys):
    def full(path, data):
        raise cvcore.DataError(f"Could not write '{path}': No space left on device; nothing was written.")

    monkeypatch.setattr(folder_cache, "write_atomically", full)
    root = write_image_folder(tmp_path / "data")
    load(root)  # in memory: the save fails in the background, with a warning
    assert "the image cache was not saved" in capsys.readouterr().err
    assert cache_of(tmp_path, "") == []
