"""Models out of checkpoints: rebuilt for inference, exported to ONNX or to plain safetensors weights."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import attrs
import torch

from cvcore import checkpoint as ckpt
from cvcore.data import DataInfo
from cvcore.errors import ConfigError, CvcoreError
from cvcore.files import write_atomically
from cvcore.tasks import task_for, task_name

TOLERANCE = 1e-4  # relative to the output's largest magnitude (at least 1): float32 rounding grows with it


@attrs.frozen
class OnnxForm:
    """What a task's model becomes in ONNX (see :meth:`cvcore.Task.onnx_form`): ``module`` takes one
    input, ``images`` (N, C, H, W) normalised, and returns the tensors named ``output_names``.

    ``per_image``: the graph takes one image a call and the lengths of its outputs depend on the
    image (detections): torch.onnx's TorchScript tracer writes it, since torch.export cannot trace
    lengths that depend on the data yet. Otherwise torch.export writes a graph for any batch size."""

    module: torch.nn.Module
    output_names: tuple[str, ...]
    per_image: bool = False


@attrs.frozen
class LoadedModel:
    """A model rebuilt from a checkpoint, in eval mode, with the data metadata it was trained on."""

    model: torch.nn.Module
    info: DataInfo
    name: str
    document: dict[str, Any]


def load_model(path: Path, which: str = "best") -> LoadedModel:
    """Rebuild the checkpoint's model through the registry (same name and options) and load its weights;
    ``which`` checkpoint when ``path`` is a run directory."""
    from cvcore.runs.build import build_model
    from cvcore.runs.plan import plan

    checkpoint = ckpt.load_run(ckpt.find(path, which))
    if checkpoint.averaged:
        print(f"note: {checkpoint.source} holds the average of the weights (the run's ema); using it",
              file=sys.stderr)
    document = checkpoint.document
    info = checkpoint.data_info()
    part = plan(document["config"]).part("model")
    model = build_model(part, info, from_checkpoint=True)
    checkpoint.load_weights_into(model, part.component.qualified_name)
    return LoadedModel(model.eval(), info, part.component.name, document)


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def metadata_of(loaded: LoadedModel) -> dict[str, str]:
    """What a deployed model needs to pre- and post-process: classes, normalisation, input size."""
    info = loaded.info
    return {"cvcore_model": loaded.name, "task": task_name(info.task), "class_names": json.dumps(list(info.class_names)),
            "mean": json.dumps(list(info.mean)), "std": json.dumps(list(info.std)),
            "image_size": json.dumps(list(info.image_size)), "in_channels": str(info.in_channels),
            "eval_resize": json.dumps(info.eval_resize), "interpolation": json.dumps(info.interpolation)}


def export_safetensors(loaded: LoadedModel, output: Path) -> Path:
    """Weights only, loadable with ``model.load_state_dict(safetensors.torch.load_file(path))``."""
    from safetensors.torch import save as to_bytes

    state = {k: v.contiguous() for k, v in loaded.model.state_dict().items()}
    write_atomically(output, to_bytes(state, metadata=metadata_of(loaded)))
    return output


@contextlib.contextmanager
def quiet_exporter():
    """Hold back the exporter's own log lines and warnings (opset conversions it tries, tracebacks it
    recovers from): the export's outcome is reported in one line, or one error."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_onnx(loaded: LoadedModel, output: Path, opset: int | None = None) -> float | None:
    """Export the task's :class:`OnnxForm` of the model, check the graph, and (if onnxruntime is
    installed) verify its outputs against PyTorch; returns the maximum absolute difference, or None
    when not verified."""
    import onnx

    task = task_for(loaded.info.task)
    if task.onnx_refusal:
        raise ConfigError(f"'{loaded.name}' is not exported to ONNX: {task.onnx_refusal}")
    form = task.onnx_form(loaded.model)
    try:
        with quiet_exporter():
            proto = _traced(form, loaded.info, opset)
    except Exception as exc:  # the exporter's own errors are long; keep the first line
        raise CvcoreError(f"ONNX export of '{loaded.name}' failed: {str(exc).strip().splitlines()[0]}") from exc
    written = next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:
        raise CvcoreError(f"The ONNX exporter could not write opset {opset} for '{loaded.name}' (it produced opset "
                          f"{written}), so nothing was written. Use --opset {written} or leave --opset out.")
    onnx.helper.set_model_props(proto, {**metadata_of(loaded), "per_image": json.dumps(form.per_image)})
    onnx.checker.check_model(proto)
    write_atomically(output, proto.SerializeToString())
    return verify_onnx(loaded, output)


def _traced(form: OnnxForm, info: DataInfo, opset: int | None):
    """The ONNX graph of ``form``: one image a call, or a dynamic batch dimension."""
    import onnx

    sample = torch.randn(1 if form.per_image else 2, info.in_channels, *info.image_size,
                         device=device_of(form.module))
    names = {"input_names": ["images"], "output_names": list(form.output_names), "verbose": False}
    if form.per_image:
        buffer = io.BytesIO()
        torch.onnx.export(form.module, (sample,), buffer, dynamo=False, opset_version=opset, **names)
        return onnx.load_from_string(buffer.getvalue())
    return torch.onnx.export(form.module, (sample,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                             opset_version=opset, dynamo=True, **names).model_proto


def verify_onnx(loaded: LoadedModel, output: Path) -> float | None:
    """Run three random images through the ONNX file and through PyTorch: every output the same
    shape, and within :data:`TOLERANCE`; the largest absolute difference, or None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    info = loaded.info
    form = task_for(info.task).onnx_form(loaded.model)
    batch = torch.randn(3, info.in_channels, *info.image_size, generator=torch.Generator().manual_seed(0))
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    largest = 0.0
    for images in batch.split(1) if form.per_image else [batch]:  # 3, not the export's batch size: dynamic
        with torch.inference_mode():
            expected = form.module(images.to(device_of(loaded.model)))
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        for name, want, got in zip(form.output_names, expected, session.run(None, {"images": images.numpy()})):
            largest = max(largest, _difference(loaded.name, name, want.float().cpu().numpy(), got, output))
    return largest


def _difference(model: str, name: str, expected, got, output: Path) -> float:
    """max |got - expected| of one output, refused when the shapes differ or it exceeds the tolerance."""
    if expected.shape != got.shape:
        raise CvcoreError(f"The ONNX export of '{model}' gives '{name}' of shape {got.shape} where PyTorch gives "
                          f"{expected.shape}; it was written to '{output}' but should not be trusted.")
    if not expected.size:
        return 0.0
    difference = float(abs(got - expected).max())
    if difference > TOLERANCE * max(1.0, float(abs(expected).max())):
        raise CvcoreError(f"The ONNX export of '{model}' differs from PyTorch by {difference:.2e} in '{name}' "
                          f"(more than {TOLERANCE} of its magnitude); it was written to '{output}' but should not "
                          f"be trusted.")
    return difference
