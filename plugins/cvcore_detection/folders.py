"""Detection data in the two formats practitioners have: COCO (images and an instances JSON) and
Ultralytics YOLO (a data YAML, images/ and labels/*.txt of normalised ``class cx cy w h``).

Images go through the folder cache (:mod:`cvcore.cache`: decoded once, whole, upright, 8-bit, the
shorter side resized to the data's size, as `cv predict` reads them); boxes are moved into each
stored image by its Placement, clipped, and dropped when less than a pixel is left. Validation
takes each image's centre square, as `cv predict` does. Every malformed file or line is reported
(the first few, and how many), before any image is decoded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

import cvcore
from cvcore.cache import image_split, stored_images, stored_placements
from cvcore.images import IMAGE_SUFFIXES
from cvcore_detection import CROP_AND_FLIP, IMAGENET_MEAN, IMAGENET_STD
from cvcore_detection.task import MIN_SIDE, PADDING

SHOWN = 5  # problems quoted in the error; the rest are counted


class Problems:
    """Malformed files and lines, gathered so that one error names them all at once."""

    def __init__(self, source: str) -> None:
        self.source, self.found = source, []

    def add(self, where: str, what: str) -> None:
        self.found.append(f"{where}: {what}")

    def raise_any(self) -> None:
        if self.found:
            more = f" (and {len(self.found) - SHOWN} more)" if len(self.found) > SHOWN else ""
            raise cvcore.DataError(f"{self.source} has {len(self.found)} problem(s){more}: "
                                   + "; ".join(self.found[:SHOWN]))


def stored(images: list[Path], boxes: list[list[list[float]]], size: int, *, split: str, cache: str,
           fractions: bool = False):
    """The images as the folder cache stores them, with their boxes (in the file's pixels, or in
    ``fractions`` of its sides) moved into the stored pixels, padded to the most boxes of an image
    (class -1). Where each image lies comes with the cache (its headers are read only when it is
    decoded), or, without one, from the headers."""
    if cache == "off":
        return image_split(images, _targets(boxes, stored_placements(images, size), fractions), size,
                           split=split, cache=cache)
    kept = stored_images(images, size, split=split, keep=cache)
    return cvcore.TensorImages(kept.pixels, _targets(boxes, kept.placements(), fractions), extents=kept.extents,
                               mapped=kept.mapped)


def _targets(boxes: list[list[list[float]]], placements, fractions: bool) -> torch.Tensor:
    """(N, most boxes, 5): each image's boxes in its stored pixels and their classes; -1 pads."""
    rows = [_moved(found, placement, fractions) for found, placement in zip(boxes, placements)]
    most = max([len(r) for r in rows] + [1])
    targets = torch.full((len(rows), most, 5), float(PADDING))
    for index, kept in enumerate(rows):
        if kept:
            targets[index, :len(kept)] = torch.tensor(kept)
    return targets


def _moved(boxes: list[list[float]], placement, fractions: bool) -> list[list[float]]:
    height, width = placement.original_size
    unit_x, unit_y = (width, height) if fractions else (1, 1)
    bottom, right = placement.input_size
    kept = []
    for x0, y0, x1, y1, label in boxes:
        corners = [*placement.to_input(x0 * unit_x, y0 * unit_y), *placement.to_input(x1 * unit_x, y1 * unit_y)]
        box = [min(max(value, 0.0), limit) for value, limit in zip(corners, (right, bottom, right, bottom))]
        if box[2] - box[0] >= MIN_SIDE and box[3] - box[1] >= MIN_SIDE:  # what the stored image keeps of it
            kept.append([*box, float(label)])
    return kept


def _info(names: list[str], size: int) -> cvcore.DataInfo:
    return cvcore.DataInfo(task="detection:detection", num_classes=len(names), class_names=names, in_channels=3,
                           image_size=(size, size), mean=IMAGENET_MEAN, std=IMAGENET_STD, eval_resize=size)


# -- COCO -----------------------------------------------------------------------------------------

def load_coco(root: Path, train: tuple[str, str], val: tuple[str, str], size: int, augment: bool,
              cache: str) -> cvcore.DataSplits:
    """``train`` / ``val``: (instances JSON, image folder), relative to ``root``."""
    documents = [_read_json(Path(root) / annotations) for annotations, _ in (train, val)]
    categories = sorted({(c["id"], c["name"]) for doc in documents for c in doc.get("categories", [])})
    index = {identifier: position for position, (identifier, _) in enumerate(categories)}
    splits = [_coco_split(doc, Path(root) / folder, index, Path(root) / annotations)
              for doc, (annotations, folder) in zip(documents, (train, val))]
    names = [name for _, name in categories]
    if not names:
        raise cvcore.DataError(f"'{Path(root) / train[0]}' names no categories.")
    stored_splits = [stored(*split, size, split=name, cache=cache) for split, name in zip(splits, ("train", "val"))]
    return cvcore.DataSplits(*stored_splits, _info(names, size), transforms=CROP_AND_FLIP if augment else ())


def _read_json(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise cvcore.DataError(f"COCO annotations '{path}' do not exist.") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise cvcore.DataError(f"COCO annotations '{path}' are not readable JSON ({exc}).") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise cvcore.DataError(f"'{path}' is not a COCO instances file: it has no 'images' list.")
    return document


def _coco_split(document: dict, folder: Path, index: dict, source: Path):
    problems = Problems(f"'{source}'")
    images = {}
    for entry in document["images"]:
        try:
            images[entry["id"]] = (folder / entry["file_name"], float(entry["width"]), float(entry["height"]))
        except (KeyError, TypeError, ValueError):
            problems.add(f"image {entry.get('id', '?') if isinstance(entry, dict) else entry!r}",
                         "needs id, file_name, width and height")
    boxes: dict = {identifier: [] for identifier in images}
    for number, entry in enumerate(document.get("annotations", [])):
        where = f"annotation {entry.get('id', number) if isinstance(entry, dict) else number}"
        try:
            x, y, w, h = (float(v) for v in entry["bbox"])
            image, label, crowd = entry["image_id"], entry["category_id"], entry.get("iscrowd", 0)
        except (KeyError, TypeError, ValueError):
            problems.add(where, "needs bbox [x, y, width, height], image_id and category_id")
            continue
        if image not in images:
            problems.add(where, f"refers to image {image}, which the file does not list")
        elif label not in index:
            problems.add(where, f"category {label} is not among the categories {sorted(index)}")
        elif w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > images[image][1] + 1 or y + h > images[image][2] + 1:
            problems.add(where, f"box {[x, y, w, h]} is empty or outside its "
                                f"{images[image][1]:g}x{images[image][2]:g} image")
        elif not crowd:  # crowd regions are neither objects to find nor mistakes (COCO ignores them)
            boxes[image].append([x, y, x + w, y + h, index[label]])
    missing = [str(path) for path, _, _ in images.values() if not path.is_file()]
    if missing:
        problems.add(f"{len(missing)} image file(s)", f"missing, e.g. '{missing[0]}'")
    problems.raise_any()
    return [images[i][0] for i in images], [boxes[i] for i in images]


# -- YOLO -----------------------------------------------------------------------------------------

def load_yolo(root: Path, data: str, size: int, augment: bool, cache: str) -> cvcore.DataSplits:
    """An Ultralytics data YAML: ``names`` (a list, or a map from id), ``train`` and ``val`` image
    folders (relative to ``path``, else to the YAML's folder); labels are found by replacing the
    last ``images`` folder of each image's path with ``labels`` and its suffix with ``.txt``."""
    description = _read_yaml(Path(root) / data)
    names = _names(description, Path(root) / data)
    base = Path(root) / data
    base = (base.parent / description["path"]) if description.get("path") else base.parent
    splits = [_yolo_split(base / str(description[split]), len(names)) for split in ("train", "val")]
    stored_splits = [stored(*split, size, split=name, cache=cache, fractions=True)
                     for split, name in zip(splits, ("train", "val"))]
    return cvcore.DataSplits(*stored_splits, _info(names, size), transforms=CROP_AND_FLIP if augment else ())


def _read_yaml(path: Path) -> dict:
    import yaml  # the detection extra

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))  # safe_load: data only, never code
    except FileNotFoundError:
        raise cvcore.DataError(f"YOLO data file '{path}' does not exist.") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise cvcore.DataError(f"YOLO data file '{path}' is not readable YAML ({exc}).") from None
    missing = [key for key in ("train", "val", "names") if not isinstance(document, dict) or key not in document]
    if missing:
        raise cvcore.DataError(f"YOLO data file '{path}' lacks {', '.join(missing)} (an Ultralytics data YAML has "
                               f"train, val and names).")
    return document


def _names(description: dict, source: Path) -> list[str]:
    names = description["names"]
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise cvcore.DataError(f"'{source}': names must be numbered 0 to {len(names) - 1}, got {sorted(names)}.")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise cvcore.DataError(f"'{source}': names must be a non-empty list of class names, got {names!r}.")
    return names


def _yolo_split(folder: Path, classes: int):
    if not folder.is_dir():
        raise cvcore.DataError(f"YOLO image folder '{folder}' does not exist.")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise cvcore.DataError(f"YOLO image folder '{folder}' holds no images ({' '.join(IMAGE_SUFFIXES)}).")
    problems = Problems(f"the labels of '{folder}'")
    boxes = [_yolo_labels(_label_file(image), classes, problems) for image in images]
    problems.raise_any()
    return images, boxes


def _label_file(image: Path) -> Path:
    parts = list(image.parts)
    where = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    if where is not None:
        parts[where] = "labels"
    return Path(*parts).with_suffix(".txt")


def _yolo_labels(path: Path, classes: int, problems: Problems) -> list[list[float]]:
    """Boxes in fractions of the image's sides from ``class cx cy w h`` lines; no file: no object."""
    if not path.is_file():
        return []
    boxes = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        try:
            label, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:5])
        except (ValueError, IndexError):
            problems.add(where, f"expected 'class cx cy w h', got {line.strip()!r}")
            continue
        if len(fields) != 5:
            problems.add(where, f"{len(fields)} fields; detection labels have 5 (segments are not read)")
        elif not 0 <= label < classes:
            problems.add(where, f"class {label} is outside 0..{classes - 1}")
        elif not all(math.isfinite(v) for v in (cx, cy, w, h)) or w <= 0 or h <= 0 \
                or cx - w / 2 < -1e-3 or cy - h / 2 < -1e-3 or cx + w / 2 > 1 + 1e-3 or cy + h / 2 > 1 + 1e-3:
            problems.add(where, f"box {cx:g} {cy:g} {w:g} {h:g} is empty or outside the image (values are 0 to 1)")
        else:
            boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, label])
    return boxes
