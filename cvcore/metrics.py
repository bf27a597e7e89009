"""Metrics summed on the device during an epoch and read back once at its end (no per-step sync)."""

from __future__ import annotations

import torch


class ClassificationMetrics:
    """Sums of loss, top-1 (and in validation top-5 and per-class) hits; ``compute`` makes fractions.

    Training tracks loss and top-1 only: top-5 and per-class counts cost a few kernels per step,
    which is measurable on small models (benchmarks/overhead.py).
    """

    def __init__(self, num_classes: int, device: torch.device, detailed: bool) -> None:
        self.num_classes, self.detailed = num_classes, detailed
        self.k = min(5, num_classes)
        self.sums = torch.zeros(3, device=device)  # loss * count, top-1 hits, top-k hits
        self.count = torch.zeros((), device=device)
        self.class_hits = torch.zeros(num_classes, device=device)
        self.class_counts = torch.zeros(num_classes, device=device)
        self.seen = 0  # images this process has counted, known on the host without a sync

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        count = target.shape[0]
        self.seen += count
        if not self.detailed:
            top1 = (logits.argmax(dim=1) == target).sum()
            self.sums[:2] += torch.stack([loss.detach().float() * count, top1.float()])
            return
        top = logits.topk(self.k, dim=1).indices == target.unsqueeze(1)
        correct = top[:, 0]
        self.sums += torch.stack([loss.float() * count, correct.sum().float(), top.any(dim=1).sum().float()])
        self.class_counts += torch.bincount(target, minlength=self.num_classes)
        self.class_hits += torch.bincount(target, weights=correct.float(), minlength=self.num_classes)

    def tensors(self) -> list[torch.Tensor]:
        """The sums, for an all-reduce across processes; ``count`` then holds every process's images."""
        self.count.fill_(self.seen)
        return [self.sums, self.count, self.class_hits, self.class_counts]

    def compute(self, prefix: str) -> dict[str, float]:
        """Fractions from the sums (after :meth:`tensors` was all-reduced)."""
        loss, top1, top5 = self.sums.tolist()  # the one host-device sync of the epoch
        count = max(self.count.item(), 1.0)
        values = {f"{prefix}_loss": loss / count, f"{prefix}_acc1": top1 / count}
        if self.detailed:
            values[f"{prefix}_acc5"] = top5 / count
        return values

    def per_class(self) -> list[float | None]:
        """Accuracy of each class (None for a class absent from the validation set)."""
        hits, counts = self.class_hits.tolist(), self.class_counts.tolist()
        return [h / c if c else None for h, c in zip(hits, counts)]

