"""Checkpoints: one safetensors file with every tensor, and a JSON document in its metadata.

Nothing is pickled, so loading a checkpoint can never run code. Writes are atomic: a temporary
file in the same directory is written, flushed and fsynced, then renamed over the old one, so a
process killed at any moment (even during a save) leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import attrs
import torch

from cvcore.errors import CvcoreError, DataError, one_line
from cvcore.files import write_atomically

FORMAT = "cvcore-checkpoint/1"
_META_KEY = "cvcore"


@attrs.frozen
class Checkpoint:
    """What a checkpoint file holds: named tensors and the JSON document describing them."""

    tensors: dict[str, torch.Tensor]
    document: dict[str, Any]
    source: str = "the checkpoint"

    def state(self) -> dict[str, Any]:
        """The nested state (tensors put back in place) the document describes."""
        try:
            state = unflatten(self.document["state"], self.tensors)
            if not isinstance(state, dict):
                raise ValueError("the state is not a table")
        except KeyError as exc:
            raise DataError(f"{self.source} is damaged: its metadata refers to {exc}, which it does not hold.") from None
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise DataError(f"{self.source} is damaged: its state cannot be read ({one_line(exc)}).") from None
        return state

    def model_weights(self) -> dict[str, torch.Tensor]:
        """The weights to use the model with: the average of the weights for a run that kept one
        (`--ema`), else the model's own (resuming reads both from :meth:`state`)."""
        state = self.state()
        weights = state["ema"].get("weights") if isinstance(state.get("ema"), dict) else state.get("model")
        if not isinstance(weights, dict):
            raise DataError(f"{self.source} is damaged: it holds no model weights.")
        return weights

    @property
    def averaged(self) -> bool:
        """Whether :meth:`model_weights` are an average of the weights (the run had ``ema`` on)."""
        return isinstance(self.state().get("ema"), dict)

    def data_info(self):
        """The :class:`cvcore.DataInfo` of the data the model was trained on."""
        from cvcore.data import DataInfo

        try:
            return DataInfo(**self.document["info"])
        except (TypeError, ValueError) as exc:
            raise DataError(f"{self.source} is damaged: its data description cannot be read ({one_line(exc)}).") from None

    def load_weights_into(self, model: torch.nn.Module, name: str) -> None:
        """Load the model weights into ``model``; weights of another architecture are one clear error."""
        result = _fit_weights(model, self.model_weights())
        if result:
            raise DataError(f"{self.source} does not hold weights for model '{name}' as built from its config: "
                            f"{result}. Was the file edited, or saved by another model?")


def _fit_weights(model: torch.nn.Module, weights: dict[str, Any]) -> str:
    """Load ``weights`` strictly into ``model``; '' on success, else what did not fit."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = [f"{key} {tuple(weights[key].shape)} vs {tuple(value.shape)}" for key, value in expected.items()
             if key in weights and (not isinstance(weights[key], torch.Tensor) or weights[key].shape != value.shape)]
    problems = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if not problems:
        model.load_state_dict(weights)
    return "; ".join(problems)


def flatten(value: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """A JSON-able copy of ``value``; tensors (and numpy arrays) move to ``tensors`` under their path."""
    import numpy

    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {"__tensor__": path}
    if isinstance(value, numpy.ndarray):  # stored as int64/float64: safetensors lacks some numpy dtypes
        wide = value.astype(numpy.float64 if value.dtype.kind == "f" else numpy.int64)
        tensors[path] = torch.from_numpy(wide)
        return {"__ndarray__": path, "dtype": str(value.dtype)}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: flatten(v, tensors, f"{path}.{k}" if path else k) for k, v in value.items()}
        return {"__items__": [[k, flatten(v, tensors, f"{path}.{k}")] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at '{path}' in a checkpoint")


def unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Invert :func:`flatten`."""
    if isinstance(value, list):
        return [unflatten(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return tensors[value["__ndarray__"]].numpy().astype(value["dtype"])
    if "__tuple__" in value:
        return tuple(unflatten(v, tensors) for v in value["__tuple__"])
    if "__items__" in value:
        return {k: unflatten(v, tensors) for k, v in value["__items__"]}
    return {k: unflatten(v, tensors) for k, v in value.items()}


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing memory (tied weights): give each its own copy."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for key, tensor in tensors.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        out[key] = tensor.clone() if ident in seen and tensor.numel() else tensor
        seen.add(ident)
    return out


def trainer_document(trainer) -> dict[str, Any]:
    """What travels with a trainer's checkpoint besides its state: config, data, providers, versions."""
    import attrs as attrs_module

    from cvcore import __version__

    return {"cvcore_version": __version__, "info": attrs_module.asdict(trainer.data.info), **trainer.metadata,
            "epoch": trainer.epoch}


def save_trainer(path: Path, trainer) -> Path:
    return save(path, trainer.state_dict(), **trainer_document(trainer))


def link_atomically(source: Path, target: Path) -> None:
    """Make ``target`` name the same file as ``source`` (no copy); a later replace of source leaves it."""
    if target.exists() and os.path.samefile(source, target):
        return  # renaming a link over another name of the same file would do nothing, and leave it
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    os.link(source, temporary)
    os.replace(temporary, target)


def save(path: Path, state: dict[str, Any], **document: Any) -> Path:
    """Write ``state`` (nested dicts of tensors and JSON values) and ``document`` atomically to ``path``."""
    from safetensors.torch import save as to_bytes

    tensors: dict[str, torch.Tensor] = {}
    body = {"format": FORMAT, **document, "state": flatten(state, tensors)}
    data = to_bytes(_unshared(tensors), metadata={_META_KEY: json.dumps(body)})
    write_atomically(Path(path), data)
    return Path(path)


def load(path: Path) -> Checkpoint:
    """Read a checkpoint; anything but a cvcore safetensors checkpoint is refused, never unpickled."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(f"Checkpoint '{path}' does not exist.")
    _refuse_other_kinds(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:
        raise DataError(f"'{path}' is not a safetensors checkpoint ({one_line(exc)}); cvcore never unpickles "
                        f"files, so .pt/.pth/.ckpt pickles cannot be loaded.") from None
    if _META_KEY not in metadata:
        raise DataError(f"'{path}' is a safetensors file but not a cvcore checkpoint (no '{_META_KEY}' metadata).")
    try:
        document = json.loads(metadata[_META_KEY])
    except (ValueError, RecursionError) as exc:
        raise DataError(f"'{path}' is damaged: its '{_META_KEY}' metadata is not readable JSON ({one_line(exc)}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise DataError(f"'{path}' has checkpoint format {found!r}; this cvcore reads {FORMAT}.")
    return Checkpoint(tensors, document, f"'{path}'")


def saved_epoch(path: Path) -> int | None:
    """The epoch a checkpoint file was saved after, from its header alone; None for a file that is
    missing, cut short or not a cvcore checkpoint."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            epoch = json.loads((handle.metadata() or {})[_META_KEY]).get("epoch")
        with open(path, "rb") as stream:  # the header alone does not show a file cut short
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(0)
            header = int.from_bytes(stream.read(8), "little")
            declared = 8 + header + _data_bytes(stream.read(header))
    except Exception:  # any unreadable file is "no epoch"
        return None
    return epoch if isinstance(epoch, int) and size >= declared else None


def _data_bytes(header: bytes) -> int:
    """The size of the tensor data a safetensors header declares."""
    entries = json.loads(header)
    return max((entry["data_offsets"][1] for key, entry in entries.items() if key != "__metadata__"), default=0)


def _refuse_other_kinds(path: Path) -> None:
    """Name what a file given in a checkpoint's place is, when its suffix says (an ONNX export, an
    image passed first to cv predict)."""
    from cvcore.images import IMAGE_SUFFIXES

    suffix = path.suffix.lower()
    if suffix == ".onnx":
        raise DataError(f"'{path}' is an ONNX model: cv predict takes it, while cv eval, cv export and cv train "
                        f"--resume take a checkpoint (.safetensors) or a run directory.")
    if suffix in IMAGE_SUFFIXES:
        raise DataError(f"'{path}' is an image, not a checkpoint: cv predict takes the model first, then the "
                        f"images (cv predict RUN_DIR_OR_CHECKPOINT IMAGE...).")


def load_run(path: Path) -> Checkpoint:
    """:func:`load` a checkpoint that a training run wrote, checking the parts of its document that
    rebuilding the run reads (config with a model name, data info, state) before they are used."""
    checkpoint = load(path)
    for key in ("config", "info", "state"):
        if not isinstance(checkpoint.document.get(key), dict):
            raise DataError(f"{checkpoint.source} is damaged, or not from a training run: its metadata has no "
                            f"'{key}' table.")
    model = checkpoint.document["config"].get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise DataError(f"{checkpoint.source} is damaged: its metadata names no model.")
    return checkpoint


def last_of(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "last.safetensors"


def find(target: Path, which: str = "last") -> Path:
    """A checkpoint file, or a run directory's checkpoint: ``last``, or ``best`` (the weights a run
    ends with; where no epoch was best, the run keeps its last weights, and so does this)."""
    target = Path(target)
    if not target.is_dir():
        return target
    last = last_of(target)
    if not last.is_file():
        raise DataError(f"Run directory '{target}' has no checkpoints/last.safetensors; was it trained with "
                        f"the 'checkpoint' callback?")
    best = last.with_name("best.safetensors")
    return best if which == "best" and best.is_file() else last


def load_weights_file(model: torch.nn.Module, path: Path, *, heads_as_built: bool = True,
                      skipped_prefixes: tuple[str, ...] = ()) -> None:
    """Load start weights from ``path`` (a safetensors file of a state dict, or a cvcore training
    checkpoint's model) as :func:`load_start_weights` does; nothing is unpickled."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise DataError(f"Weights file '{path}' does not exist.")
    checkpoint = load(path) if saved_epoch(path) is not None else None
    try:
        state = checkpoint.model_weights() if checkpoint else load_file(str(path))
    except Exception as exc:  # safetensors' own errors: a damaged or foreign file
        raise DataError(f"'{path}' is not a readable safetensors file: {exc}") from exc
    hint = ""
    if checkpoint is not None:
        info = checkpoint.data_info()
        hint = (f" It is a cvcore training checkpoint of model '{checkpoint.document['config']['model']['name']}' "
                f"for {info.num_classes} classes and {info.in_channels} input channel(s): to go on training it, "
                f"use cv train --resume.")
    load_start_weights(model, state, f"'{path}'", heads_as_built=heads_as_built, skipped_prefixes=skipped_prefixes,
                       hint=hint)


def load_start_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, *,
                       heads_as_built: bool = True, skipped_prefixes: tuple[str, ...] = (), hint: str = "") -> None:
    """Load the state dict ``state`` (from ``source``, as said in errors) into ``model``, naming any
    missing, extra or mis-shaped tensors in one DataError (``hint`` added). With ``heads_as_built``,
    a tensor whose shape differs only in its first dimension (a head sized for other classes:
    ImageNet's 1000, COCO's 91) is left as built, sized to the data. Saved tensors under
    ``skipped_prefixes`` that the model lacks (auxiliary heads it drops) are ignored."""
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(skipped_prefixes)}
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    heads = [k for k in wrong if heads_as_built and own[k].dim() == state[k].dim() and own[k].dim() >= 1
             and own[k].shape[1:] == state[k].shape[1:]]
    wrong = [k for k in wrong if k not in heads]
    # A BatchNorm's step counter is absent from files saved by a frozen (FrozenBatchNorm2d) model.
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    extra = sorted(set(state) - set(own))
    problems = [f"{label} {names[:3]}" for label, names in
                (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)) if names]
    if problems:
        raise DataError(f"Weights in {source} do not fit this model: {'; '.join(problems)} "
                        f"(check num_classes and the architecture).{hint}")
    model.load_state_dict({k: v for k, v in state.items() if k not in heads}, strict=False)  # checked above


@contextlib.contextmanager
def torchvision_downloads(what: str):
    """torchvision's weight downloads inside the block read their file (fetched or already in the hub
    cache) with ``weights_only=True``: a pickle placed in the cache cannot run code (torchvision's own
    loader unpickles anything). A failed download, or a file holding more than tensors, becomes one
    CvcoreError naming ``what`` and the cache."""
    import pickle
    from functools import partial
    from unittest import mock

    from torchvision.models import _api

    cache = Path(torch.hub.get_dir()) / "checkpoints"
    safe = partial(torch.hub.load_state_dict_from_url, weights_only=True)
    try:
        with mock.patch.object(_api, "load_state_dict_from_url", safe):  # fails loudly if torchvision moves it
            yield
    except pickle.UnpicklingError as exc:
        raise CvcoreError(
            f"torchvision's cached weights for {what} in {cache} hold more than tensors, so they were not "
            f"loaded ({str(exc).splitlines()[0]}). Delete the file to download it again."
        ) from None
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise CvcoreError(
            f"Could not fetch torchvision's pretrained weights for {what} ({exc}). Download them "
            f"once where a network is available (they are cached in {cache}), or pass "
            f"weights=PATH.safetensors to load a local file."
        ) from exc
