"""A compact U-Net: an encoder of double-conv blocks, a mirrored decoder with skip connections."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """``depth`` poolings; level i has ``width * 2**i`` channels. Any input size works."""

    def __init__(self, num_classes: int, in_channels: int, width: int, depth: int) -> None:
        super().__init__()
        widths = [width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList([double_conv(in_channels, widths[0])] +
                                  [double_conv(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))])
        self.merge = nn.ModuleList([double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, block in enumerate(self.down):
            x = block(x if index == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            skip = skips.pop()
            x = up(x)
            if x.shape[-2:] != skip.shape[-2:]:  # odd sizes: align to the skip connection
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = merge(torch.cat([skip, x], dim=1))
        return self.head(x)
