"""The tutorials' small networks."""

from __future__ import annotations

import torch
from torch import nn

from cvcore import OptionError


class LeNet(nn.Module):
    """conv(5)-pool-conv(5)-pool-fc120-fc84-fc, sized from the input geometry."""

    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        height, width = (((side - 4) // 2 - 4) // 2 for side in image_size)
        if min(height, width) < 1:
            raise OptionError(f"lenet needs images of at least 16x16, got {image_size[0]}x{image_size[1]}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * height * width, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """Flatten, then two hidden ReLU layers and a linear head."""

    def __init__(self, num_classes: int, in_features: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

