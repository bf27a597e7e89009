"""Trainer overhead against a hand-written PyTorch loop doing the same work, interleaved in one process.

Same model, data, seed and batch size (128), in-memory data, CPU. Both sides run whole epochs of
training and validation and track loss and top-1/top-5 accuracy on the device, the way a careful
hand-written loop does. Prints the median time of each and their ratio.

    python benchmarks/overhead.py [--repeats 7] [--epochs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import cvcore
from cvcore.trainer import Trainer, TrainerOptions, seed_everything

BATCH = 128
DEVNULL = open(os.devnull, "w")  # both sides print one line per epoch; neither to the terminal


def make_data(side: int, train: int = 8192, val: int = 2048) -> cvcore.DataSplits:
    generator = torch.Generator().manual_seed(0)
    def split(n):
        return TensorDataset(torch.randn(n, 1, side, side, generator=generator), torch.randint(0, 10, (n,), generator=generator))
    info = cvcore.DataInfo(num_classes=10, class_names=[str(i) for i in range(10)], in_channels=1,
                           image_size=(side, side), mean=(0.0,), std=(1.0,))
    return cvcore.DataSplits(split(train), split(val), info)


def build(model_name: str, data: cvcore.DataSplits, **model_options):
    seed_everything(0)
    model = cvcore.create("model", model_name, num_classes=10, in_channels=1, image_size=data.info.image_size,
                          **model_options)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), torch.nn.CrossEntropyLoss()


def hand_written(model_name: str, data: cvcore.DataSplits, epochs: int, **model_options) -> float:
    model, optimizer, loss_fn = build(model_name, data, **model_options)
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    train = DataLoader(data.train, batch_size=BATCH, shuffle=True, generator=generator)
    val = DataLoader(data.val, batch_size=BATCH)
    for _ in range(epochs):
        model.train()
        totals = torch.zeros(3, dtype=torch.float64)
        for images, target in train:
            logits = model(images)
            loss = loss_fn(logits, target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            count = torch.tensor(float(len(target)), dtype=torch.float64)
            totals += torch.stack([loss.detach().double() * count, (logits.argmax(1) == target).sum().double(), count])
        model.eval()
        val_totals = torch.zeros(4, dtype=torch.float64)
        with torch.inference_mode():
            for images, target in val:
                logits = model(images)
                top5 = logits.topk(5, 1).indices == target[:, None]
                count = torch.tensor(float(len(target)), dtype=torch.float64)
                val_totals += torch.stack([loss_fn(logits, target).double() * count, top5[:, 0].sum().double(),
                                           top5.any(1).sum().double(), count])
        print(f"  epoch: train {totals.tolist()} val {val_totals.tolist()}", file=DEVNULL)  # the log read-back
    return time.perf_counter() - start


def with_trainer(model_name: str, data: cvcore.DataSplits, epochs: int, **model_options) -> float:
    model, optimizer, loss_fn = build(model_name, data, **model_options)
    start = time.perf_counter()
    trainer = Trainer(model=model, loss=loss_fn, optimizer=optimizer, data=data,
                      options=TrainerOptions(epochs=epochs, batch_size=BATCH, device="cpu", seed=0))
    with contextlib.redirect_stdout(DEVNULL):
        trainer.fit()
    return time.perf_counter() - start


def compare(label: str, model_name: str, side: int, repeats: int, epochs: int, **model_options) -> float:
    data = make_data(side)
    hand, ours = [], []
    for _ in range(repeats):  # interleaved, so drifts in machine load hit both sides alike
        hand.append(hand_written(model_name, data, epochs, **model_options))
        ours.append(with_trainer(model_name, data, epochs, **model_options))
    ratio = statistics.median(ours) / statistics.median(hand)
    print(f"{label:<28} hand-written {statistics.median(hand):.3f}s  Trainer {statistics.median(ours):.3f}s  "
          f"ratio {ratio:.3f}", flush=True)
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, {args.epochs} epochs x "
          f"{args.repeats} repeats (medians)")
    compare("tiny MLP (8x8, hidden 32)", "mlp", 8, args.repeats, args.epochs, hidden=32)
    compare("LeNet (32x32)", "lenet", 32, args.repeats, args.epochs)


if __name__ == "__main__":
    main()
