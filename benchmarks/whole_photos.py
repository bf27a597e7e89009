"""What the folder cache's whole photos change, side by side in one run.

1. Crops: for a 500x375 photo, the share of the photo that RandomResizedCrop(224) can reach and
   how many of its crops are enlarged (fewer source pixels than 224 a side, so blurrier than
   validation images): torchvision on the file, cvcore on its cache at resize 256 (whole photo,
   and the centre square that caches before 0.2 kept), and at resize 384.
2. Accuracy on photos whose objects are not centred (a disc, square or triangle anywhere in a
   4:3 photo): one model, seeds, optimiser and epochs, trained from four data paths: the
   tutorials' (ImageFolder + RandomResizedCrop + flip, DataLoader), cvcore's cache of whole photos,
   the centre-square cache, and whole photos stored at the files' size; all validated on the same
   centre crops (the tutorials' Resize + CenterCrop); the mean of the last three epochs' accuracy.

    python benchmarks/whole_photos.py [--photos 960] [--epochs 12] [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T
from torchvision.transforms import v2

import cvcore
import cvcore.images
from cvcore.training.batching import DeviceLoader
from cvcore.training.preparation import Preparation

SHAPES = ("disc", "square", "triangle")
PHOTO = (128, 96)  # width, height
RESIZE, CROP, BATCH = 48, 40, 32


def crop_statistics(draws: int = 20000) -> None:
    """Per data path: (boxes drawn, file pixels per pixel it crops from, its image's width)."""
    torch.manual_seed(0)
    photo = torch.zeros(3, 375, 500)
    theirs = [v2.RandomResizedCrop.get_params(photo, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(draws)]
    rows = [("torchvision, on the 500x375 file", torch.tensor(theirs, dtype=torch.float64), 1.0)]
    crop = cvcore.create("transform", "random_resized_crop", image_size=(224, 224))
    for resize, whole in ((256, False), (256, True), (384, True)):
        extent = cvcore.images.stored_placement(375, 500, resize).input_size if whole else (resize, resize)
        drawn = crop.draw(torch.tensor([extent]).expand(draws, 2), torch.Generator().manual_seed(0))
        label = f"cvcore, {'whole photo' if whole else 'centre square (before 0.2)'} at resize {resize}"
        rows.append((label, torch.stack(drawn, 1).double(), 375 / resize))
    for label, boxes, file_pixels in rows:
        top, left, height, width = boxes.unbind(1)
        reach = ((left + width).max() - left.min()) * file_pixels / 500
        side = (height * width).sqrt()
        print(f"  {label:<48} reaches {reach:.0%} of the width   median crop {side.median():.0f} px a side   "
              f"enlarged to 224: {(side < 224).double().mean():.0%}")


def write_photos(root: Path, count: int, seed: int) -> None:
    """Photos of one shape each, anywhere in the frame (a third of them off the centre square)."""
    rng = np.random.default_rng(seed)
    width, height = PHOTO
    for split, n in (("train", count), ("val", count // 2)):
        for index in range(n):
            label = index % len(SHAPES)
            folder = root / split / SHAPES[label]
            folder.mkdir(parents=True, exist_ok=True)
            background = rng.integers(60, 120, (height // 8, width // 8, 3), dtype=np.uint8)
            picture = Image.fromarray(background).resize(PHOTO, Image.BILINEAR)
            draw = ImageDraw.Draw(picture)
            side = int(rng.integers(22, 34))
            x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            colour = tuple(int(c) for c in rng.integers(150, 256, 3))
            if SHAPES[label] == "disc":
                draw.ellipse([x, y, x + side, y + side], fill=colour)
            elif SHAPES[label] == "square":
                draw.rectangle([x, y, x + side, y + side], fill=colour)
            else:
                draw.polygon([(x, y + side), (x + side, y + side), (x + side // 2, y)], fill=colour)
            picture.save(folder / f"{index}.jpg", quality=92)


def model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    def block(cin, cout):
        return [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    return torch.nn.Sequential(*block(3, 24), *block(24, 48), *block(48, 96), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(96, len(SHAPES)))


def train(batches_per_epoch, val_batches, epochs: int, seed: int, last: int = 3) -> float:
    """The mean validation accuracy of the last ``last`` epochs (less noisy than the final one)."""
    net = model(seed)
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=5e-4)
    scores = []
    for epoch in range(epochs):
        net.train()
        for images, labels in batches_per_epoch():
            loss = F.cross_entropy(net(images), labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        if epoch >= epochs - last:
            scores.append(validate(net, val_batches))
    return statistics.mean(scores)


def validate(net: torch.nn.Module, val_batches) -> float:
    net.eval()
    right = total = 0
    with torch.no_grad():
        for images, labels in val_batches:
            right += (net(images).argmax(1) == labels).sum().item()
            total += len(labels)
    return right / total


def tutorial_batches(root: Path, seed: int):
    normalise = [T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    train_set = datasets.ImageFolder(str(root / "train"), T.Compose([T.RandomResizedCrop(CROP), T.RandomHorizontalFlip(),
                                                                       *normalise]))
    loader = DataLoader(train_set, batch_size=BATCH, shuffle=True, num_workers=2, persistent_workers=True,
                        generator=torch.Generator().manual_seed(seed))
    return lambda: iter(loader)


def cvcore_batches(root: Path, seed: int, resize: int = RESIZE):
    data = cvcore.create("dataset", "imagefolder", root=root, image_size=CROP, resize=resize)
    prepare = Preparation(data.info, torch.device("cpu"), cvcore.create_transforms(data.transforms, data.info),
                          torch.Generator().manual_seed(seed))
    loader = DeviceLoader(data.train.on_device(torch.device("cpu")), BATCH, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))
    return lambda: (prepare(*batch, train=True)[:2] for batch in loader)


def validation(root: Path) -> list:
    tutorial = T.Compose([T.Resize(RESIZE), T.CenterCrop(CROP), T.ToTensor(),
                          T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    return list(DataLoader(datasets.ImageFolder(str(root / "val"), tutorial), batch_size=128))


def accuracy(root: Path, epochs: int, seeds: int) -> None:
    val = validation(root)
    paths = {"tutorial pipeline": tutorial_batches, "cvcore, whole photos": cvcore_batches,
             "cvcore, centre squares (before 0.2)": cvcore_batches,
             f"cvcore, whole photos stored at {PHOTO[1]}": lambda root, seed: cvcore_batches(root, seed, PHOTO[1])}
    for label, batches in paths.items():
        cvcore.images.STORED_ASPECT = 1.0 if "before" in label else 1.5
        scores = [train(batches(root, seed), val, epochs, seed) for seed in range(seeds)]
        print(f"  {label:<38} val accuracy {statistics.mean(scores):.3f} +- {statistics.stdev(scores):.3f}  "
              f"({', '.join(f'{s:.3f}' for s in scores)})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=960)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("RandomResizedCrop(224) of a 500x375 photo:")
    crop_statistics()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["CVCORE_CACHE_DIR"] = str(Path(folder) / "cache")
        write_photos(Path(folder) / "photos", args.photos, seed=0)
        print(f"{len(SHAPES)} shapes anywhere in {PHOTO[0]}x{PHOTO[1]} photos, {args.photos} to train, "
              f"resize {RESIZE}, crop {CROP}, {args.epochs} epochs, seeds 0-{args.seeds - 1}:")
        accuracy(Path(folder) / "photos", args.epochs, args.seeds)


if __name__ == "__main__":
    main()
