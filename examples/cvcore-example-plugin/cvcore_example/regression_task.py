"""The example's own task: regression. A Task says what a model outputs, what is measured, which
metric picks the best epoch and what `cv predict` prints; cvcore asks it and knows nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import cvcore


class Regression(cvcore.Task):
    default_monitor = "val_mae"
    minimized = ("mae",)  # lower is better: the best epoch has the smallest error

    def metric_names(self, num_classes: int, detailed: bool) -> list[str]:
        return ["loss", "mae"]

    def metrics(self, num_classes: int, device, detailed: bool) -> AbsoluteError:
        return AbsoluteError(device)

    def expected_output(self, info) -> tuple[tuple[int, ...], str]:
        return (2, info.num_classes), f"(N, {info.num_classes}) values"

    def example_target(self, info, batch: int) -> torch.Tensor:
        return torch.randn(batch, info.num_classes)

    def check_target(self, target: torch.Tensor, info) -> str | None:
        if tuple(target.shape) != (info.num_classes,) or not target.is_floating_point():
            return f"target {tuple(target.shape)} {target.dtype}, expected {info.num_classes} float value(s)"
        return None

    def predict(self, output, images: list[Path], class_names: list[str], *, topk: int,
                output_dir: Path) -> list[dict[str, Any]]:
        return [{"image": str(image), **{name: round(float(v), 6) for name, v in zip(class_names, row)}}
                for image, row in zip(images, output)]

    def describe(self, result: dict[str, Any]) -> str:
        values = ", ".join(f"{key} {value:.3f}" for key, value in result.items() if key != "image")
        return f"{result['image']}: {values}"


class AbsoluteError(cvcore.Metrics):
    """Sums of loss and absolute error on the device; ``compute`` divides by the images seen."""

    headline = "mae"

    def __init__(self, device) -> None:
        self.sums, self.count = torch.zeros(2, device=device), torch.zeros((), device=device)

    @torch.no_grad()
    def update(self, output, target, loss) -> None:
        self.seen += len(target)
        error = (output.float() - target).abs().mean(dim=1).sum()
        self.sums += torch.stack([loss.detach().float() * len(target), error])

    def running(self) -> tuple[float, float]:
        loss, error = self.sums.tolist()
        return loss / max(self.seen, 1), error / max(self.seen, 1)

    def tensors(self) -> list[torch.Tensor]:
        self.count.fill_(self.seen)
        return [self.sums, self.count]

    def compute(self, prefix: str) -> dict[str, float]:
        (loss, error), count = self.sums.tolist(), max(self.count.item(), 1.0)
        return {f"{prefix}_loss": loss / count, f"{prefix}_mae": error / count}


def make_periods(size: int, image_size: int, seed: int) -> cvcore.DataSplits:
    generator = torch.Generator().manual_seed(seed)

    def split(count: int) -> cvcore.TensorImages:
        periods = 2 + 6 * torch.rand(count, generator=generator)
        columns = torch.arange(image_size).float().view(1, 1, -1)
        waves = torch.sin(2 * torch.pi * columns / periods.view(-1, 1, 1)).expand(count, image_size, image_size)
        pixels = ((waves + 1) * 127.5).round().to(torch.uint8).unsqueeze(1)
        return cvcore.TensorImages(pixels, periods.unsqueeze(1))

    info = cvcore.DataInfo(task="regression", num_classes=1, class_names=["period"], in_channels=1,
                           image_size=(image_size, image_size), mean=(0.5,), std=(0.35,))
    return cvcore.DataSplits(split(size), split(max(size // 4, 1)), info)
