"""Detection, a built-in plugin task: COCO numbers equal pycocotools' own on the same detections,
boxes move with every geometric transform as their pixels do, and a small detector trains offline."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import cvcore
from cvcore.commands.cli import cli
from cvcore.testing import check_plugin
from cvcore import move_points
from cvcore_detection.metrics import COCO_NAMES, DetectionMetrics
from cvcore_detection.task import Detection
from fixtures import Payload

CLASSES = 4  # class 3 never has a box: its detections are all false positives


def scene(seed: int, confident: bool):
    """Ground truth of 30 images (one with no box) and detections: shifted copies of the boxes with
    scores (tied in groups, or near 1 for a confident model), missed boxes, wrong classes, and
    false positives, some of a class with no box anywhere."""
    rng = np.random.default_rng(seed)
    truth, found = [], []
    for image in range(30):
        boxes = []
        for _ in range(0 if image == 7 else rng.integers(1, 6)):
            x0, y0 = rng.uniform(0, 200, 2)
            w, h = rng.uniform(4, 120, 2)  # small, medium and large objects
            boxes.append([x0, y0, x0 + w, y0 + h, rng.integers(0, CLASSES - 1)])
        truth.append(boxes)
        detections = []
        for x0, y0, x1, y1, label in boxes:
            if rng.random() < 0.8:
                shift = rng.normal(0, 0.08 * (x1 - x0), 4)
                score = 0.999 + rng.random() * 1e-4 if confident else round(rng.random(), 1)  # ties
                label = label if rng.random() < 0.85 else rng.integers(0, CLASSES)
                detections.append([x0 + shift[0], y0 + shift[1], x1 + shift[2], y1 + shift[3], score, label])
        for _ in range(rng.integers(0, 3)):
            x0, y0 = rng.uniform(0, 200, 2)
            detections.append([x0, y0, x0 + 30, y0 + 20, rng.random() * 0.5, rng.integers(0, CLASSES)])
        found.append(detections)
    return truth, found


def padded(rows: list[list[list[float]]], width: int, length: int) -> torch.Tensor:
    out = torch.full((len(rows), length, width), -1.0, dtype=torch.float64)
    for index, boxes in enumerate(rows):
        if boxes:
            out[index, :len(boxes)] = torch.tensor(boxes, dtype=torch.float64)
    return out.float()


def reference(truth, found) -> tuple[list[float], COCOeval]:
    """pycocotools on COCO documents written the way COCO files are: 1-based category ids, ids of
    our own, boxes as (x, y, w, h)."""
    images = [{"id": 1000 + index, "height": 256, "width": 256} for index in range(len(truth))]
    boxes = [(index, box) for index, boxes in enumerate(truth) for box in boxes]
    annotations = [{"id": 1 + number, "image_id": 1000 + index, "category_id": int(label) + 1, "iscrowd": 0,
                    "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)}
                   for number, (index, (x0, y0, x1, y1, label)) in enumerate(boxes)]
    ground = COCO()
    ground.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": c + 1, "name": str(c)} for c in range(CLASSES)]}
    ground.createIndex()
    results = [{"image_id": 1000 + index, "category_id": int(label) + 1, "score": score,
                "bbox": [x0, y0, x1 - x0, y1 - y0]}
               for index, detections in enumerate(found) for x0, y0, x1, y1, score, label in detections]
    evaluation = COCOeval(ground, ground.loadRes(results), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return list(evaluation.stats), evaluation


@pytest.mark.parametrize("confident", [False, True])
@pytest.mark.parametrize("batch", [7, 30])
def test_coco_numbers_equal_pycocotools_on_the_same_detections(confident, batch):
    truth, found = scene(seed=3 if confident else 4, confident=confident)
    expected, evaluation = reference(truth, found)
    metrics = DetectionMetrics(CLASSES, torch.device("cpu"), detailed=True)
    targets, detections = padded(truth, 5, 5), padded(found, 6, Detection.DETECTIONS)
    for start in range(0, len(truth), batch):  # in batches, as validation feeds them
        metrics.update(detections[start:start + batch], targets[start:start + batch], torch.tensor(float("nan")))
    metrics.rows()
    values = metrics.compute("val")
    assert [values[f"val_{name}"] for name in COCO_NAMES] == pytest.approx(
        [np.nan if v < 0 else v for v in expected], abs=1e-4, nan_ok=True)
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    for index, ap in enumerate(metrics.per_class()):
        kept = precision[:, :, index][precision[:, :, index] > -1]
        assert (ap is None and kept.size == 0) or ap == pytest.approx(kept.mean(), abs=1e-6)
    assert metrics.per_class()[CLASSES - 1] is None  # no box of the last class anywhere


def test_no_detection_at_all_scores_zero_and_no_box_at_all_is_nan():
    metrics = DetectionMetrics(2, torch.device("cpu"), detailed=True)
    metrics.update(padded([[]], 6, 3), padded([[[1, 1, 9, 9, 0]]], 5, 2), torch.tensor(0.0))
    metrics.rows()
    assert metrics.compute("val")["val_map"] == 0.0 and metrics.per_class() == [0.0, None]
    empty = DetectionMetrics(2, torch.device("cpu"), detailed=True)
    empty.update(padded([[[1, 1, 9, 9, 0.9, 0]]], 6, 3), padded([[]], 5, 2), torch.tensor(0.0))
    empty.rows()
    assert np.isnan(empty.compute("val")["val_map"])


def rectangles(count: int = 48, size: int = 48, seed: int = 0):
    """One bright rectangle per image, on black, and its exact box."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 3, size, size, dtype=torch.uint8)
    targets = torch.full((count, 2, 5), -1.0)
    for index in range(count):
        x0, y0 = torch.randint(4, size // 2, (2,), generator=generator).tolist()
        w, h = torch.randint(6, size // 2 - 4, (2,), generator=generator).tolist()
        images[index, :, y0:y0 + h, x0:x0 + w] = 255
        targets[index, 0] = torch.tensor([x0, y0, x0 + w, y0 + h, 1.0])
    return images, targets


def bright_boxes(images: torch.Tensor) -> torch.Tensor:
    """(N, 4) bounding box of the pixels brighter than half, per image (NaN where none)."""
    bright = images.float().mean(1) > 127
    ys, xs = bright.any(2), bright.any(1)
    first = lambda axis: axis.float().argmax(1).float()  # noqa: E731
    last = lambda axis: axis.shape[1] - axis.flip(1).float().argmax(1).float()  # noqa: E731
    boxes = torch.stack([first(xs), first(ys), last(xs), last(ys)], 1)
    return torch.where(bright.flatten(1).any(1, keepdim=True), boxes, float("nan"))


@pytest.mark.parametrize(("name", "options"), [("flip", {"p": 0.5}), ("flip", {"p": 1.0, "vertical": True}),
                                               ("pad_crop", {"padding": 6}),
                                               ("random_resized_crop", {"scale": [0.4, 1.0], "image_size": [40, 56]}),
                                               ("trivial_augment", {})])
def test_boxes_move_where_their_pixels_go(name, options):
    images, targets = rectangles()
    info = cvcore.DataInfo(task="detection", num_classes=2, class_names=["a", "b"], in_channels=3,
                           image_size=(48, 48), mean=(0.0,) * 3, std=(1.0,) * 3)
    (transform,) = cvcore.create_transforms([(name, options)], info)
    given = images if transform.geometric else images.float() / 255
    out, _, matrices = transform.moved(given, targets.clone(), torch.Generator().manual_seed(2))
    moved = Detection().move_targets(targets, matrices, tuple(out.shape[-2:]), info)
    moved_any = ~torch.isclose(matrices, torch.eye(3)).all(dim=(1, 2))
    pixels = bright_boxes(out if out.dtype == torch.uint8 else out * 255)
    x0, y0, x1, y1 = targets[:, 0, :4].unbind(-1)
    corners = move_points(torch.stack([x0, y0, x1, y0, x0, y1, x1, y1], -1).view(-1, 4, 2), matrices)
    inside = ((corners >= 0) & (corners <= torch.tensor(out.shape[-2:][::-1]).float())).all(-1).all(-1)
    scale = matrices[:, :2, :2].abs().sum(-1).amax(-1, keepdim=True)
    # A box partly pushed out by a shear or a rotation is clipped as a box (torchvision does the
    # same): wider than the pixels left inside, so only boxes whose corners stay in are compared.
    check = (moved[:, 0, 4] == 1) & moved_any & inside & ~pixels.isnan().any(1)
    assert check.sum() >= 10
    error = (pixels - moved[:, 0, :4]).abs()[check]
    assert (error <= 1.0 + scale.expand_as(pixels)[check]).all(), error.max()
    assert (moved[:, 1, 4] == -1).all()  # padding stays padding


def test_a_box_pushed_out_of_the_image_is_dropped():
    targets = torch.tensor([[[2.0, 2.0, 10.0, 10.0, 0.0], [20.0, 20.0, 30.0, 30.0, 1.0]]])
    shift = torch.eye(3)[None].clone()
    shift[0, 0, 2] = -12.0  # everything moves 12 pixels left: the first box leaves, the second is kept
    moved = Detection().move_targets(targets, shift, (32, 32), None)
    assert moved[0, 0, 4] == -1 and moved[0, 1].tolist() == [8.0, 20.0, 18.0, 30.0, 1.0]


def test_the_test_kit_checks_the_detection_plugin(tmp_path):
    from cvcore.testing import check_component

    large = tuple(f"tv/{name}" for name in ("fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn", "fcos_resnet50_fpn",
                                            "fasterrcnn_mobilenet_v3_large_fpn"))  # each seconds to build
    kinds = {component.kind for component in check_plugin("detection", skip=(*large, "coco", "yolo"))}
    assert kinds == {"task", "loss", "dataset", "model"}
    check_component("dataset", "coco", root=write_coco(tmp_path / "coco"), image_size=48)  # they need files
    check_component("dataset", "yolo", root=write_yolo(tmp_path / "yolo"), image_size=48)


def test_a_small_detector_trains_and_logs_each_loss_term(in_tmp):
    result = CliRunner().invoke(cli, ["train", "--dataset", "shapes_boxes", "--set", "dataset.count=96",
                                      "--model", "tiny_fcos", "--epochs", "2", "--run-dir", "run"])
    assert result.exit_code == 0, result.output
    row = json.loads((in_tmp / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    terms = {"train_loss_classification", "train_loss_bbox_regression", "train_loss_bbox_ctrness"}
    assert {"train_loss", *terms} <= set(row)
    assert {f"val_{name}" for name in COCO_NAMES} <= set(row) and "val_loss" not in row
    assert 'name = "detection:model_losses"' in (in_tmp / "run" / "config.toml").read_text()


QUICK = ["--dataset", "shapes_boxes", "--set", "dataset.count=80", "--set", "dataset.size=48", "--model", "tiny_fcos",
         "--batch-size", "16"]


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    run = tmp_path_factory.mktemp("det") / "run"
    result = CliRunner().invoke(cli, ["train", *QUICK, "--epochs", "2", "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    return run


def test_predict_gives_boxes_in_the_photos_pixels_and_draws_them(detector, tmp_path):

    photo = np.full((60, 100, 3), 20, np.uint8)
    photo[10:40, 40:70] = 230  # a square
    Image.fromarray(photo).save(tmp_path / "photo.png")
    result = CliRunner().invoke(cli, ["predict", str(detector), str(tmp_path / "photo.png"), "--min-score", "0",
                                      "--output-dir", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)
    assert len(report["boxes"]) == len(report["labels"]) == len(report["scores"]) > 0
    assert set(report["labels"]) <= {"circle", "square", "triangle"} and min(report["scores"]) >= 0
    boxes = np.array(report["boxes"])
    assert (boxes[:, 0] >= 20 - 1).all() and (boxes[:, 2] <= 80 + 1).all()  # inside the centre 60 x 60 seen
    assert Image.open(report["picture"]).size == (100, 60)  # drawn on the photo itself


def test_a_detector_exports_to_onnx_with_its_post_processing_and_predicts_as_pytorch(detector, tmp_path):
    exported = CliRunner().invoke(cli, ["export", str(detector), "--output", str(tmp_path / "d.onnx")])
    assert exported.exit_code == 0 and "verified with onnxruntime" in exported.output, exported.output
    photo = tmp_path / "photo.png"
    picture = np.full((60, 100, 3), 20, np.uint8)
    picture[10:40, 40:70] = 230
    Image.fromarray(picture).save(photo)
    reports = []
    for source in (detector, tmp_path / "d.onnx"):
        result = CliRunner().invoke(cli, ["predict", str(source), str(photo), "--min-score", "0", "--json",
                                          "--output-dir", str(tmp_path / source.suffix.strip(".") or "run")])
        assert result.exit_code == 0, result.output
        reports.append(json.loads(result.output)[0])
    assert len(reports[0]["boxes"]) > 10  # every detection above the model's own threshold, in the same order
    for key in ("boxes", "labels", "scores"):
        assert reports[0][key] == reports[1][key]


def test_a_difference_between_the_onnx_graph_and_pytorch_is_found_image_by_image(detector, tmp_path):
    from cvcore.export import load_model, verify_onnx

    assert CliRunner().invoke(cli, ["export", str(detector), "--output", str(tmp_path / "d.onnx")]).exit_code == 0
    other = load_model(detector)
    with torch.no_grad():
        other.model.head.classification_head.cls_logits.bias.sub_(2.0)  # fewer boxes pass the score threshold
    with pytest.raises(cvcore.CvcoreError, match="gives 'boxes' of shape .* where PyTorch gives"):
        verify_onnx(other, tmp_path / "d.onnx")


def test_export_and_the_onnx_callback_say_why_a_task_refuses_onnx(detector, in_tmp, monkeypatch):
    monkeypatch.setattr(Detection, "onnx_refusal", "no graph for this task")
    refused = CliRunner().invoke(cli, ["export", str(detector), "--output", "d.onnx"])
    assert refused.exit_code == 1 and "is not exported to ONNX: no graph for this task" in refused.output
    assert not (in_tmp / "d.onnx").exists()
    result = CliRunner().invoke(cli, ["train", *QUICK, "--callback", "onnx", "--epochs", "1"])
    assert result.exit_code == 1 and "callback 'onnx' cannot export this run's model" in result.output
    assert not (in_tmp / "runs").exists()  # refused before training
    weights = CliRunner().invoke(cli, ["export", str(detector), "--format", "safetensors", "--output", "d.safetensors"])
    assert weights.exit_code == 0 and (in_tmp / "d.safetensors").stat().st_size > 10_000


def test_resumed_detection_equals_an_uninterrupted_run(tmp_path):
    def run(*args):
        result = CliRunner().invoke(cli, ["train", *args])
        assert result.exit_code == 0, result.output

    run(*QUICK, "--epochs", "2", "--scheduler", "step", "--run-dir", str(tmp_path / "halves"))
    run(*QUICK, "--epochs", "4", "--scheduler", "step", "--run-dir", str(tmp_path / "steps"))
    run("--resume", str(tmp_path / "halves"), "--epochs", "4")
    drop = ("seconds", "images_per_second")
    read = lambda name: [{k: v for k, v in json.loads(line).items() if k not in drop}  # noqa: E731
                         for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert read("halves") == read("steps")


@pytest.mark.slow
def test_two_processes_evaluate_every_image_once(tmp_path):
    from test_distributed import logged_and_evaluated, torchrun

    run_dir = tmp_path / "run"
    torchrun(tmp_path, *QUICK, "--epochs", "1", "--set", "trainer.limit_train_batches=2", "--run-dir", str(run_dir))
    logged, evaluated = logged_and_evaluated(run_dir)
    assert evaluated["val_map"] == pytest.approx(logged["val_map"], abs=1e-6)
    assert evaluated["val_mar100"] == pytest.approx(logged["val_mar100"], abs=1e-6)


@pytest.mark.slow
def test_the_detection_recipe_reaches_its_documented_map(in_tmp):
    recipe = Path(__file__).resolve().parents[1] / "examples" / "shapes_detection.toml"
    result = CliRunner().invoke(cli, ["train", "-c", str(recipe), "--run-dir", "run"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (in_tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(row["val_map50"] for row in rows) >= 0.85  # README: 0.918-0.933 over three seeds


def test_each_loss_term_is_a_loss_for_monitors_and_plots():
    from cvcore.commands.plot import panels

    assert cvcore.metric_mode("train_loss_bbox_regression") == "min" and cvcore.metric_mode("val_map50") == "max"
    (_, losses), (_, scores), _ = panels([{"epoch": 1, "train_loss": 1.0, "train_loss_classification": 0.5,
                                           "val_map": 0.3, "lr": 0.1}])
    assert losses == ["train_loss", "train_loss_classification"] and scores == ["val_map"]


def photos(folder: Path, count: int, seed: int) -> list[tuple[str, int, int, list[list[float]]]]:
    """Photo-like files (JPEG and PNG, landscape and portrait) with 1-2 bright rectangles each:
    (file name, width, height, boxes [x0, y0, x1, y1, class])."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for index in range(count):
        width, height = (96, 72) if index % 2 else (72, 96)
        pixels = rng.integers(0, 50, (height, width, 3)).astype(np.uint8)
        boxes = []
        for half in range(rng.integers(1, 3)):  # one rectangle per half of the photo: none overlap
            w, h = rng.integers(10, 22, 2)
            low = 8 + half * (width // 2)
            x0, y0 = rng.integers(low, low + width // 2 - 4 - w), rng.integers(20, height - 20 - h)
            label = int(rng.integers(0, 2))
            pixels[y0:y0 + h, x0:x0 + w] = (230, 60, 60) if label else (60, 230, 60)
            boxes.append([float(x0), float(y0), float(x0 + w), float(y0 + h), label])
        name = f"{index}.{'jpg' if index % 3 else 'png'}"
        Image.fromarray(pixels).save(folder / name, quality=95)
        made.append((name, width, height, boxes))
    return made


def write_coco(root: Path) -> Path:
    """root/annotations/instances_{train,val}.json (category ids 3 and 7, a crowd region) and root/{train,val}/."""
    for split, count in (("train", 12), ("val", 6)):
        made = photos(root / split, count, seed=len(split))
        annotations = [{"id": 10 * index + k + 1, "image_id": 100 + index, "category_id": (3, 7)[label],
                        "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}
                       for index, (_, _, _, boxes) in enumerate(made)
                       for k, (x0, y0, x1, y1, label) in enumerate(boxes)]
        annotations.append({"id": 9999, "image_id": 100, "category_id": 3, "bbox": [0, 0, 5, 5], "area": 25,
                            "iscrowd": 1})
        document = {"images": [{"id": 100 + i, "file_name": name, "width": w, "height": h}
                               for i, (name, w, h, _) in enumerate(made)],
                    "annotations": annotations, "categories": [{"id": 3, "name": "green"}, {"id": 7, "name": "red"}]}
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(document))
    return root


def write_yolo(root: Path) -> Path:
    """root/data.yaml and root/{images,labels}/{train,val}/, as Ultralytics lays them out; one
    training image has no label file (no object)."""
    for split, count in (("train", 12), ("val", 6)):
        made = photos(root / "images" / split, count, seed=len(split) + 1)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index, (name, w, h, boxes) in enumerate(made):
            if split == "train" and index == 0:
                continue
            lines = [f"{label} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"
                     for x0, y0, x1, y1, label in boxes]
            (root / "labels" / split / f"{Path(name).stem}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: green\n  1: red\n")
    return root


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_coco_and_yolo_folders_are_read_with_their_boxes_and_train(in_tmp, fmt):
    root = (write_coco if fmt == "coco" else write_yolo)(in_tmp / "data")
    data = cvcore.create("dataset", fmt, root=root, image_size=48)
    assert data.info.class_names == ("green", "red") and len(data.train) == 12 and len(data.val) == 6
    images, targets = data.train.images, data.train.targets
    real = targets[..., 4] >= 0
    assert real.any(1).sum() >= 10  # every image with boxes keeps what the centre square holds of them
    for image, rows in zip(images, targets):  # each box lies on its coloured rectangle
        for x0, y0, x1, y1, label in rows[rows[:, 4] >= 0].tolist():
            if x1 - x0 < 4 or y1 - y0 < 4:  # the sliver the centre square keeps of a box at its edge
                continue
            inside = image[:, int(y0) + 1:int(y1) - 1, int(x0) + 1:int(x1) - 1].float()
            channel = 0 if label == 1 else 1  # red or green
            assert inside[channel].mean() > 150 and inside[2].mean() < 100
    result = CliRunner().invoke(cli, ["train", "--dataset", fmt, "--data-dir", str(root), "--set",
                                      "dataset.image_size=48", "--model", "tiny_fcos", "--epochs", "1",
                                      "--batch-size", "4", "--run-dir", "run"])
    assert result.exit_code == 0, result.output
    evaluated = CliRunner().invoke(cli, ["eval", "run", "--json"])
    assert evaluated.exit_code == 0 and "val_map" in evaluated.output


@pytest.mark.parametrize(("fmt", "damage", "fragments"), [
    ("yolo", lambda root: (root / "labels/train/1.txt").write_text("1 0.5 0.5 0.2\n"),
     ["1.txt:1", "expected 'class cx cy w h'"]),
    ("yolo", lambda root: (root / "labels/train/1.txt").write_text("5 0.5 0.5 0.2 0.2\n"), ["class 5 is outside 0..1"]),
    ("yolo", lambda root: (root / "labels/train/2.txt").write_text("0 0.95 0.5 0.2 0.2\n"), ["outside the image"]),
    ("yolo", lambda root: (root / "data.yaml").write_text("train: images/train\nnames: [a, b]\n"), ["lacks val"]),
    ("yolo", lambda root: (root / "data.yaml").write_text("!!python/object/apply:os.system ['echo hi']\n"),
     ["is not readable YAML"]),
    ("coco", lambda root: (root / "annotations/instances_val.json").write_text("{"), ["not readable JSON"]),
    ("coco", lambda root: _edit_coco(root, lambda d: d["annotations"][0].update(category_id=5)),
     ["category 5 is not among the categories [3, 7]"]),
    ("coco", lambda root: _edit_coco(root, lambda d: d["annotations"][0].update(bbox=[90, 60, 30, 30])),
     ["is empty or outside its"]),
    ("coco", lambda root: (root / "train" / "1.jpg").unlink(), ["1 image file(s): missing, e.g."]),
])
def test_malformed_files_and_lines_are_named(in_tmp, fmt, damage, fragments):
    root = (write_coco if fmt == "coco" else write_yolo)(in_tmp / "data")
    damage(root)
    result = CliRunner().invoke(cli, ["train", "--dataset", fmt, "--data-dir", str(root), "--model", "tiny_fcos"])
    assert result.exit_code == 1 and all(f in result.output for f in fragments), result.output
    assert "Traceback" not in result.output and not (in_tmp / "runs").exists()


def _edit_coco(root: Path, change) -> None:
    path = root / "annotations" / "instances_train.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_the_onnx_callback_exports_a_detector_at_the_end_of_training(in_tmp):
    result = CliRunner().invoke(cli, ["train", *QUICK, "--callback", "onnx", "--epochs", "1", "--run-dir", "run"])
    assert result.exit_code == 0 and "exported run/model.onnx: max |diff|" in result.output, result.output


def test_detectors_start_from_a_weights_file_with_heads_sized_to_the_data(detector, tmp_path):
    from safetensors.torch import load_file

    exported = tmp_path / "d.safetensors"
    assert CliRunner().invoke(cli, ["export", str(detector), "--format", "safetensors", "--output",
                                    str(exported)]).exit_code == 0
    saved = load_file(str(exported))
    same = cvcore.create("model", "tiny_fcos", num_classes=3, image_size=(48, 48), weights=exported)
    assert all(torch.equal(value, saved[name]) for name, value in same.state_dict().items())
    more = cvcore.create("model", "tiny_fcos", num_classes=5, image_size=(48, 48), weights=exported)
    kept = [n for n, v in more.state_dict().items() if v.shape == saved[n].shape]
    assert all(torch.equal(more.state_dict()[n], saved[n]) for n in kept)
    assert len(kept) == len(saved) - 2  # the class logits' weight and bias are sized for 5 + background
    with pytest.raises(cvcore.DataError, match="do not fit this model: .*wrong shape"):
        cvcore.create("model", "tiny_fcos", num_classes=3, image_size=(48, 48), width=64, weights=exported)


def coco_weights_in_hub_cache(home: Path, name: str) -> dict[str, torch.Tensor]:
    """torchvision's COCO weights cannot be downloaded here: random ones of the right shapes (91
    classes) stand where torch.hub keeps the download, in torch.save's format."""
    import torchvision

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    cache = home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = torchvision.models.get_model(name, weights=None, weights_backbone=None, num_classes=91).state_dict()
    torch.save(state, cache / url.rsplit("/", 1)[-1])
    return state


def test_pretrained_detectors_start_from_cocos_weights_with_heads_sized_to_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    coco = coco_weights_in_hub_cache(tmp_path, name)
    model = cvcore.create("model", f"tv/{name}", num_classes=3, image_size=(96, 96), pretrained=True)
    own = model.state_dict()
    heads = {"roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias",
             "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias"}
    assert {key for key in coco if coco[key].shape != own[key].shape} == heads  # 91 classes there, 3 + 1 here
    assert all(torch.equal(own[key], value) for key, value in coco.items() if key not in heads)
    assert own["roi_heads.box_predictor.cls_score.weight"].shape[0] == 4


def test_pickle_in_the_hub_cache_is_not_run_for_a_detector(tmp_path, monkeypatch):
    import pickle

    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    url = torchvision.models.get_model_weights("fcos_resnet50_fpn").DEFAULT.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]).write_bytes(pickle.dumps({"head": Payload()}))
    with pytest.raises(cvcore.CvcoreError, match="weights for 'fcos_resnet50_fpn' .* hold more than tensors"):
        cvcore.create("model", "tv/fcos_resnet50_fpn", num_classes=3, image_size=(64, 64), pretrained=True)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name", ["fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large"])
def test_a_detector_sees_the_normalisation_its_coco_weights_expect_whatever_the_datas(name):
    from cvcore_detection.models import WEIGHTS_NORMALISATION

    pixels = torch.rand(1, 3, 64, 64)
    seen = []
    for mean, std in (((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), ((0.1, 0.2, 0.3), (0.5, 0.4, 0.3))):
        model = cvcore.create("model", f"tv/{name}", num_classes=3, image_size=(64, 64), mean=mean, std=std)
        normalised = (pixels[0] - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        seen.append(model.eval().transform([normalised])[0].tensors)  # what the detector's layers receive
    mean, std = WEIGHTS_NORMALISATION.get(name.split("_")[0], ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    wanted = (pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    wanted = torch.nn.functional.interpolate(wanted, size=seen[0].shape[-2:], mode="bilinear")  # SSD: 320 x 320
    assert torch.allclose(seen[0], wanted, atol=1e-4) and torch.allclose(seen[1], wanted, atol=1e-4)
