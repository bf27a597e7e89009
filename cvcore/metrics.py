"""Metrics summed on the device during an epoch and read back once at its end (no per-step sync)."""

from __future__ import annotations

import torch


def metric_mode(name: str) -> str:
    """'min' for a metric where lower is better (a loss), else 'max': the one rule for monitors."""
    return "min" if name.endswith("loss") else "max"


def logged_names(task: str | None = None, num_classes: int = 1000) -> list[str]:
    """The metrics each epoch logs for ``task`` (for any task when None): what a monitor may name."""
    kinds = [SegmentationMetrics if task == "segmentation" else ClassificationMetrics] if task else \
        [ClassificationMetrics, SegmentationMetrics]
    return sorted({f"{prefix}_{name}" for kind in kinds for prefix, detailed in (("train", False), ("val", True))
                   for name in kind.names(num_classes, detailed)})


def metrics_for(task: str, num_classes: int, device: torch.device, detailed: bool):
    """The metrics of a task: classification (accuracy) or segmentation (pixel accuracy, IoU, Dice)."""
    kind = SegmentationMetrics if task == "segmentation" else ClassificationMetrics
    return kind(num_classes, device, detailed)


class ClassificationMetrics:
    """Sums of loss, top-1 (and in validation top-5 and per-class) hits; ``compute`` makes fractions.

    Training tracks loss and top-1 only: top-5 and per-class counts cost a few kernels per step,
    which is measurable on small models (benchmarks/overhead.py). Top-5 is reported only for more
    than 5 classes, where it can differ from 1.
    """

    def __init__(self, num_classes: int, device: torch.device, detailed: bool) -> None:
        self.num_classes, self.detailed = num_classes, detailed
        self.k = min(5, num_classes)
        self.sums = torch.zeros(3, device=device)  # loss * count, top-1 hits, top-k hits
        self.count = torch.zeros((), device=device)
        self.confusion = torch.zeros(num_classes * num_classes, device=device)  # row: truth, column: prediction
        self.seen = 0  # images this process has counted, known on the host without a sync

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        count = target.shape[0]
        self.seen += count
        if not self.detailed:
            top1 = (logits.argmax(dim=1) == target).sum()
            self.sums[:2] += torch.stack([loss.detach().float() * count, top1.float()])
            return
        top_indices = logits.topk(self.k, dim=1).indices
        top = top_indices == target.unsqueeze(1)
        self.sums += torch.stack([loss.float() * count, top[:, 0].sum().float(), top.any(dim=1).sum().float()])
        cells = target * self.num_classes + top_indices[:, 0]
        self.confusion += torch.bincount(cells, minlength=self.num_classes**2)

    per_class_name = "accuracy"

    @staticmethod
    def names(num_classes: int, detailed: bool) -> list[str]:
        return ["loss", "acc1", *(["acc5"] if detailed and num_classes > 5 else [])]

    def running(self) -> tuple[float, float]:
        """(mean loss, accuracy) so far on this process, for the progress bar (a host sync)."""
        loss, top1, _ = self.sums.tolist()
        count = max(self.seen, 1)
        return loss / count, top1 / count

    def tensors(self) -> list[torch.Tensor]:
        """The sums, for an all-reduce across processes; ``count`` then holds every process's images."""
        self.count.fill_(self.seen)
        return [self.sums, self.count, self.confusion]

    def compute(self, prefix: str) -> dict[str, float]:
        """Fractions from the sums (after :meth:`tensors` was all-reduced)."""
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



class SegmentationMetrics:
    """A confusion matrix over pixels, summed on the device; pixel accuracy, mean IoU and mean Dice.

    Class means run over the classes present in the target or the prediction, so a class absent
    from both does not count as a perfect (or a failed) class.
    """

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

    @staticmethod
    def names(num_classes: int, detailed: bool) -> list[str]:
        return ["loss", "pixel_acc", *(["miou", "mdice"] if detailed else [])]

    def running(self) -> tuple[float, float]:
        matrix = self.confusion.view(self.num_classes, -1)
        return self.loss_sum.item() / max(self.seen, 1), (matrix.diag().sum() / matrix.sum().clamp_min(1)).item()

    def tensors(self) -> list[torch.Tensor]:
        self.count.fill_(self.seen)
        return [self.loss_sum, self.count, self.confusion]

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        matrix = self.confusion.view(self.num_classes, -1).double()
        hits, truth, predicted = matrix.diag(), matrix.sum(1), matrix.sum(0)
        union = truth + predicted - hits
        present = union > 0
        iou = torch.where(present, hits / union.clamp_min(1), torch.zeros_like(hits))
        dice = torch.where(present, 2 * hits / (truth + predicted).clamp_min(1), torch.zeros_like(hits))
        return iou, dice, present

    def compute(self, prefix: str) -> dict[str, float]:
        matrix = self.confusion.view(self.num_classes, -1)
        values = {f"{prefix}_loss": self.loss_sum.item() / max(self.count.item(), 1.0),
                  f"{prefix}_pixel_acc": (matrix.diag().sum() / matrix.sum().clamp_min(1)).item()}
        if self.detailed:
            iou, dice, present = self._scores()
            classes = max(int(present.sum()), 1)
            values[f"{prefix}_miou"] = (iou.sum() / classes).item()
            values[f"{prefix}_mdice"] = (dice.sum() / classes).item()
        return values

    def per_class(self) -> list[float | None]:
        """IoU of each class (None for a class absent from target and prediction)."""
        iou, _, present = self._scores()
        return [value if seen else None for value, seen in zip(iou.tolist(), present.tolist())]

    def confusion_matrix(self) -> list[list[int]]:
        """Pixels by (true class, predicted class)."""
        return self.confusion.view(self.num_classes, -1).long().tolist()
