"""Trainer overhead against a hand-written PyTorch loop doing the same work, interleaved in one process.

Same model, data, seed and batch size (128), in-memory data (cvcore.TensorImages batched on the
device, the Trainer's default for in-memory sets; the hand-written loop uses the same batches), CPU.
Both sides run whole epochs of training and validation and track loss and top-1/top-5 accuracy on
the device, the way a careful hand-written loop does. Prints the median time of each and their ratio.

A second, independent measure gives the hand-written loop the least work a loop can do: images
normalised to float once before it, no metrics in training, the validation loss summed; one epoch.
Beside the whole run's ratio it prints the training steps' alone (the Trainer's own timing of its
training epoch against the loop's), to show where the difference lies.

    python benchmarks/overhead.py [--repeats 7] [--epochs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import time

import torch

import cvcore
from cvcore.training.trainer import Trainer, TrainerOptions, seed_everything

BATCH = 128
MEAN, STD = 0.0, 1.0  # the DataInfo's: the Trainer normalises with them as well
DEVNULL = open(os.devnull, "w")  # both sides print one line per epoch; neither to the terminal


def make_data(side: int, train: int = 8192, val: int = 2048) -> cvcore.DataSplits:
    generator = torch.Generator().manual_seed(0)

    def split(n):
        images = torch.randint(0, 256, (n, 1, side, side), generator=generator, dtype=torch.uint8)
        return cvcore.TensorImages(images, torch.randint(0, 10, (n,), generator=generator))

    info = cvcore.DataInfo(num_classes=10, class_names=[str(i) for i in range(10)], in_channels=1,
                           image_size=(side, side), mean=(MEAN,), std=(STD,))
    return cvcore.DataSplits(split(train), split(val), info)


def normalised(images: torch.Tensor) -> torch.Tensor:
    """Bytes to the model's input, as any loop does: scale to [0, 1], subtract the mean, divide by the std."""
    return images.float().div_(255).sub_(MEAN).div_(STD)


def build(model_name: str, data: cvcore.DataSplits, **model_options):
    seed_everything(0)
    model = cvcore.create("model", model_name, num_classes=10, in_channels=1, image_size=data.info.image_size,
                          **model_options)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), torch.nn.CrossEntropyLoss()


def hand_written(model_name: str, data: cvcore.DataSplits, epochs: int, **model_options) -> tuple[float, None]:
    model, optimizer, loss_fn = build(model_name, data, **model_options)
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    train, val = data.train.on_device(torch.device("cpu")), data.val.on_device(torch.device("cpu"))
    for _ in range(epochs):
        model.train()
        totals = torch.zeros(3, dtype=torch.float64)
        for images, target in train.batches(BATCH, shuffle=True, generator=generator):
            logits = model(normalised(images))
            loss = loss_fn(logits, target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            count = torch.tensor(float(len(target)), dtype=torch.float64)
            totals += torch.stack([loss.detach().double() * count, (logits.argmax(1) == target).sum().double(), count])
        model.eval()
        val_totals = torch.zeros(4, dtype=torch.float64)
        with torch.inference_mode():
            for images, target in val.batches(BATCH, shuffle=False):
                logits = model(normalised(images))
                top5 = logits.topk(5, 1).indices == target[:, None]
                count = torch.tensor(float(len(target)), dtype=torch.float64)
                val_totals += torch.stack([loss_fn(logits, target).double() * count, top5[:, 0].sum().double(),
                                           top5.any(1).sum().double(), count])
        print(f"  epoch: train {totals.tolist()} val {val_totals.tolist()}", file=DEVNULL)  # the log read-back
    return time.perf_counter() - start, None


def bare_loop(model_name: str, data: cvcore.DataSplits, epochs: int, **model_options) -> tuple[float, float]:
    """The independent measure's loop: pre-normalised float tensors, forward, backward, step.
    Returns the seconds of the whole loop and of its training steps."""
    model, optimizer, loss_fn = build(model_name, data, **model_options)
    images, targets = normalised(data.train.images), data.train.targets
    val_images, val_targets = normalised(data.val.images), data.val.targets
    generator = torch.Generator().manual_seed(0)
    start, training = time.perf_counter(), 0.0
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(len(images), generator=generator)
        for first in range(0, len(images), BATCH):
            picked = order[first:first + BATCH]
            loss = loss_fn(model(images[picked]), targets[picked])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        training += time.perf_counter() - epoch_start
        model.eval()
        with torch.inference_mode():
            total = sum(loss_fn(model(val_images[i:i + BATCH]), val_targets[i:i + BATCH])
                        for i in range(0, len(val_images), BATCH))
        print(f"  epoch: val loss {float(total)}", file=DEVNULL)
    return time.perf_counter() - start, training


def with_trainer(model_name: str, data: cvcore.DataSplits, epochs: int, **model_options) -> tuple[float, float]:
    """Seconds of the whole fit, and of its training epochs as the Trainer times them."""
    model, optimizer, loss_fn = build(model_name, data, **model_options)
    start = time.perf_counter()
    trainer = Trainer(model=model, loss=loss_fn, optimizer=optimizer, data=data,
                      options=TrainerOptions(epochs=epochs, batch_size=BATCH, device="cpu", seed=0))
    with contextlib.redirect_stdout(DEVNULL):
        trainer.fit()
    total = time.perf_counter() - start
    return total, sum(len(data.train) / row["images_per_second"] for row in trainer.history)


def compare(label: str, model_name: str, side: int, repeats: int, epochs: int, bare: bool = False,
            **model_options) -> float:
    data = make_data(side)
    sides = {"hand-written": bare_loop if bare else hand_written, "cvcore Trainer": with_trainer}
    if importlib.util.find_spec("lightning") is not None and not bare:
        sides["Lightning"] = with_lightning
    times: dict[str, list[float]] = {name: [] for name in sides}
    steps: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):  # interleaved, so drifts in machine load hit every side alike
        for name, run in sides.items():
            total, training = run(model_name, data, epochs, **model_options)
            times[name].append(total)
            steps[name].append(training)
    hand = statistics.median(times["hand-written"])
    parts = [f"{name} {statistics.median(t):.3f}s ({statistics.median(t) / hand:.3f}x)" for name, t in times.items()]
    if bare:
        ratio = statistics.median(steps["cvcore Trainer"]) / statistics.median(steps["hand-written"])
        parts.append(f"training steps alone {ratio:.3f}x")
    print(f"{label:<26} " + "  ".join(parts), flush=True)
    return statistics.median(times["cvcore Trainer"]) / hand


class Batches:
    """An epoch's in-memory batches as a re-iterable (the form Lightning's fit accepts)."""

    def __init__(self, data, shuffle: bool) -> None:
        self.device_data, self.shuffle = data.on_device(torch.device("cpu")), shuffle
        self.generator = torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return self.device_data.num_batches(BATCH)

    def __iter__(self):
        batches = self.device_data.batches(BATCH, shuffle=self.shuffle, generator=self.generator)
        return ((normalised(images), target) for images, target in batches)


def with_lightning(model_name: str, data: cvcore.DataSplits, epochs: int, **model_options) -> tuple[float, None]:
    """The same work under PyTorch Lightning (loss and accuracy summed on the device, no loggers)."""
    import lightning.pytorch as pl

    model, optimizer, loss_fn = build(model_name, data, **model_options)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = model

        def training_step(self, batch, index):
            images, target = batch
            logits = self.net(images)
            loss = loss_fn(logits, target)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            self.log("train_acc1", (logits.argmax(1) == target).float().mean(), on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, index):
            images, target = batch
            logits = self.net(images)
            top5 = logits.topk(5, 1).indices == target[:, None]
            self.log_dict({"val_loss": loss_fn(logits, target), "val_acc1": top5[:, 0].float().mean(),
                           "val_acc5": top5.any(1).float().mean()})

        def configure_optimizers(self):
            return optimizer

    start = time.perf_counter()
    with contextlib.redirect_stdout(DEVNULL), contextlib.redirect_stderr(DEVNULL):
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        trainer.fit(Module(), Batches(data.train, True), Batches(data.val, False))
    return time.perf_counter() - start, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, {args.epochs} epochs x "
          f"{args.repeats} repeats (medians)")
    compare("tiny MLP (8x8, hidden 32)", "mlp", 8, args.repeats, args.epochs, hidden=32)
    compare("LeNet (32x32)", "lenet", 32, args.repeats, args.epochs)
    print("independent measure: a bare loop on pre-normalised floats, one epoch, medians of "
          f"{args.repeats * 3} interleaved rounds")
    compare("tiny MLP, bare loop", "mlp", 8, args.repeats * 3, 1, bare=True, hidden=32)
    compare("LeNet, bare loop", "lenet", 32, args.repeats * 3, 1, bare=True)


if __name__ == "__main__":
    main()
