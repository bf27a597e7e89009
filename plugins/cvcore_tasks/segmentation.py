"""Semantic segmentation: a class per pixel, logits (N, C, H, W), pixel accuracy, IoU and Dice."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from cvcore import IGNORE_INDEX as IGNORED
from cvcore import Metrics, Task


class Segmentation(Task):
    default_monitor = "val_miou"

    def metric_names(self, num_classes: int, detailed: bool) -> list[str]:
        return ["loss", "pixel_acc", *(["miou", "mdice"] if detailed else [])]

    def metrics(self, num_classes: int, device, detailed: bool) -> SegmentationMetrics:
        return SegmentationMetrics(num_classes, device, detailed)

    def expected_output(self, info) -> tuple[tuple[int, ...], str]:
        return (2, info.num_classes, *info.image_size), f"(N, {info.num_classes}, H, W)"

    def check_target(self, target: torch.Tensor, info) -> str | None:
        if tuple(target.shape) != tuple(info.image_size):
            return f"mask shape {tuple(target.shape)}, expected the image size {tuple(info.image_size)}"
        valid = target[target != info.ignore_index] if info.ignore_index is not None else target
        if not bool(((valid >= 0) & (valid < info.num_classes)).all()):
            return f"mask values out of range for {info.num_classes} classes"
        return None

    def example_target(self, info, batch: int) -> torch.Tensor:
        return torch.arange(batch * info.image_size[0] * info.image_size[1]).view(batch, *info.image_size) % info.num_classes

    def predict(self, output: torch.Tensor, images: list[Path], class_names: list[str], *, topk: int,
                output_dir: Path, placements: list | None = None) -> list[dict[str, Any]]:
        """A PNG mask of class ids per image in ``output_dir``, at the photo's size so that it lies
        over it, and the share of each class among the pixels predicted. Pixels outside the part of
        the photo the model saw (its centre crop) are IGNORE_INDEX (255)."""
        from PIL import Image

        from cvcore.files import make_directory, save_image

        make_directory(output_dir)
        results = []
        for index, (image, logits) in enumerate(zip(images, output)):
            placement = placements[index] if placements else None
            mask = logits.argmax(dim=0) if placement is None else mask_over_photo(logits, placement)
            target = output_dir / f"{Path(image).stem}.mask.png"
            save_image(Image.fromarray(mask.to(torch.uint8).numpy()), target)
            counts = torch.bincount(mask.flatten().long(), minlength=IGNORED + 1)[:len(class_names)].float()
            shares = counts / counts.sum().clamp_min(1)
            results.append({"image": str(image), "mask": str(target),
                            "pixels": {name: round(share, 6) for name, share in zip(class_names, shares.tolist())},
                            **({"predicted_box": [round(v, 2) for v in placement.box]} if placement else {})})
        return results

    def describe(self, result: dict[str, Any]) -> str:
        shares = ", ".join(f"{name} {share:.1%}" for name, share in result["pixels"].items())
        return f"{result['image']}: wrote {result['mask']} ({shares})"


def mask_over_photo(logits: torch.Tensor, placement, rows: int = 512) -> torch.Tensor:
    """Class ids (H, W) at the photo's size from logits (C, h, w) of its crop: each photo pixel
    inside the crop takes the argmax of the logits interpolated at its centre (bilinear, as the
    resize was), the rest IGNORED. Built ``rows`` at a time: a 12-megapixel photo of 21 classes
    would otherwise need a gigabyte of interpolated logits."""
    import torch.nn.functional as F

    height, width = placement.original_size
    x0, y0, x1, y1 = placement.box
    across = (torch.arange(width, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1  # grid_sample's [-1, 1]
    mask = torch.empty(height, width, dtype=torch.uint8)
    for top in range(0, height, rows):
        down = (torch.arange(top, min(top + rows, height), dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
        grid = torch.stack(torch.meshgrid(across, down, indexing="xy"), dim=-1)
        sampled = F.grid_sample(logits[None].float(), grid[None], mode="bilinear", padding_mode="border",
                                align_corners=False)[0]
        outside = (grid.abs() > 1).any(dim=-1)
        mask[top:top + len(down)] = sampled.argmax(dim=0).to(torch.uint8).masked_fill_(outside, IGNORED)
    return mask


class SegmentationMetrics(Metrics):
    """A confusion matrix over pixels, summed on the device; pixel accuracy, mean IoU and mean Dice.

    Class means run over the classes present in the target or the prediction, so a class absent
    from both does not count as a perfect (or a failed) class.
    """

    headline = "pixel acc"
    per_class_name = "IoU"

    def __init__(self, num_classes: int, device: torch.device, detailed: bool) -> None:
        self.num_classes, self.detailed = num_classes, detailed
        self.loss_sum = torch.zeros((), device=device)
        self.count = torch.zeros((), device=device)
        self.confusion = torch.zeros(num_classes * num_classes, device=device)
        self.seen = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        count = target.shape[0]
        self.seen += count
        self.loss_sum += loss.detach().float() * count
        pred = logits.argmax(dim=1).flatten()
        truth = target.flatten()
        valid = (truth >= 0) & (truth < self.num_classes)
        # ignore_index pixels go to one extra bin that is dropped: a weighted bincount would have
        # no deterministic CUDA kernel, and --deterministic must keep working.
        cells = torch.where(valid, truth * self.num_classes + pred, torch.full_like(truth, self.num_classes**2))
        self.confusion += torch.bincount(cells, minlength=self.num_classes**2 + 1)[:-1]


    def running(self) -> tuple[float, float]:
        matrix = self.confusion.view(self.num_classes, -1)
        return self.loss_sum.item() / max(self.seen, 1), (matrix.diag().sum() / matrix.sum().clamp_min(1)).item()

    def tensors(self) -> list[torch.Tensor]:
        self.count.fill_(self.seen)
        return [self.loss_sum, self.count, self.confusion]

    def _pixel_accuracy(self) -> float:
        """Share of counted pixels predicted right; NaN with no counted pixel (undefined, not 0 or 1)."""
        matrix = self.confusion.view(self.num_classes, -1)
        return (matrix.diag().sum() / matrix.sum()).item() if matrix.sum() > 0 else math.nan

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        matrix = self.confusion.view(self.num_classes, -1).double()
        hits, truth, predicted = matrix.diag(), matrix.sum(1), matrix.sum(0)
        union = truth + predicted - hits
        present = union > 0
        iou = torch.where(present, hits / union.clamp_min(1), torch.zeros_like(hits))
        dice = torch.where(present, 2 * hits / (truth + predicted).clamp_min(1), torch.zeros_like(hits))
        return iou, dice, present

    def compute(self, prefix: str) -> dict[str, float]:
        values = {f"{prefix}_loss": self.loss_sum.item() / max(self.count.item(), 1.0),
                  f"{prefix}_pixel_acc": self._pixel_accuracy()}
        if self.detailed:  # over the classes present; none present (no counted pixel): undefined
            iou, dice, present = self._scores()
            classes = int(present.sum())
            values[f"{prefix}_miou"] = (iou.sum() / classes).item() if classes else math.nan
            values[f"{prefix}_mdice"] = (dice.sum() / classes).item() if classes else math.nan
        return values

    def per_class(self) -> list[float | None]:
        """IoU of each class (None for a class absent from target and prediction)."""
        iou, _, present = self._scores()
        return [value if seen else None for value, seen in zip(iou.tolist(), present.tolist())]

    def confusion_matrix(self) -> list[list[int]]:
        """Pixels by (true class, predicted class)."""
        return self.confusion.view(self.num_classes, -1).long().tolist()
