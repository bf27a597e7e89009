"""Multi-label classification: any number of classes per image, logits (N, C), 0/1 targets (N, C).

Average precision is exact, as scikit-learn's ``average_precision_score`` and torchmetrics'
``thresholds=None`` compute it: validation logits and targets are kept (on the device, gathered
across processes) and sorted once per epoch. Logits rather than sigmoid scores are kept, since a
confident model's sigmoids round to exactly 1.0 in float32 and would lose their ranking.
A class without a positive in the validation set has no AP and is left out of the mean (as COCO
leaves out categories without objects; scikit-learn and torchmetrics count it as 0).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from cvcore import Metrics, Task

THRESHOLD = 0.5
LOGIT_THRESHOLD = math.log(THRESHOLD / (1 - THRESHOLD))  # sigmoid(logit) >= THRESHOLD


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
    every logit and target (exact AP per class, mean AP)."""

    headline = "f1"
    per_class_name = "AP"

    def __init__(self, num_classes: int, device: torch.device, detailed: bool) -> None:
        self.num_classes, self.detailed = num_classes, detailed
        self.loss_sum = torch.zeros((), device=device)
        self.count = torch.zeros((), device=device)
        self.outcomes = torch.zeros(3, num_classes, device=device)  # true positives, predicted, actual
        self._batches: list[tuple[torch.Tensor, torch.Tensor]] = []  # (logits, truth) in validation
        self.logits = torch.zeros(0, num_classes, device=device)
        self.truth = torch.zeros(0, num_classes, dtype=torch.uint8, device=device)
        self._ap: torch.Tensor | None = None  # sorted for once per epoch: compute() and per_class() share it
        self.seen = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        self.seen += target.shape[0]
        self.loss_sum += loss.detach().float() * target.shape[0]
        logits, truth = logits.detach().float(), target > 0.5
        predicted = logits >= LOGIT_THRESHOLD
        self.outcomes += torch.stack([(predicted & truth).sum(0), predicted.sum(0), truth.sum(0)]).float()
        if self.detailed:
            self._batches.append((logits, truth.to(torch.uint8)))

    def running(self) -> tuple[float, float]:
        return self.loss_sum.item() / max(self.seen, 1), self._f1().mean().item()

    def tensors(self) -> list[torch.Tensor]:
        self.count.fill_(self.seen)
        return [self.loss_sum, self.count, self.outcomes]

    def rows(self) -> list[torch.Tensor]:
        if self._batches:
            self.logits = torch.cat([logits for logits, _ in self._batches])
            self.truth = torch.cat([truth for _, truth in self._batches])
            self._batches, self._ap = [], None
        return [self.logits, self.truth] if self.detailed else []

    def _f1(self) -> torch.Tensor:
        hits, predicted, actual = self.outcomes
        return 2 * hits / (predicted + actual).clamp_min(1)

    def _average_precision(self) -> torch.Tensor:
        """Exact AP per class: the precision at each distinct score (high to low), weighted by the
        share of positives gained there; tied scores form one threshold. NaN without a positive."""
        self.rows()
        if self._ap is None:
            self._ap = self._exact_average_precision()
        return self._ap

    def _exact_average_precision(self) -> torch.Tensor:
        if len(self.logits) == 0:
            return torch.full((self.num_classes,), torch.nan, dtype=torch.float64)
        ranked, order = self.logits.sort(dim=0, descending=True)
        hits = self.truth.gather(0, order).double()
        precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1, device=hits.device, dtype=hits.dtype).view(-1, 1)
        # Every position takes the precision at the end of its group of tied scores.
        positions = torch.arange(len(ranked), device=ranked.device).view(-1, 1).expand_as(ranked)
        group_ends = torch.ones_like(ranked, dtype=torch.bool)
        group_ends[:-1] = ranked[1:] != ranked[:-1]
        end_of_group = torch.where(group_ends, positions, len(ranked)).flip(0).cummin(0).values.flip(0)
        positives = hits.sum(0)
        return (hits * precision.gather(0, end_of_group)).sum(0) / positives.where(positives > 0, torch.nan)

    def compute(self, prefix: str) -> dict[str, float]:
        values = {f"{prefix}_loss": self.loss_sum.item() / max(self.count.item(), 1.0),
                  f"{prefix}_f1": self._f1().mean().item()}
        if self.detailed:
            values[f"{prefix}_map"] = self._average_precision().nanmean().item()
        return values

    def per_class(self) -> list[float | None]:
        """AP of each class (None for a class with no positive in the validation set)."""
        return [None if value != value else value for value in self._average_precision().tolist()]
