"""Multi-label classification: any number of classes per image, logits (N, C), 0/1 targets (N, C).

Average precision is computed from per-class histograms of the sigmoid scores (``BINS`` bins),
summed on the device and across processes like every other metric: it equals the exact AP up to
ties between scores that fall in one bin (a width of 1/BINS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cvcore import Metrics, Task

BINS = 1000
THRESHOLD = 0.5


class Multilabel(Task):
    default_monitor = "val_map"

    def metric_names(self, num_classes: int, detailed: bool) -> list[str]:
        return ["loss", "f1", *(["map"] if detailed else [])]

    def metrics(self, num_classes: int, device, detailed: bool) -> MultilabelMetrics:
        return MultilabelMetrics(num_classes, device, detailed)

    def expected_output(self, info) -> tuple[tuple[int, ...], str]:
        return (2, info.num_classes), f"(N, {info.num_classes})"

    def check_target(self, target: torch.Tensor, info) -> str | None:
        if tuple(target.shape) != (info.num_classes,):
            return f"target shape {tuple(target.shape)}, expected one 0/1 entry per class ({info.num_classes},)"
        if not bool(((target == 0) | (target == 1)).all()):
            return "target values must be 0 or 1"
        return None

    def example_target(self, info, batch: int) -> torch.Tensor:
        return (torch.arange(batch * info.num_classes).view(batch, info.num_classes) % 3 == 0).float()

    def predict(self, output: torch.Tensor, images: list[Path], class_names: list[str], *, topk: int,
                output_dir: Path) -> list[dict[str, Any]]:
        """The classes scored at least 0.5 (sigmoid) per image, and the top-k scores."""
        scores = output.float().sigmoid()
        results = []
        for image, row in zip(images, scores):
            values, indices = row.topk(min(topk, len(class_names)))
            results.append({"image": str(image),
                            "labels": [class_names[i] for i in (row >= THRESHOLD).nonzero().flatten().tolist()],
                            "top": [{"class": class_names[i], "probability": round(p, 6)}
                                    for p, i in zip(values.tolist(), indices.tolist())]})
        return results

    def describe(self, result: dict[str, Any]) -> str:
        scores = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in result["top"])
        return f"{result['image']}: {', '.join(result['labels']) or '(no label)'}  [{scores}]"


class MultilabelMetrics(Metrics):
    """Loss, true/false positives and negatives at 0.5 per class (macro F1), and in validation
    score histograms of positives and negatives per class (AP, mean AP)."""

    headline = "f1"
    per_class_name = "AP"

    def __init__(self, num_classes: int, device: torch.device, detailed: bool) -> None:
        self.num_classes, self.detailed = num_classes, detailed
        self.loss_sum = torch.zeros((), device=device)
        self.count = torch.zeros((), device=device)
        self.outcomes = torch.zeros(3, num_classes, device=device)  # true positives, predicted, actual
        self.histograms = torch.zeros(2, num_classes * BINS, device=device)  # negatives, positives
        self.seen = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        self.seen += target.shape[0]
        self.loss_sum += loss.detach().float() * target.shape[0]
        scores, truth = logits.detach().float().sigmoid(), target > 0.5
        predicted = scores >= THRESHOLD
        self.outcomes += torch.stack([(predicted & truth).sum(0), predicted.sum(0), truth.sum(0)]).float()
        if self.detailed:
            bins = (scores * BINS).long().clamp_(0, BINS - 1) + torch.arange(self.num_classes, device=scores.device) * BINS
            for row, chosen in enumerate((~truth, truth)):
                self.histograms[row] += torch.bincount(bins[chosen], minlength=self.num_classes * BINS).float()

    def running(self) -> tuple[float, float]:
        return self.loss_sum.item() / max(self.seen, 1), self._f1().mean().item()

    def tensors(self) -> list[torch.Tensor]:
        self.count.fill_(self.seen)
        return [self.loss_sum, self.count, self.outcomes, self.histograms]

    def _f1(self) -> torch.Tensor:
        hits, predicted, actual = self.outcomes
        return 2 * hits / (predicted + actual).clamp_min(1)

    def _average_precision(self) -> torch.Tensor:
        """AP per class from the histograms: precision at each score threshold (high to low),
        weighted by the positives gained there; NaN for a class with no positive."""
        negatives, positives = self.histograms.double().view(2, self.num_classes, BINS).flip(-1)
        hits, total = positives.cumsum(-1), (positives + negatives).cumsum(-1)
        precision = hits / total.clamp_min(1)
        count = positives.sum(-1)
        return (precision * positives).sum(-1) / count.where(count > 0, torch.nan)

    def compute(self, prefix: str) -> dict[str, float]:
        values = {f"{prefix}_loss": self.loss_sum.item() / max(self.count.item(), 1.0),
                  f"{prefix}_f1": self._f1().mean().item()}
        if self.detailed:
            values[f"{prefix}_map"] = self._average_precision().nanmean().nan_to_num(0.0).item()
        return values

    def per_class(self) -> list[float | None]:
        """AP of each class (None for a class with no positive in the validation set)."""
        return [None if value != value else value for value in self._average_precision().tolist()]
