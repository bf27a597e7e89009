"""Single-label classification: one class per image, logits (N, C), accuracy and a confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cvcore import Metrics, Task


class Classification(Task):
    default_monitor = "val_acc1"

    def metric_names(self, num_classes: int, detailed: bool) -> list[str]:
        return ["loss", "acc1", *(["acc5"] if detailed and num_classes > 5 else [])]

    def metrics(self, num_classes: int, device, detailed: bool) -> ClassificationMetrics:
        return ClassificationMetrics(num_classes, device, detailed)

    def expected_output(self, info) -> tuple[tuple[int, ...], str]:
        return (2, info.num_classes), f"(N, {info.num_classes})"

    def check_target(self, target: torch.Tensor, info) -> str | None:
        if target.shape != ():
            return f"target shape {tuple(target.shape)}, expected a class id ()"
        if not 0 <= int(target) < info.num_classes:
            return f"class id {int(target)} out of range for {info.num_classes} classes"
        return None

    def example_target(self, info, batch: int) -> torch.Tensor:
        return torch.arange(batch) % info.num_classes

    def predict(self, output: torch.Tensor, images: list[Path], class_names: list[str], *, topk: int,
                output_dir: Path) -> list[dict[str, Any]]:
        """The top-k classes of each image, with softmax probabilities."""
        values, indices = output.float().softmax(dim=1).topk(min(topk, len(class_names)), dim=1)
        return [{"image": str(image), "top": [{"class": class_names[i], "probability": round(p, 6)}
                                              for p, i in zip(v.tolist(), ix.tolist())]}
                for image, v, ix in zip(images, values, indices)]

    def describe(self, result: dict[str, Any]) -> str:
        return f"{result['image']}: " + ", ".join(f"{t['class']} {t['probability']:.3f}" for t in result["top"])


class ClassificationMetrics(Metrics):
    """Sums of loss, top-1 (and in validation top-5 and per-class) hits; ``compute`` makes fractions.

    Training tracks loss and top-1 only, and adds its batches PENDING at a time: each batch's
    update keeps references (no tensor operation, which on a small model shows in the step), and
    every PENDING-th adds them all in a few operations. Top-5 is reported only for more than 5
    classes, where it can differ from 1.
    """

    PENDING = 32  # batches whose logits are kept before they are added (bounded memory)

    def __init__(self, num_classes: int, device: torch.device, detailed: bool) -> None:
        self.num_classes, self.detailed = num_classes, detailed
        self.k = min(5, num_classes)
        self.sums = torch.zeros(3, device=device)  # loss * count, top-1 hits, top-k hits
        self.count = torch.zeros((), device=device)
        self.confusion = torch.zeros(num_classes * num_classes, device=device)  # row: truth, column: prediction
        self.seen = 0  # images this process has counted, known on the host without a sync
        self.pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (loss, logits, target)

    def update(self, logits: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        """Add a batch (``logits`` detached, as the Trainer gives them)."""
        self.seen += target.shape[0]
        if not self.detailed:
            self.pending.append((loss.detach(), logits, target))
            if len(self.pending) == self.PENDING:
                self._add_pending()
            return
        count = target.shape[0]
        top_indices = logits.topk(self.k, dim=1).indices
        top = top_indices == target.unsqueeze(1)
        self.sums += torch.stack([loss.detach().float() * count, top[:, 0].sum().float(), top.any(dim=1).sum().float()])
        cells = target * self.num_classes + top_indices[:, 0]
        self.confusion += torch.bincount(cells, minlength=self.num_classes**2)

    def _add_pending(self) -> None:
        """Each pending batch's loss times its size, and its top-1 hits, into the sums."""
        if not self.pending:
            return
        losses, logits, targets = zip(*self.pending)
        self.pending = []
        loss_sum = torch.cat([loss.float().expand(len(target)) for loss, target in zip(losses, targets)]).sum()
        hits = (torch.cat(logits).argmax(dim=1) == torch.cat(targets)).sum()
        self.sums[:2] += torch.stack([loss_sum, hits.float()])

    headline = "acc"
    per_class_name = "accuracy"


    def running(self) -> tuple[float, float]:
        """(mean loss, accuracy) so far on this process, for the progress bar (a host sync)."""
        self._add_pending()
        loss, top1, _ = self.sums.tolist()
        count = max(self.seen, 1)
        return loss / count, top1 / count

    def tensors(self) -> list[torch.Tensor]:
        """The sums, for an all-reduce across processes; ``count`` then holds every process's images."""
        self._add_pending()
        self.count.fill_(self.seen)
        return [self.sums, self.count, self.confusion]

    def compute(self, prefix: str) -> dict[str, float]:
        """Fractions from the sums (after :meth:`tensors` was all-reduced)."""
        self._add_pending()
        loss, top1, top5 = self.sums.tolist()  # the one host-device sync of the epoch
        count = max(self.count.item(), 1.0)
        values = {f"{prefix}_loss": loss / count, f"{prefix}_acc1": top1 / count}
        if self.detailed and self.num_classes > self.k:
            values[f"{prefix}_acc5"] = top5 / count
        return values

    def per_class(self) -> list[float | None]:
        """Accuracy of each class (None for a class absent from the validation set)."""
        matrix = self.confusion.view(self.num_classes, -1)
        hits, counts = matrix.diag().tolist(), matrix.sum(1).tolist()
        return [h / c if c else None for h, c in zip(hits, counts)]

    def confusion_matrix(self) -> list[list[int]]:
        return self.confusion.view(self.num_classes, -1).long().tolist()
