"""The heavy half of the example plugin: imported only when a component is built."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import cvcore


def make_stripes(size: int, image_size: int, seed: int) -> cvcore.DataSplits:
    """uint8 images (N, 1, H, W) in a cvcore.TensorImages: the Trainer batches them on the device and
    normalises them with the DataInfo's ``mean``/``std``, which are in the [0, 1] scale the images
    are divided into. Mirrored stripes keep their class, so the data set suggests the flip transform."""
    generator = torch.Generator().manual_seed(seed)

    def split(count: int) -> cvcore.TensorImages:
        labels = torch.randint(0, 2, (count,), generator=generator)
        phase = torch.arange(image_size).float()
        pattern = torch.sin(phase * 1.5).view(1, -1).expand(image_size, -1)
        images = torch.stack([pattern if y else pattern.T for y in labels]).unsqueeze(1)
        noisy = images + 0.5 * torch.randn(images.shape, generator=generator)
        pixels = ((noisy + 2) * 64).clamp(0, 255).to(torch.uint8)
        return cvcore.TensorImages(pixels, labels)

    info = cvcore.DataInfo(num_classes=2, class_names=["horizontal", "vertical"], in_channels=1,
                           image_size=(image_size, image_size), mean=(0.5,), std=(0.25,))
    return cvcore.DataSplits(split(size), split(max(size // 4, 1)), info, transforms=["transforms:flip"])


class FocalCrossEntropy(nn.Module):
    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
        return (-(1 - log_p.exp()) ** self.gamma * log_p).mean()


class SignSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param.add_(param.grad.sign(), alpha=-group["lr"])


class EpochTimer(cvcore.Callback):
    """Times each epoch; the main process writes the CSV to the run directory (none in library use)."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.durations: list[float] = []

    def on_epoch_start(self, trainer) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, trainer, metrics) -> None:
        self.durations.append(time.perf_counter() - self.started)
        if trainer.is_main and trainer.run_dir is not None:
            rows = "".join(f"{epoch},{seconds:.4f}\n" for epoch, seconds in enumerate(self.durations, 1))
            (Path(trainer.run_dir) / self.filename).write_text("epoch,seconds\n" + rows, encoding="utf-8")

    def state_dict(self) -> dict:
        return {"durations": self.durations}

    def load_state_dict(self, state: dict) -> None:
        self.durations = list(state["durations"])
