"""Using a trained model: evaluate it on a data set, predict the classes of image files."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch

from cvcore.errors import ConfigError, DataError, one_line
from cvcore.export import LoadedModel, load_model
from cvcore.data import Placement
from cvcore.images import IMAGE_SUFFIXES, INTERPOLATIONS, read_centre
from cvcore.runs import config as cfg
from cvcore.tasks import task_for, task_name


def evaluate_checkpoint(path: Path, dataset: str | None, data_dir: str | None, batch_size: int,
                        device: str, which: str = "best") -> dict[str, Any]:
    """Validation metrics, per-class scores and the confusion matrix of a checkpoint's model."""
    from torch.utils.data import DataLoader

    from cvcore.runs.plan import filled, plan
    from cvcore.training.batching import DeviceLoader
    from cvcore.training.evaluation import evaluate
    from cvcore.training.preparation import Preparation
    from cvcore.training.tensor_data import TensorImages
    from cvcore.training.trainer import resolve_device

    loaded = load_model(path, which)
    config = loaded.document["config"]
    if dataset:
        config = cfg.merge(config, {"dataset": {}})
        config["dataset"] = {"name": dataset}
    if data_dir:
        config = cfg.merge(config, {"dataset": {"root": data_dir}})
    checked = plan(config)
    part = checked.part("dataset")
    # Evaluation reads data where it is: a checkpoint (perhaps someone else's) never makes it download.
    offline = {"download": False} if any(option.name == "download" for option in part.component.options) else {}
    data = part.component.build(**{**part.options, **offline})
    trained, given = task_name(loaded.info.task), task_name(data.info.task)
    if data.info.num_classes != loaded.info.num_classes or trained != given:
        raise ConfigError(f"The model was trained for {loaded.info.num_classes} classes ({trained}); "
                          f"data set '{part.component.name}' has {data.info.num_classes} ({given}).")
    target_device = resolve_device(device)
    model = loaded.model.to(target_device)
    loss = filled(checked.part("loss"), data.info.fill())
    loss_fn = checked.part("loss").component.build(**loss)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn.to(target_device)
    if isinstance(data.val, TensorImages):  # in memory: batches built on the device, as in training
        loader = DeviceLoader(data.val.on_device(target_device), batch_size, shuffle=False)
    else:
        loader = DataLoader(data.val, batch_size=batch_size)
    prepare = Preparation(data.info, target_device)
    batches = (prepare(*batch, train=False)[:2] for batch in loader)
    metrics = evaluate(model, loss_fn, batches, data.info, target_device)
    return {"metrics": metrics.compute("val"), "per_class_metric": metrics.per_class_name,
            "per_class": dict(zip(data.info.class_names, metrics.per_class())),
            "confusion": metrics.confusion_matrix(), "class_names": list(data.info.class_names)}


def save_confusion_png(result: dict[str, Any], output: Path) -> Path | None:
    """The confusion matrix as a PNG heat map, or None when matplotlib is not installed or the task
    has no confusion matrix."""
    if result["confusion"] is None:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names, matrix = result["class_names"], result["confusion"]
    size = max(4.0, 0.5 * len(names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=90)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for row, values in enumerate(matrix):
        for column, value in enumerate(values):
            axes.text(column, row, str(value), ha="center", va="center", fontsize=8)
    figure.tight_layout()
    from cvcore.files import save_figure

    save_figure(figure, output, dpi=100)
    plt.close(figure)
    return output


def image_files(paths: list[Path]) -> list[Path]:
    """``paths`` with each folder replaced by the image files in it (sorted, subfolders included)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not inside:
            raise DataError(f"Folder '{path}' holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
        found += inside
    return found


def preprocess(paths: list[Path], info: dict[str, Any]) -> tuple[torch.Tensor, list[Placement]]:
    """As validation does: resize the shorter side (to ``eval_resize``, else to the training size;
    torch's resize with the data's interpolation, as the folder cache's), center-crop to the training size, scale to [0, 1] and
    normalise. Also where each input lies in its file's image."""
    inputs, placements = zip(*(_prepared(path, info) for path in paths))
    return torch.stack(inputs), list(placements)


def _prepared(path: Path, info: dict[str, Any]) -> tuple[torch.Tensor, Placement]:
    from torchvision.transforms.v2 import functional as F

    height, width = info["image_size"]
    pixels, placement = read_centre(path, info["in_channels"], (height, width),
                                    info.get("eval_resize") or min(height, width), info.get("interpolation", "bilinear"))
    return F.normalize(F.to_dtype(pixels, torch.float32, scale=True), info["mean"], info["std"]), placement


def onnx_info(props: dict[str, str], path: Path) -> dict[str, Any]:
    """What preprocessing needs, from a cvcore ONNX file's metadata, each value checked: the file
    may come from anyone."""
    try:
        info = {key: json.loads(props[key]) for key in ("image_size", "mean", "std", "class_names")}
        info["eval_resize"] = json.loads(props.get("eval_resize", "null"))
        info["interpolation"] = json.loads(props.get("interpolation", '"bilinear"'))  # files before 0.2 lack it
        info["per_image"] = json.loads(props.get("per_image", "false"))  # files of cvcore 0.1 lack it
        info.update(in_channels=int(props["in_channels"]), task=str(props["task"]))
        size, channels = info["image_size"], info["in_channels"]
        valid = (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and 0 < v <= 16384 for v in size)
                 and 0 < channels <= 64 and all(isinstance(info[k], list) and len(info[k]) == channels
                                                and all(isinstance(v, (int, float)) for v in info[k])
                                                for k in ("mean", "std"))
                 and isinstance(info["class_names"], list) and all(isinstance(n, str) for n in info["class_names"])
                 and (info["eval_resize"] is None or isinstance(info["eval_resize"], int))
                 and info["interpolation"] in INTERPOLATIONS and isinstance(info["per_image"], bool))
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        raise DataError(f"'{path}' has cvcore metadata that cannot be read ({one_line(exc)}).") from None
    if not valid:
        raise DataError(f"'{path}' has cvcore metadata with values out of range or of the wrong type "
                        f"(image_size, mean, std, in_channels, class_names, eval_resize, interpolation, per_image).")
    return info


class Predictor:
    """Logits for a batch of images, from a checkpoint (PyTorch) or an exported .onnx (onnxruntime)."""

    def __init__(self, path: Path, which: str = "best") -> None:
        if Path(path).suffix == ".onnx":
            self._init_onnx(Path(path))
        else:
            loaded: LoadedModel = load_model(path, which)
            self.info = {"image_size": list(loaded.info.image_size), "mean": list(loaded.info.mean),
                         "std": list(loaded.info.std), "in_channels": loaded.info.in_channels,
                         "class_names": list(loaded.info.class_names), "task": task_name(loaded.info.task),
                         "eval_resize": loaded.info.eval_resize, "interpolation": loaded.info.interpolation}
            self.model, self.session = loaded.model, None

    def _init_onnx(self, path: Path) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise DataError("Predicting with an .onnx file needs onnxruntime: pip install onnxruntime.") from None
        if not path.is_file():
            raise DataError(f"ONNX file '{path}' does not exist.")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own errors are long tracebacks of C++ frames
            raise DataError(f"'{path}' is not an ONNX model that onnxruntime can run ({one_line(exc)}).") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if "class_names" not in props:
            raise DataError(f"'{path}' was not exported by cvcore (no class names in its metadata).")
        self.path, self.info = path, onnx_info(props, path)

    def logits(self, images: torch.Tensor):
        """The model's output for ``images``, as PyTorch gives it (the task turns ONNX outputs into it)."""
        if self.session is None:
            with torch.inference_mode():
                return self.model(images)
        task = task_for(self.info["task"])
        if not self.info["per_image"]:
            return task.from_onnx(self._run(images))
        return [found for image in images.split(1) for found in task.from_onnx(self._run(image))]

    def _run(self, images: torch.Tensor) -> list[torch.Tensor]:
        try:
            return [torch.from_numpy(output) for output in self.session.run(None, {"images": images.numpy()})]
        except Exception as exc:
            raise DataError(f"onnxruntime could not run '{self.path}' on the images ({one_line(exc)}); "
                            f"was it exported by cvcore for images like these?") from None


PREDICT_BATCH = 64


def predict(path: Path, images: list[Path], topk: int, output_dir: Path | None = None,
            which: str = "best", min_score: float = 0.5) -> tuple[list[dict[str, Any]], list[str]]:
    """What the model's task reports per image (classification: the top-k classes; segmentation: a
    mask PNG in ``output_dir``; detection: boxes scoring at least ``min_score`` and a PNG of them),
    as JSON-able results and as text lines. Folders among ``images`` stand for the image files in
    them; ``which`` checkpoint of a run directory."""
    predictor = Predictor(path, which)
    images = image_files(images)
    outputs, placements, batched = [], [], True
    for start in range(0, len(images), PREDICT_BATCH):
        inputs, placed = preprocess(images[start:start + PREDICT_BATCH], predictor.info)
        found = predictor.logits(inputs)
        batched = isinstance(found, torch.Tensor)  # else one item per image (a detector's dicts)
        outputs += [found.float()] if batched else list(found)
        placements += placed
    task = task_for(predictor.info["task"])
    # A task's predict written before these arguments existed takes none of them: it is given what it takes.
    taken = inspect.signature(task.predict).parameters
    extra = {key: value for key, value in (("placements", placements), ("min_score", min_score)) if key in taken}
    output = torch.cat(outputs) if batched else outputs
    results = task.predict(output, images, predictor.info["class_names"], topk=topk,
                           output_dir=output_dir or Path("."), **extra)
    return results, [task.describe(result) for result in results]
