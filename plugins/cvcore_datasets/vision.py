"""torchvision's file-backed data sets with the tutorials' transforms and clear missing-file errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import attrs

import torch
import torchvision
from torchvision import transforms as T

from cvcore import DataError, DataInfo, DataSplits, TensorImages, UnreadableImageError
from cvcore_datasets import CROP_AND_FLIP, FLIP_AND_SHIFT

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# The CIFAR tutorials' augmentation; flipping first keeps the order of random draws, and so the
# results, of the releases whose data sets augmented by themselves.
_MNISTS = {
    "mnist": (torchvision.datasets.MNIST, "MNIST", (0.1307,), (0.3081,)),
    "fashion_mnist": (torchvision.datasets.FashionMNIST, "FashionMNIST", (0.2860,), (0.3530,)),
}


def _open(build, expected: str, download: bool):
    """Call a torchvision constructor, turning its 'not found' into a DataError naming the files."""
    try:
        return build()
    except RuntimeError as exc:
        hint = "" if download else " Pass download=true (--set dataset.download=true) to fetch them."
        raise DataError(f"Data files not found or corrupted: expected {expected}.{hint}") from exc
    except OSError as exc:  # a failed download: no network, refused, interrupted
        raise DataError(f"Downloading failed ({exc}). Place the files by hand: {expected}.") from exc


def in_memory(dataset) -> TensorImages:
    """A torchvision data set's decoded arrays as one uint8 tensor (N, C, H, W), no per-item PIL."""
    images = torch.as_tensor(dataset.data)
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    return TensorImages(images.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.long))


def load_cifar10(root: Path, download: bool, augment: bool, pipeline: str) -> DataSplits:
    expected = f"{Path(root) / 'cifar-10-batches-py'}/data_batch_1..5, test_batch and batches.meta"
    if pipeline == "tensor":
        train = _open(lambda: torchvision.datasets.CIFAR10(root, True, download=download), expected, download)
        val = _open(lambda: torchvision.datasets.CIFAR10(root, False), expected, download)
        train_set, val_set = in_memory(train), in_memory(val)
        transforms = FLIP_AND_SHIFT if augment else ()
    else:
        normalize = [T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
        train_tf = T.Compose(([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []) + normalize)
        train = train_set = _open(lambda: torchvision.datasets.CIFAR10(root, True, train_tf, download=download),
                                  expected, download)
        val_set = _open(lambda: torchvision.datasets.CIFAR10(root, False, T.Compose(normalize)), expected, download)
        transforms = ()  # augmented per image above, as the tutorials do
    info = DataInfo(num_classes=10, class_names=train.classes, in_channels=3, image_size=(32, 32),
                    mean=CIFAR10_MEAN, std=CIFAR10_STD)
    return DataSplits(train_set, val_set, info, transforms=transforms)


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def unpack_idx_gz(raw: Path) -> None:
    """Decompress the official .gz files placed by hand beside where torchvision looks for the
    plain ones (it unpacks only what it downloads itself)."""
    import gzip
    import shutil

    for name in _IDX_FILES:
        packed, plain = raw / f"{name}.gz", raw / name
        if plain.is_file() or not packed.is_file():
            continue
        partial = plain.with_name(f".{name}.partial")
        try:
            with gzip.open(packed, "rb") as source, open(partial, "wb") as target:
                shutil.copyfileobj(source, target)
        except (OSError, EOFError) as exc:
            partial.unlink(missing_ok=True)
            raise DataError(f"'{packed}' cannot be decompressed ({exc}); download it again.") from None
        partial.replace(plain)


def load_mnist(name: str, root: Path, download: bool, pipeline: str) -> DataSplits:
    cls, folder, mean, std = _MNISTS[name]
    raw = Path(root) / folder / "raw"
    expected = f"{raw}/{', '.join(_IDX_FILES)} (or the same with .gz)"
    unpack_idx_gz(raw)
    transform = None if pipeline == "tensor" else T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    train = _open(lambda: cls(root, True, transform, download=download), expected, download)
    val = _open(lambda: cls(root, False, transform), expected, download)
    if pipeline == "tensor":
        train_set, val_set = in_memory(train), in_memory(val)
    else:
        train_set, val_set = train, val
    info = DataInfo(num_classes=10, class_names=train.classes, in_channels=1, image_size=(28, 28),
                    mean=mean, std=std)
    return DataSplits(train_set, val_set, info)


@attrs.frozen
class ClassFolders:
    """An image folder's listing, as torchvision's ImageFolder orders it: class folder names
    (sorted), and (path, class index) for every image file."""

    classes: list[str]
    samples: list[tuple[str, int]]

    @property
    def targets(self) -> list[int]:
        return [index for _, index in self.samples]


def files_under(top: Path) -> list[Path]:
    """Every file below ``top``, following links to folders but entering each real folder once (a
    link loop would list the same files again and again), sorted as os.walk's sorted listing."""
    seen, found = set(), []
    for root, folders, files in os.walk(top, followlinks=True):
        status = os.stat(root)
        if (status.st_dev, status.st_ino) in seen:
            folders[:] = []
            continue
        seen.add((status.st_dev, status.st_ino))
        found += [(root, name) for name in files]
    found.sort()  # as strings: half the time of sorting paths (ImageNet's 1.28M files: 4 s of every start)
    return [Path(root, name) for root, name in found]


def image_files_in(folder: Path, files: list[Path]) -> list[Path]:
    """The image files among ``files``; the others (HEIC photos, notes) are counted in a warning."""
    from collections import Counter

    from cvcore.images import IMAGE_SUFFIXES

    images = [path for path in files if path.suffix.lower() in IMAGE_SUFFIXES]
    others = Counter(path.suffix.lower() or path.name for path in files
                     if path.suffix.lower() not in IMAGE_SUFFIXES and not path.name.startswith("."))
    if others:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in others.most_common(5))
        print(f"warning: left out {sum(others.values())} file(s) in '{folder}' that are not images cvcore reads "
              f"({kinds}); readable: {' '.join(IMAGE_SUFFIXES)}. Convert them to include them.", file=sys.stderr)
    return images


def readable(path: Path) -> bool:
    """Whether an image file decodes (JPEGs at reduced size, for speed)."""
    from cvcore.images import read_image

    try:
        read_image(path, 3, 64)
        return True
    except DataError:
        return False


def _image_folder(folder: Path, skip_unreadable: bool) -> ClassFolders:
    """The class folders of ``folder`` and their image files; with ``skip_unreadable``, files
    that do not decode (damaged, decompression bombs) are left out and counted in a warning."""
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not classes:
        raise DataError(f"'{folder}' holds no class folders: put the images of each class in a folder of its own.")
    samples, skipped = [], []
    for index, name in enumerate(classes):
        for path in image_files_in(folder / name, files_under(folder / name)):
            if skip_unreadable and not readable(path):
                skipped.append(path)
            else:
                samples.append((str(path), index))
    if skipped:
        print(f"warning: left out {len(skipped)} unreadable image(s) in '{folder}', e.g. '{skipped[0]}'",
              file=sys.stderr)
    return ClassFolders(classes, samples)


def load_imagefolder(root: Path, image_size: int, resize: int, augment: bool, skip_unreadable: bool,
                     cache: str, interpolation: str) -> DataSplits:
    from cvcore.cache import image_split

    root = Path(root)
    missing = [split for split in ("train", "val") if not (root / split).is_dir()]
    if missing:
        raise DataError(f"ImageFolder root '{root}' needs sub-folders train/ and val/ with one folder "
                        f"of images per class; missing: {', '.join(f'{split}/' for split in missing)}.")
    if resize < image_size:
        raise DataError(f"resize ({resize}) must be at least image_size ({image_size}): images are stored at "
                        f"resize and cropped to image_size.")
    train, val = (_image_folder(root / split, skip_unreadable) for split in ("train", "val"))
    if train.classes != val.classes:
        raise DataError(f"train/ and val/ of '{root}' have different classes: {train.classes} vs {val.classes}.")
    if len(train.classes) < 2:
        raise DataError(f"ImageFolder '{root}' has {len(train.classes)} class folder(s) ({', '.join(train.classes)}): "
                        f"classification needs at least two, one folder of images per class in train/ and val/ "
                        f"(with one class every prediction is right).")
    try:
        splits = [image_split([path for path, _ in listing.samples], torch.tensor(listing.targets), resize,
                              split=split, cache=cache, interpolation=interpolation)
                  for split, listing in (("train", train), ("val", val))]
    except UnreadableImageError as exc:
        raise DataError(f"{exc} Remove it, or set the data set option skip_unreadable=true "
                        f"(--set dataset.skip_unreadable=true) to leave such files out.") from None
    info = DataInfo(num_classes=len(train.classes), class_names=train.classes, in_channels=3,
                    image_size=(image_size, image_size), mean=IMAGENET_MEAN, std=IMAGENET_STD, eval_resize=resize,
                    interpolation=interpolation)
    return DataSplits(*splits, info, transforms=CROP_AND_FLIP if augment else ())
