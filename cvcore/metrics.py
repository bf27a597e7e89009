"""Metrics summed on the device during an epoch and read back once at its end (no per-step sync)."""

from __future__ import annotations

import torch


class ClassificationMetrics:
    """Sums of loss, top-1 / top-5 hits and per-class hits; ``compute`` turns them into fractions."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.num_classes = num_classes
        self.topk = (1, min(5, num_classes))
        self.totals = torch.zeros(4, device=device, dtype=torch.float64)  # loss, top1, top5, count
        self.class_hits = torch.zeros(num_classes, device=device, dtype=torch.float64)
        self.class_counts = torch.zeros(num_classes, device=device, dtype=torch.float64)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        hits = accuracy_hits(logits, target, self.topk)
        count = target.new_tensor(target.shape[0], dtype=torch.float64)
        self.totals += torch.stack([loss.detach().double() * count, hits[0], hits[1], count])

    @torch.no_grad()
    def update_per_class(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        correct = logits.argmax(dim=1) == target
        self.class_counts += torch.bincount(target, minlength=self.num_classes)
        self.class_hits += torch.bincount(target[correct], minlength=self.num_classes)

    def tensors(self) -> list[torch.Tensor]:
        """The sums, for an all-reduce across processes."""
        return [self.totals, self.class_hits, self.class_counts]

    def compute(self, prefix: str) -> dict[str, float]:
        loss, top1, top5, count = self.totals.tolist()  # the one host-device sync of the epoch
        count = max(count, 1.0)
        return {f"{prefix}_loss": loss / count, f"{prefix}_acc1": top1 / count, f"{prefix}_acc5": top5 / count}

    def per_class(self) -> list[float | None]:
        """Accuracy of each class (None for a class absent from the validation set)."""
        hits, counts = self.class_hits.tolist(), self.class_counts.tolist()
        return [h / c if c else None for h, c in zip(hits, counts)]


def accuracy_hits(logits: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...]) -> list[torch.Tensor]:
    """Number of samples whose target is among the top-k predictions, for each k (as tensors)."""
    top = logits.topk(max(topk), dim=1).indices
    matches = top == target.unsqueeze(1)
    return [matches[:, :k].any(dim=1).sum().double() for k in topk]
