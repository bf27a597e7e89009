"""torchvision's file-backed data sets with the tutorials' transforms and clear missing-file errors."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torchvision
from torchvision import transforms as T

from cvcore import DataError, DataInfo, DataSplits, TensorImages

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
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


def in_memory(dataset, mean, std, **augment) -> TensorImages:
    """A torchvision data set's decoded arrays as one uint8 tensor (N, C, H, W), no per-item PIL."""
    images = torch.as_tensor(dataset.data)
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    return TensorImages(images.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.long), mean, std, **augment)


def load_cifar10(root: Path, download: bool, augment: bool, pipeline: str) -> DataSplits:
    expected = f"{Path(root) / 'cifar-10-batches-py'}/data_batch_1..5, test_batch and batches.meta"
    if pipeline == "tensor":
        train = _open(lambda: torchvision.datasets.CIFAR10(root, True, download=download), expected, download)
        val = _open(lambda: torchvision.datasets.CIFAR10(root, False), expected, download)
        shifts = {"crop_padding": 4, "flip": True} if augment else {}
        train_set, val_set = in_memory(train, CIFAR10_MEAN, CIFAR10_STD, **shifts), in_memory(val, CIFAR10_MEAN, CIFAR10_STD)
    else:
        normalize = [T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
        train_tf = T.Compose(([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []) + normalize)
        train = train_set = _open(lambda: torchvision.datasets.CIFAR10(root, True, train_tf, download=download),
                                  expected, download)
        val_set = _open(lambda: torchvision.datasets.CIFAR10(root, False, T.Compose(normalize)), expected, download)
    info = DataInfo(num_classes=10, class_names=train.classes, in_channels=3, image_size=(32, 32),
                    mean=CIFAR10_MEAN, std=CIFAR10_STD)
    return DataSplits(train_set, val_set, info)


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
        train_set, val_set = in_memory(train, mean, std), in_memory(val, mean, std)
    else:
        train_set, val_set = train, val
    info = DataInfo(num_classes=10, class_names=train.classes, in_channels=1, image_size=(28, 28),
                    mean=mean, std=std)
    return DataSplits(train_set, val_set, info)


def read_image(path: str):
    """An RGB PIL image; an unreadable file is a DataError naming it and the way around it."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return picture.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"Image '{path}' cannot be read ({exc}). Remove it, or set the data set option "
                        f"skip_unreadable=true (--set dataset.skip_unreadable=true) to leave such files out.") from None


class ReadableImages:
    """``is_valid_file`` for ImageFolder: image files that decode (JPEGs at reduced size, for
    speed); the others are remembered in ``skipped``."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def __call__(self, path: str) -> bool:
        from PIL import Image

        if not path.lower().endswith(torchvision.datasets.folder.IMG_EXTENSIONS):
            return False
        try:
            with Image.open(path) as picture:
                picture.draft("RGB", (64, 64))
                picture.load()
            return True
        except (OSError, SyntaxError, ValueError):
            self.skipped.append(path)
            return False


def _image_folder(folder: Path, transform, skip_unreadable: bool):
    """torchvision's ImageFolder reading through :func:`read_image`; unreadable files left out
    (and counted in a warning) when ``skip_unreadable``."""
    readable = ReadableImages() if skip_unreadable else None
    dataset = torchvision.datasets.ImageFolder(str(folder), transform, loader=read_image, is_valid_file=readable)
    if readable and readable.skipped:
        print(f"warning: left out {len(readable.skipped)} unreadable image(s) in '{folder}', e.g. "
              f"'{readable.skipped[0]}'", file=sys.stderr)
    return dataset


def load_imagefolder(root: Path, image_size: int, resize: int, augment: bool, skip_unreadable: bool = False) -> DataSplits:
    root = Path(root)
    missing = [split for split in ("train", "val") if not (root / split).is_dir()]
    if missing:
        raise DataError(f"ImageFolder root '{root}' needs sub-folders train/ and val/ with one folder "
                        f"of images per class; missing: {', '.join(missing)}/.")
    normalize = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    evaluate = [T.Resize(resize), T.CenterCrop(image_size)]
    fit = [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()] if augment else evaluate
    try:
        train = _image_folder(root / "train", T.Compose(fit + normalize), skip_unreadable)
        val = _image_folder(root / "val", T.Compose(evaluate + normalize), skip_unreadable)
    except FileNotFoundError as exc:
        raise DataError(f"ImageFolder '{root}': {exc}") from exc
    if train.classes != val.classes:
        raise DataError(f"train/ and val/ of '{root}' have different classes: {train.classes} vs {val.classes}.")
    info = DataInfo(num_classes=len(train.classes), class_names=train.classes, in_channels=3,
                    image_size=(image_size, image_size), mean=IMAGENET_MEAN, std=IMAGENET_STD, eval_resize=resize)
    return DataSplits(train, val, info)
