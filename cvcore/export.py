"""Models out of checkpoints: rebuilt for inference, exported to ONNX or to plain safetensors weights."""

from __future__ import annotations

import contextlib
import json
import logging
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

TOLERANCE = 1e-4


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
            "eval_resize": json.dumps(info.eval_resize)}


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
    """Export with a dynamic batch dimension, check the graph, and (if onnxruntime is installed) verify
    the outputs against PyTorch; returns the maximum absolute difference, or None when not verified."""
    import onnx

    info = loaded.info
    refusal = task_for(info.task).onnx_refusal
    if refusal:
        raise ConfigError(f"'{loaded.name}' is not exported to ONNX: {refusal}")
    sample = torch.randn(2, info.in_channels, *info.image_size, device=device_of(loaded.model))
    try:
        with quiet_exporter():
            program = torch.onnx.export(loaded.model, (sample,), input_names=["images"],
                                        output_names=[task_for(info.task).output_name],
                                        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), opset_version=opset,
                                        dynamo=True, verbose=False)
        proto = program.model_proto
    except Exception as exc:  # the exporter's own errors are long; keep the first line
        raise CvcoreError(f"ONNX export of '{loaded.name}' failed: {str(exc).strip().splitlines()[0]}") from exc
    written = next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:
        raise CvcoreError(f"The ONNX exporter could not write opset {opset} for '{loaded.name}' (it produced opset "
                          f"{written}), so nothing was written. Use --opset {written} or leave --opset out.")
    onnx.helper.set_model_props(proto, metadata_of(loaded))
    onnx.checker.check_model(proto)
    write_atomically(output, proto.SerializeToString())
    return verify_onnx(loaded, output)


def verify_onnx(loaded: LoadedModel, output: Path) -> float | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    info = loaded.info
    batch = torch.randn(3, info.in_channels, *info.image_size)  # not the export batch size: dynamic
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = loaded.model(batch.to(device_of(loaded.model))).float().cpu().numpy()
    difference = float(abs(session.run(None, {"images": batch.numpy()})[0] - expected).max())
    if difference > TOLERANCE:
        raise CvcoreError(f"The ONNX export of '{loaded.name}' differs from PyTorch by {difference:.2e} "
                          f"(more than {TOLERANCE}); it was written to '{output}' but should not be trusted.")
    return difference
