"""A plugin whose images carry their own id, and a model and callback that log which ids each
process trains and validates on: what multi-process and resume tests assert against."""

import json
import os
from pathlib import Path

import cvcore


@cvcore.hookimpl
def register_datasets(register):
    register("ids", ids)


@cvcore.hookimpl
def register_models(register):
    register("id_recorder", id_recorder)


@cvcore.hookimpl
def register_callbacks(register):
    register("id_log", id_log)
    register("interrupt_at", interrupt_at)


def ids(*, count: int = 129, val_count: int = 37, crop_padding: int = 0, flip: bool = False):
    """Images whose two channels hold id // 256 and id % 256 (training ids 0.., validation ids 10000..).

    :param count: training images.
    :param val_count: validation images.
    :param crop_padding: random-crop padding (augmentation draws).
    :param flip: random left-right flips (augmentation draws).
    """
    import torch

    def images(first: int, number: int):
        index = torch.arange(first, first + number)
        pixels = torch.stack([index // 256, index % 256], 1).view(number, 2, 1, 1).expand(number, 2, 4, 4)
        return pixels.to(torch.uint8).contiguous(), index % 2

    mean, std = (0.0, 0.0), (1 / 255, 1 / 255)  # normalised pixels are the raw byte values
    train = cvcore.TensorImages(*images(0, count))
    val = cvcore.TensorImages(*images(10000, val_count))
    info = cvcore.DataInfo(num_classes=2, class_names=["even", "odd"], in_channels=2, image_size=(4, 4),
                           mean=mean, std=std)
    transforms = [("transforms:pad_crop", {"padding": crop_padding})] if crop_padding else []
    return cvcore.DataSplits(train, val, info, transforms=transforms + (["transforms:flip"] if flip else []))


def id_recorder(*, num_classes: int = 2, in_channels: int = 2, image_size: tuple = (4, 4), mean: tuple = (0.0, 0.0),
                std: tuple = (1.0, 1.0)):
    """A linear classifier that notes the id of every image it sees (the bytes of its first two
    channels at pixel (1, 1), normalisation undone).

    :param num_classes: classes.
    :param in_channels: channels.
    :param image_size: height and width.
    :param mean: the data's normalisation (filled in), undone to read the bytes.
    :param std: the data's normalisation (filled in).
    """
    import torch

    class IdRecorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(in_channels * image_size[0] * image_size[1], num_classes)
            self.register_buffer("mean", torch.tensor(mean).view(1, -1))
            self.register_buffer("std", torch.tensor(std).view(1, -1))
            self.seen = {"train": [], "val": []}

        def forward(self, x):
            centre = ((x[:, :, 1, 1].detach() * self.std + self.mean) * 255).round().long()
            self.seen["train" if self.training else "val"] += (centre[:, 0] * 256 + centre[:, 1]).tolist()
            return self.linear(x.flatten(1) / 255)

    return IdRecorder()


def id_log(*, folder: str = "ids"):
    """Write RUN_DIR/../FOLDER/rank-R.jsonl: per epoch, the ids this process trained and validated on.

    :param folder: folder beside the run directory.
    """

    class IdLog(cvcore.Callback):
        def on_fit_start(self, trainer):  # forget the shape check's forward pass before training
            trainer.module.seen["train"], trainer.module.seen["val"] = [], []

        def on_epoch_end(self, trainer, metrics):
            target = Path(os.environ["PROBE_DIR"]) / folder
            target.mkdir(parents=True, exist_ok=True)
            seen = trainer.module.seen
            row = {"epoch": trainer.epoch, "train": seen["train"], "val": seen["val"]}
            with open(target / f"rank-{os.environ.get('RANK', '0')}.jsonl", "a") as stream:
                stream.write(json.dumps(row) + "\n")
            seen["train"], seen["val"] = [], []

    return IdLog()


def interrupt_at(*, step: int = 1, signal_name: str = "SIGINT", after_validation: bool = False):
    """Send this process a signal after the given optimizer step (1-based, counted over the run), once;
    or, with after_validation, at the end of the validation that follows that step.

    :param step: optimizer step after which the signal is sent.
    :param signal_name: SIGINT or SIGTERM.
    :param after_validation: wait for the end of the epoch's validation.
    """
    import signal

    class InterruptAt(cvcore.Callback):
        def send(self, trainer):
            marker = Path(os.environ["PROBE_DIR"]) / f"sent-{signal_name}-{step}"
            if trainer.global_step >= step and not marker.exists():  # once: not again when resumed
                marker.touch()
                os.kill(os.getpid(), getattr(signal, signal_name))

        def on_batch_end(self, trainer, loss):
            if not after_validation:
                self.send(trainer)

        def on_validation_end(self, trainer, metrics):
            if after_validation:
                self.send(trainer)

    return InterruptAt()
