"""Detection metrics: in training the detector's loss terms, summed on the device; in validation
every image's detections and boxes kept on the device (concatenated across processes by the
Trainer), then COCO's twelve numbers and per-class AP from pycocotools, the reference."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import torch

import cvcore

COCO_NAMES = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
              "mar1", "mar10", "mar100", "mar_small", "mar_medium", "mar_large")  # COCOeval.stats, in order


class DetectionMetrics(cvcore.Metrics):
    headline = "loss"
    per_class_name = "AP"

    @staticmethod
    def names(detailed: bool) -> list[str]:
        """Training logs the loss (and each term the detector computes, named after it); validation
        COCO's twelve numbers."""
        return list(COCO_NAMES) if detailed else ["loss"]

    def __init__(self, num_classes: int, device, detailed: bool) -> None:
        self.num_classes, self.device, self.detailed = num_classes, device, detailed
        self.loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        self.images = torch.zeros((), device=device, dtype=torch.float64)
        self.terms: dict[str, torch.Tensor] = {}
        self.found: list[torch.Tensor] = []
        self.truth: list[torch.Tensor] = []
        self._per_class: list[float | None] = []

    @torch.no_grad()
    def update(self, output, target, loss) -> None:
        count = len(target)
        self.seen += count
        self.images += count
        if self.detailed:  # validation: (N, D, 6) detections beside (N, M, 5) boxes
            self.found.append(output)
            self.truth.append(target)
            return
        self.loss_sum += loss.detach().double() * count
        for name, value in output.items():
            name = name if name.startswith("loss") else f"loss_{name}"  # FCOS says "classification"
            self.terms.setdefault(name, torch.zeros((), device=self.device, dtype=torch.float64))
            self.terms[name] += value.detach().double() * count

    def running(self) -> tuple[float, float]:
        images = max(self.images.item(), 1.0)
        return self.loss_sum.item() / images, self.loss_sum.item() / images

    def tensors(self) -> list[torch.Tensor]:
        return [self.loss_sum, self.images, *(self.terms[name] for name in sorted(self.terms))]

    def rows(self) -> list[torch.Tensor]:
        if not self.detailed:
            return []
        self.found_rows = torch.cat(self.found) if self.found else torch.zeros(0, 1, 6, device=self.device)
        self.truth_rows = torch.cat(self.truth) if self.truth else torch.zeros(0, 1, 5, device=self.device)
        return [self.found_rows, self.truth_rows]

    def compute(self, prefix: str) -> dict[str, float]:
        if not self.detailed:
            images = max(self.images.item(), 1.0)
            return {f"{prefix}_loss": self.loss_sum.item() / images,
                    **{f"{prefix}_{name}": value.item() / images for name, value in sorted(self.terms.items())}}
        if not hasattr(self, "found_rows"):
            self.rows()
        stats, self._per_class = coco_evaluation(self.found_rows.cpu().numpy(), self.truth_rows.cpu().numpy(),
                                                 self.num_classes)
        return {f"{prefix}_{name}": value for name, value in zip(COCO_NAMES, stats)}

    def per_class(self) -> list[float | None]:
        return self._per_class


def coco_documents(found: np.ndarray, truth: np.ndarray, num_classes: int) -> tuple[dict, list[dict]]:
    """The ground truth as a COCO instances document and the detections as COCO results: image i
    is image id i, class c category id c, boxes as (x, y, width, height)."""
    height_width = {"height": 1, "width": 1}  # COCOeval uses neither for boxes
    annotations = []
    for image, rows in enumerate(truth):
        for x0, y0, x1, y1, label in rows[rows[:, 4] >= 0]:
            annotations.append({"id": len(annotations) + 1, "image_id": image, "category_id": int(label),
                                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                                "area": float((x1 - x0) * (y1 - y0)), "iscrowd": 0})
    ground = {"images": [{"id": image, **height_width} for image in range(len(truth))],
              "annotations": annotations, "categories": [{"id": c} for c in range(num_classes)]}
    results = [{"image_id": image, "category_id": int(label), "score": float(score),
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]}
               for image, rows in enumerate(found) for x0, y0, x1, y1, score, label in rows[rows[:, 5] >= 0]]
    return ground, results


def coco_evaluation(found: np.ndarray, truth: np.ndarray, num_classes: int) -> tuple[list[float], list[float | None]]:
    """COCOeval's twelve numbers (NaN where COCO says -1: nothing to measure) and each class's
    AP@[.5:.95] (None for a class with no box), computed by pycocotools itself."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise cvcore.ConfigError("Detection metrics need pycocotools: pip install 'cvcore[detection]'.") from None
    ground, results = coco_documents(found, truth, num_classes)
    if not ground["annotations"]:
        return [math.nan] * len(COCO_NAMES), [None] * num_classes
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        truth_api = COCO()
        truth_api.dataset = ground
        truth_api.createIndex()
        if not results:  # loadRes refuses an empty list; no detection scores 0 where there are boxes
            return [0.0] * len(COCO_NAMES), [0.0 if _has_boxes(ground, c) else None for c in range(num_classes)]
        evaluation = COCOeval(truth_api, truth_api.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [math.nan if value < 0 else float(value) for value in evaluation.stats]
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # IoU x recall x class, all areas, 100 detections
    per_class = []
    for index in range(num_classes):
        values = precision[:, :, index]
        per_class.append(float(values[values > -1].mean()) if (values > -1).any() else None)
    return stats, per_class


def _has_boxes(ground: dict, category: int) -> bool:
    return any(annotation["category_id"] == category for annotation in ground["annotations"])
