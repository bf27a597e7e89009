"""A timm model trained through cvcore and through timm's own training pieces, side by side.

The same data (cvcore's `digits` split: 1,437 training and 360 validation images at 32x32, no
augmentation), model (timm's resnet18, 1 input channel, 10 classes), seeds and recipe: SGD with
Nesterov momentum 0.9 at lr 0.05, no weight decay, label smoothing 0.1, cosine decay per epoch,
batch 64, 10 epochs. The timm side runs the loop of timm's train.py (which the timm wheel does not
ship) with timm's pieces: create_model, create_optimizer_v2, LabelSmoothingCrossEntropy,
CosineLRScheduler stepped per epoch, timm.utils.accuracy. The cvcore side is `cv train`. Prints
each seed's last-epoch validation top-1 and the mean and spread of each side.

    python benchmarks/timm_side_by_side.py [--seeds 5] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import cvcore

LR, MOMENTUM, SMOOTHING, BATCH = 0.05, 0.9, 0.1, 64


def with_timm(seed: int, epochs: int) -> float:
    """timm's training pieces on the digits split, as timm's train.py composes them; last top-1."""
    import timm
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler
    from timm.utils import accuracy

    data = cvcore.create("dataset", "digits")
    mean, std = data.info.mean[0], data.info.std[0]
    images = {split: (part.images.float() / 255 - mean) / std for split, part in (("train", data.train), ("val", data.val))}
    targets = {"train": data.train.targets, "val": data.val.targets}
    torch.manual_seed(seed)
    model = timm.create_model("resnet18", num_classes=10, in_chans=1)
    optimizer = create_optimizer_v2(model, opt="nesterov", lr=LR, momentum=MOMENTUM, weight_decay=0.0)
    scheduler = CosineLRScheduler(optimizer, t_initial=epochs, lr_min=0.0, warmup_t=0)
    loss_fn, order = LabelSmoothingCrossEntropy(SMOOTHING), torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        shuffled = torch.randperm(len(images["train"]), generator=order)
        for start in range(0, len(shuffled), BATCH):
            picked = shuffled[start:start + BATCH]
            loss = loss_fn(model(images["train"][picked]), targets["train"][picked])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step(epoch + 1)
    model.eval()
    with torch.no_grad():
        top1, = accuracy(model(images["val"]), targets["val"], topk=(1,))
    return float(top1) / 100


def with_cvcore(seed: int, epochs: int) -> float:
    """`cv train` with the same recipe; the last epoch's validation top-1."""
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        subprocess.run(
            ["cv", "train", "--model", "timm/resnet18", "--dataset", "digits", "--transform", "none",
             "--optimizer", "sgd", "--lr", str(LR), "--set", f"optimizer.momentum={MOMENTUM}",
             "--set", "optimizer.nesterov=true", "--loss", "cross_entropy",
             "--set", f"loss.label_smoothing={SMOOTHING}", "--scheduler", "cosine", "--batch-size", str(BATCH),
             "--epochs", str(epochs), "--seed", str(seed), "--device", "cpu", "--run-dir", str(run_dir)],
            check=True, capture_output=True, text=True)
        rows = (run_dir / "metrics.jsonl").read_text().splitlines()
        return json.loads(rows[-1])["val_acc1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    import timm

    print(f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads; resnet18 on digits "
          f"32x32, {args.epochs} epochs, last-epoch validation top-1")
    results: dict[str, list[float]] = {"timm's pieces": [], "cvcore": []}
    for seed in range(args.seeds):
        for side, run in (("timm's pieces", with_timm), ("cvcore", with_cvcore)):
            start = time.perf_counter()
            results[side].append(run(seed, args.epochs))
            print(f"  seed {seed} {side:<14} {results[side][-1]:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    for side, values in results.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{side:<14} {statistics.mean(values):.4f} +- {spread:.4f}")


if __name__ == "__main__":
    main()
