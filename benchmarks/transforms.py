"""Images/s of each built-in transform on whole batches (parameters drawn per image), beside
torchvision.transforms.v2 doing the same per image in a loop (how a DataLoader worker runs it;
v2 called on a batch would give every image the same parameters). MixUp/CutMix: v2's batch versions.
With Kornia installed (`pip install kornia`), also Kornia's augmentation module on the same batch
(it draws per image too); Kornia takes float images only.

Both sides get the same input: [0, 1] float images on the device, or uint8 where the cvcore
transform is geometric and takes bytes (the folder cache's case). One process, side by side.

    python benchmarks/transforms.py [--device cpu] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from torchvision.transforms import v2

import cvcore

# name, options, the torchvision v2 transform (per image, or per batch for the mixing ones)
CASES = [
    ("pad_crop", {}, lambda size: v2.RandomCrop(size, padding=4)),
    ("flip", {}, lambda size: v2.RandomHorizontalFlip()),
    ("random_resized_crop", {}, lambda size: v2.RandomResizedCrop(size)),
    ("color_jitter", {}, lambda size: v2.ColorJitter(0.4, 0.4, 0.4)),
    ("random_erasing", {"p": 0.5, "value": 0.0}, lambda size: v2.RandomErasing(0.5, value=0)),
    ("trivial_augment", {}, lambda size: v2.TrivialAugmentWide()),
    ("mixup", {"p": 1.0}, lambda size: v2.MixUp(num_classes=10)),
    ("cutmix", {"p": 1.0}, lambda size: v2.CutMix(num_classes=10)),
]
SHAPES = [(128, 32), (32, 224)]


def kornia_cases() -> dict:
    """Kornia's counterpart of each built-in, by name (as close as its module has), or {} without it."""
    try:
        import kornia.augmentation as K
        from kornia.augmentation.auto import TrivialAugment
    except ImportError:
        return {}
    return {"pad_crop": lambda size: K.RandomCrop((size, size), padding=4),
            "flip": lambda size: K.RandomHorizontalFlip(),
            "random_resized_crop": lambda size: K.RandomResizedCrop((size, size)),
            "color_jitter": lambda size: K.ColorJitter(0.4, 0.4, 0.4, p=1.0),
            "random_erasing": lambda size: K.RandomErasing(p=0.5, value=0.0),
            "trivial_augment": lambda size: TrivialAugment()}  # (batch, side): CIFAR-sized and ImageNet-sized images


def images_per_second(run, count: int, repeats: int, device: torch.device) -> float:
    run()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, count / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    kornia = kornia_cases()
    for batch, side in SHAPES:
        info = cvcore.DataInfo(num_classes=10, class_names=[str(i) for i in range(10)], in_channels=3,
                               image_size=(side, side), mean=(0.5,) * 3, std=(0.25,) * 3)
        floats = torch.rand(batch, 3, side, side, device=device)
        labels = torch.arange(batch, device=device) % 10
        generator = torch.Generator(device).manual_seed(0)
        for name, options, theirs in CASES:
            transform, = cvcore.create_transforms([(name, options)], info)
            given = (floats * 255).to(torch.uint8) if transform.geometric else floats
            mine = images_per_second(lambda: transform(given, labels, generator), batch, args.repeats, device)
            reference = theirs(side)
            if name in ("mixup", "cutmix"):
                run = lambda: reference(floats, labels)  # noqa: E731
            else:
                run = lambda: [reference(image) for image in given]  # noqa: E731
            per_image = images_per_second(run, batch, args.repeats, device)
            line = (f"{side:>3}px batch {batch:>3}  {name:<20} cvcore {mine:>10,.0f} img/s   torchvision v2 "
                    f"{per_image:>9,.0f} img/s   {mine / per_image:6.1f}x")
            if name in kornia:
                augment = kornia[name](side).to(device)
                theirs_batched = images_per_second(lambda: augment(floats), batch, args.repeats, device)
                line += f"   Kornia {theirs_batched:>9,.0f} img/s   cvcore/Kornia {mine / theirs_batched:5.2f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
