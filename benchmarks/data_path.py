"""Images/s of data paths, side by side in one run, on data in the real on-disk formats.

1. CIFAR-10 training data: the tutorials' pipeline (torchvision CIFAR10 + RandomCrop(32, padding=4),
   RandomHorizontalFlip, ToTensor, Normalize, DataLoader with 2 workers, batch 128) against
   cvcore's in-memory path (one uint8 tensor, batched crop/flip/normalise on the device).
2. ImageFolder (JPEG, RandomResizedCrop(224) + flip): the tutorials' DataLoader against cvcore's
   (persistent workers).

Writes a CIFAR-format fixture (python pickles, checksums of the fixture trusted for this run only)
and a folder of JPEGs in a temporary directory: no download.

    python benchmarks/data_path.py [--images 20000] [--device cpu]
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

import cvcore

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
BATCH = 128


def write_cifar(root: Path, images: int) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        count = images // 5 if name != "test_batch" else 1000
        batch = {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, count))}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    digest = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    CIFAR10 = torchvision.datasets.CIFAR10
    CIFAR10.train_list = [[n, digest[n]] for n in names[:5]]
    CIFAR10.test_list = [["test_batch", digest["test_batch"]]]
    CIFAR10.meta = {**CIFAR10.meta, "md5": digest["batches.meta"]}


def write_jpegs(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", count), ("val", 8)):
        for cls in ("ants", "bees"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n // 2):
                Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.jpg")


def rate(batches, device: torch.device) -> float:
    """Images/s of one pass over ``batches``, including the copy to ``device``."""
    start, seen = time.perf_counter(), 0
    for images, _ in batches:
        images = images.to(device, non_blocking=True)
        seen += len(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def cifar(root: Path, device: torch.device, repeats: int) -> None:
    tutorial_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    tutorial = DataLoader(torchvision.datasets.CIFAR10(str(root), True, tutorial_tf), batch_size=BATCH, shuffle=True,
                          num_workers=2, persistent_workers=True)
    ours = cvcore.create("dataset", "cifar10", root=root).train.on_device(device)
    generator = torch.Generator(device).manual_seed(0)
    theirs_rates, our_rates = [], []
    for _ in range(repeats):  # interleaved
        theirs_rates.append(rate(tutorial, device))
        our_rates.append(rate(ours.batches(BATCH, shuffle=True, augment=True, generator=generator), device))
    theirs, mine = max(theirs_rates), max(our_rates)
    print(f"CIFAR-10 train   tutorial pipeline {theirs:>10,.0f} img/s   cvcore in-memory {mine:>12,.0f} img/s   "
          f"ratio {mine / theirs:.1f}x", flush=True)


def imagefolder(root: Path, device: torch.device) -> None:
    tutorial_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                             T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    tutorial = DataLoader(torchvision.datasets.ImageFolder(str(root / "train"), tutorial_tf), batch_size=32,
                          shuffle=True, num_workers=2)
    data = cvcore.create("dataset", "imagefolder", root=root).train
    ours = DataLoader(data, batch_size=32, shuffle=True, num_workers=2, persistent_workers=True)
    rate(ours, device)  # the persistent workers start once
    theirs, mine = rate(tutorial, device), rate(ours, device)
    print(f"ImageFolder JPEG tutorial pipeline {theirs:>10,.0f} img/s   cvcore DataLoader {mine:>11,.0f} img/s   "
          f"ratio {mine / theirs:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="CIFAR training images in the fixture")
    parser.add_argument("--jpegs", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_cifar(root / "cifar", args.images)
        cifar(root / "cifar", device, args.repeats)
        write_jpegs(root / "jpeg", args.jpegs)
        imagefolder(root / "jpeg", device)


if __name__ == "__main__":
    main()
