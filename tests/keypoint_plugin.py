"""A third-party keypoints plugin, written against the public API only, as the plugin contract's
proof: K landmarks per image, targets (K, 2) in pixels, NME and PCK, a Wing loss, and a geometric
transform of its own. Registered in the tests with cvcore.testing.plugin_registered(..., name="kp")."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import cvcore
from cvcore import Between

POINTS = ("red", "green")  # one dot per point, drawn in its own channel


@cvcore.hookimpl
def register_tasks(register):
    register("keypoints", Keypoints, output="vector", loss="kp:wing")


@cvcore.hookimpl
def register_datasets(register):
    register("kp_dots", kp_dots, task="kp:keypoints")


@cvcore.hookimpl
def register_losses(register):
    register("wing", wing, tasks=("kp:keypoints",))


@cvcore.hookimpl
def register_transforms(register):
    # It moves no masks (a geometric transform must, for segmentation): it says which task it serves.
    register("shift", shift, tasks=("kp:keypoints",))


def kp_dots(*, count: int = 256, size: int = 32, margin: int = 0, seed: int = 0):
    """Black images with a red and a green dot; the targets are the dots' centres.

    :param count: training images (validation gets a quarter as many).
    :param size: side of the images the model sees.
    :param margin: pixels stored beyond the image on every side (centre-cropped, as the folder cache's).
    :param seed: seed of the generator.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    stored = size + 2 * margin

    def split(n):
        centres = margin + 3 + torch.randint(0, size - 6, (n, len(POINTS), 2), generator=generator).float()
        images = torch.zeros(n, 3, stored, stored, dtype=torch.uint8)
        for i, points in enumerate(centres.long().tolist()):
            for channel, (x, y) in enumerate(points):
                images[i, channel, y - 1:y + 2, x - 1:x + 2] = 255  # pixels x-1..x+1: centre x + 0.5
        return cvcore.TensorImages(images, centres + 0.5)

    info = cvcore.DataInfo(task="kp:keypoints", num_classes=len(POINTS), class_names=POINTS, in_channels=3,
                           image_size=(size, size), mean=(0.1, 0.1, 0.0), std=(0.3, 0.3, 1.0))
    return cvcore.DataSplits(split(count), split(max(count // 4, 1)), info)


def wing(*, width: Annotated[float, Between(0.1)] = 5.0, curvature: Annotated[float, Between(0.01)] = 0.5):
    """Wing loss (Feng et al., 2018) on pixel coordinates: log-shaped near 0, L1 beyond ``width``.

    :param width: where the loss turns from logarithmic to linear (pixels).
    :param curvature: the curvature of the logarithmic part.
    """
    import torch

    def loss(output, target):
        error = (output.float() - target.flatten(1)).abs()
        offset = width - width * math.log1p(width / curvature)
        return torch.where(error < width, width * torch.log1p(error / curvature), error - offset).mean()

    return loss


def shift(*, pixels: Annotated[int, Between(1, 64)] = 2):
    """Translate each image by up to ``pixels`` in x and y (black comes in), reporting the move.

    :param pixels: largest shift, each way.
    """
    return Shift(pixels)


class Shift(cvcore.Transform):
    geometric = reports_affine = True

    def __init__(self, pixels: int) -> None:
        self.pixels = pixels

    def moved(self, images, targets, generator):
        import torch
        import torch.nn.functional as F

        count, pad = len(images), self.pixels
        offsets = torch.randint(0, 2 * pad + 1, (count, 2), generator=generator, device=images.device)
        padded = F.pad(images, (pad,) * 4)
        rows = torch.arange(images.shape[-2], device=images.device)
        columns = torch.arange(images.shape[-1], device=images.device)
        index_y = (rows[None] + offsets[:, 1:2])[:, None, :, None].expand(-1, images.shape[1], -1, padded.shape[-1])
        picked = padded.gather(2, index_y)
        index_x = (columns[None] + offsets[:, 0:1])[:, None, None, :].expand(-1, images.shape[1], images.shape[-2], -1)
        out = picked.gather(3, index_x)
        matrices = torch.eye(3, device=images.device).repeat(count, 1, 1)
        matrices[:, :2, 2] = pad - offsets.float()
        return out, targets, matrices


class Keypoints(cvcore.Task):
    default_monitor = "val_pck"
    items = "keypoints"
    minimized = ("nme",)
    targets_have_coordinates = True
    PCK_SHARE = 0.1  # a point is correct within 10% of the image side

    def output_size(self, info) -> int:
        return 2 * info.num_classes

    def metric_names(self, num_classes: int, detailed: bool) -> list[str]:
        return ["loss", "nme", "pck"]

    def metrics(self, num_classes: int, device, detailed: bool):
        return PointMetrics(device)

    def expected_output(self, info) -> tuple[tuple[int, ...], str]:
        return (2, 2 * info.num_classes), f"(N, {2 * info.num_classes}): x, y of each point"

    def example_target(self, info, batch: int):
        import torch

        return torch.rand(batch, info.num_classes, 2) * torch.tensor(info.image_size[::-1]).float()

    def check_target(self, target, info) -> str | None:
        if tuple(target.shape) != (info.num_classes, 2):
            return f"target {tuple(target.shape)}, expected ({info.num_classes}, 2)"
        return None

    def move_targets(self, targets, matrices, size, info):
        return cvcore.move_points(targets, matrices)

    def predict(self, output, images: list[Path], class_names: list[str], *, topk: int, output_dir: Path,
                placements=None) -> list[dict[str, Any]]:
        results = []
        for index, (image, row) in enumerate(zip(images, output)):
            points = row.view(-1, 2)
            if placements:
                points = placements[index].to_original(points[:, 0], points[:, 1])
                points = list(zip(points[0].tolist(), points[1].tolist()))
            else:
                points = points.tolist()
            results.append({"image": str(image), **{name: [round(v, 2) for v in point]
                                                    for name, point in zip(class_names, points)}})
        return results

    def describe(self, result: dict[str, Any]) -> str:
        return f"{result['image']}: " + ", ".join(f"{k} {v}" for k, v in result.items() if k != "image")


class PointMetrics(cvcore.Metrics):
    """Sums of loss, normalised error and correct points (in all, and per point), on the device."""

    headline = "pck"
    per_class_name = "PCK"  # per point: the data's items are the points, the output has 2 numbers each

    def __init__(self, device) -> None:
        import torch

        # loss, nme, correct, images, then correct per point
        self.sums = torch.zeros(4 + len(POINTS), device=device, dtype=torch.float64)

    def update(self, output, target, loss) -> None:
        import torch

        self.seen += len(target)
        side = 32.0  # the images' side: errors are normalised by it
        error = (output.float().view_as(target) - target).norm(dim=-1) / side
        correct = (error < Keypoints.PCK_SHARE).double()
        self.sums += torch.cat([torch.stack([loss.detach().double() * len(target), error.mean(1).sum().double(),
                                             correct.mean(1).sum(), correct.new_tensor(float(len(target)))]),
                                correct.sum(0)])

    def running(self) -> tuple[float, float]:
        loss, _, correct, images = self.sums[:4].tolist()
        return loss / max(images, 1), correct / max(images, 1)

    def tensors(self):
        return [self.sums]

    def compute(self, prefix: str) -> dict[str, float]:
        loss, nme, correct, images = self.sums[:4].tolist()
        images = max(images, 1)
        return {f"{prefix}_loss": loss / images, f"{prefix}_nme": nme / images, f"{prefix}_pck": correct / images}

    def per_class(self) -> list[float | None]:
        return (self.sums[4:] / self.sums[3].clamp_min(1)).tolist()
