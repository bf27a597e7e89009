"""The detection task: padded box targets, the detector's own losses in training, detections in
evaluation, boxes moved by the affine maps that geometric transforms report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import cvcore
from cvcore import move_points
from cvcore_detection.metrics import DetectionMetrics

PADDING = -1  # the class of the rows that pad an image's boxes to the batch's count
MIN_SIDE = 1.0  # pixels: a box narrower or lower than this after a transform is dropped


def box_lists(targets: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """torchvision's targets, one dict per image: the boxes that are not padding and their classes
    shifted by one (torchvision's detectors keep 0 for the background). Selecting each image's
    boxes reads their count back to the host: detectors take lists of varying length."""
    return [{"boxes": rows[rows[:, 4] != PADDING, :4], "labels": rows[rows[:, 4] != PADDING, 4].long() + 1}
            for rows in targets]


def padded_detections(output: list[dict[str, torch.Tensor]], most: int) -> torch.Tensor:
    """(N, most, 6) rows (x0, y0, x1, y1, score, class) per image, class -1 where there are fewer."""
    rows = torch.full((len(output), most, 6), float(PADDING), device=output[0]["boxes"].device if output else "cpu")
    for index, found in enumerate(output):
        kept = min(len(found["boxes"]), most)
        rows[index, :kept] = torch.cat([found["boxes"][:kept], found["scores"][:kept, None],
                                        found["labels"][:kept, None].float() - 1], 1)
    return rows


class WeightedSum:
    """The loss to back-propagate: the detector's loss terms summed, each times its weight."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = weights

    def __call__(self, terms: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        return sum(value * self.weights.get(name, 1.0) for name, value in terms.items())


class ExportedDetector(torch.nn.Module):
    """A torchvision detector as ONNX gives it: one image in, its detections as three tensors."""

    def __init__(self, detector: torch.nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        (found,) = self.detector(images)
        return found["boxes"], found["scores"], found["labels"] - 1


class Detection(cvcore.Task):
    default_monitor = "val_map"
    targets_have_coordinates = True
    items = "object classes"
    DETECTIONS = 100  # kept per image for the metrics, as COCO counts them (AR@100)

    def metric_names(self, num_classes: int, detailed: bool) -> list[str]:
        return DetectionMetrics.names(detailed)

    def metrics(self, num_classes: int, device, detailed: bool) -> DetectionMetrics:
        return DetectionMetrics(num_classes, device, detailed)

    def expected_output(self, info):
        return None  # a list of detections per image: the check runs the model only

    def example_info(self):
        return cvcore.DataInfo(num_classes=3, class_names=["a", "b", "c"], in_channels=3, image_size=(32, 32),
                               mean=(0.0,) * 3, std=(1.0,) * 3)

    def example_target(self, info, batch: int) -> torch.Tensor:
        height, width = info.image_size
        rows = torch.full((batch, 2, 5), float(PADDING))
        rows[:, 0] = torch.tensor([width * 0.1, height * 0.2, width * 0.6, height * 0.7, 0.0])
        rows[::2, 1] = torch.tensor([width * 0.5, height * 0.5, width * 0.9, height * 0.9, info.num_classes - 1.0])
        return rows

    def example_output(self, info, batch: int) -> dict[str, torch.Tensor]:
        return {"loss_classifier": torch.tensor(0.7, requires_grad=True),
                "loss_box_reg": torch.tensor(0.3, requires_grad=True)}

    def check_target(self, target: torch.Tensor, info) -> str | None:
        if target.dim() != 2 or target.shape[1] != 5:
            return f"target of shape {tuple(target.shape)}, expected (boxes, 5): x0, y0, x1, y1, class"
        real = target[target[:, 4] != PADDING]
        height, width = info.image_size
        if ((real[:, 4] < 0) | (real[:, 4] >= info.num_classes)).any():
            return f"a class id outside 0..{info.num_classes - 1}"
        if ((real[:, 2] <= real[:, 0]) | (real[:, 3] <= real[:, 1])).any():
            return "a box with x1 <= x0 or y1 <= y0"
        if ((real[:, :2] < 0).any() or (real[:, 2] > width + 1e-3).any() or (real[:, 3] > height + 1e-3).any()):
            return "a box outside the image"
        return None

    def move_targets(self, targets: torch.Tensor, matrices: torch.Tensor, size, info) -> torch.Tensor:
        """Each box's four corners moved, their bounding box clipped to the image; a box that leaves
        less than MIN_SIDE pixels a side becomes padding (torchvision's SanitizeBoundingBoxes)."""
        x0, y0, x1, y1, classes = targets.unbind(-1)
        corners = torch.stack([torch.stack([x0, y0], -1), torch.stack([x1, y0], -1),
                               torch.stack([x0, y1], -1), torch.stack([x1, y1], -1)], 2)  # (N, M, 4, 2)
        moved = move_points(corners.flatten(1, 2), matrices).view_as(corners)
        height, width = size
        limits = torch.tensor([width, height], device=targets.device, dtype=targets.dtype)
        low = moved.amin(2).clamp(min=0).minimum(limits)
        high = moved.amax(2).clamp(min=0).minimum(limits)
        kept = (classes != PADDING) & ((high - low) >= MIN_SIDE).all(-1)
        return torch.cat([low, high, torch.where(kept, classes, float(PADDING))[..., None]], -1)

    def training_step(self, model, images, targets, loss_fn):
        terms = model(images, box_lists(targets))
        return loss_fn(terms, targets), terms

    def validation_step(self, model, images, targets, loss_fn):
        found = model(images)
        return torch.full((), float("nan"), device=images.device), padded_detections(found, self.DETECTIONS)

    def onnx_form(self, model):
        """One image a call, post-processing (score threshold, NMS) included: boxes (K, 4) in the
        input's pixels, scores (K,), classes (K,) as the data's class ids."""
        from cvcore.export import OnnxForm

        return OnnxForm(ExportedDetector(model).train(model.training), ("boxes", "scores", "classes"), per_image=True)

    def from_onnx(self, outputs):
        boxes, scores, classes = outputs
        return [{"boxes": boxes, "scores": scores, "labels": classes + 1}]

    def predict(self, output, images: list[Path], class_names: list[str], *, topk: int, output_dir: Path,
                placements=None, min_score: float = 0.5) -> list[dict[str, Any]]:
        """Per image the boxes scoring at least ``min_score``, in the photo's pixels, with their
        classes and scores, and a PNG of the photo with them drawn in ``output_dir``."""
        from cvcore.files import make_directory

        make_directory(output_dir)
        results = []
        for index, (image, found) in enumerate(zip(images, output)):
            kept = found["scores"] >= min_score
            boxes = found["boxes"][kept].float()
            if placements:
                (x0, y0), (x1, y1) = (placements[index].to_original(boxes[:, i], boxes[:, i + 1]) for i in (0, 2))
                boxes = torch.stack([x0, y0, x1, y1], 1)
            names = [class_names[int(label) - 1] for label in found["labels"][kept]]
            picture = output_dir / f"{Path(image).stem}.boxes.png"
            _draw(image, boxes, names, picture)
            results.append({"image": str(image), "boxes": [[round(v, 2) for v in box] for box in boxes.tolist()],
                             "labels": names, "scores": [round(v, 4) for v in found["scores"][kept].tolist()],
                             "picture": str(picture)})
        return results

    def describe(self, result: dict[str, Any]) -> str:
        found = ", ".join(f"{name} {score:.2f}" for name, score in zip(result["labels"], result["scores"]))
        return f"{result['image']}: {len(result['boxes'])} boxes ({found or 'none'}); drew {result['picture']}"


def _draw(image: Path, boxes: torch.Tensor, names: list[str], target: Path) -> None:
    """The photo, read as cv predict reads it, with the boxes and their class names drawn."""
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor
    from torchvision.utils import draw_bounding_boxes

    from cvcore.files import save_image
    from cvcore.images import read_image

    photo = pil_to_tensor(read_image(image, 3))
    drawn = draw_bounding_boxes(photo, boxes, labels=names, colors="red", width=2) if len(boxes) else photo
    save_image(Image.fromarray(drawn.permute(1, 2, 0).numpy()), target)
