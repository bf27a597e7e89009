"""The heavy half of the example plugin: imported only when a component is built."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import cvcore


def make_stripes(size: int, image_size: int, seed: int) -> cvcore.DataSplits:
    generator = torch.Generator().manual_seed(seed)

    def split(count: int) -> TensorDataset:
        labels = torch.randint(0, 2, (count,), generator=generator)
        phase = torch.arange(image_size).float()
        pattern = torch.sin(phase * 1.5).view(1, -1).expand(image_size, -1)
        images = torch.stack([pattern if y else pattern.T for y in labels]).unsqueeze(1)
        return TensorDataset(images + 0.5 * torch.randn(images.shape, generator=generator), labels)

    info = cvcore.DataInfo(num_classes=2, class_names=["horizontal", "vertical"], in_channels=1,
                           image_size=(image_size, image_size), mean=(0.0,), std=(1.0,))
    return cvcore.DataSplits(split(size), split(max(size // 4, 1)), info)


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
    def __init__(self) -> None:
        self.durations: list[float] = []

    def on_epoch_start(self, trainer) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, trainer, metrics) -> None:
        self.durations.append(time.perf_counter() - self.started)

    def state_dict(self) -> dict:
        return {"durations": self.durations}

    def load_state_dict(self, state: dict) -> None:
        self.durations = list(state["durations"])
