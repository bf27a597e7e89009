"""Continuing a run: its checkpoint and saved configuration, checked against what is built now."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cvcore.errors import ConfigError
from cvcore.runs import config as cfg
from cvcore.runs.plan import providers

if TYPE_CHECKING:
    from cvcore.runs.build import Built

class Resume:
    """A run to continue: its checkpoint, its directory and the configuration it was saved with.

    A run stopped before its first checkpoint has only its config.toml: it starts again from that
    (``checkpoint`` is None)."""

    def __init__(self, target: Path) -> None:
        from cvcore import checkpoint as ckpt

        target = Path(target)
        if target.is_dir() and (target / "config.toml").is_file() and not ckpt.last_of(target).is_file():
            self.path, self.checkpoint, self.run_dir = None, None, target
            self.config = cfg.load(target / "config.toml")
            print(f"note: '{target}' stopped before its first checkpoint; starting it again from its config.toml",
                  file=sys.stderr)
            return
        self.path = ckpt.find(target)
        self.checkpoint = ckpt.load_run(self.path)
        self.run_dir = target if target.is_dir() else self.path.parent.parent
        if not (self.run_dir / "config.toml").is_file():
            raise ConfigError(f"Cannot resume from '{self.path}': it is not inside a run directory "
                              f"(RUN/checkpoints/*.safetensors beside RUN/config.toml), and resuming writes to "
                              f"the run directory. Pass the run directory, or copy the file into one.")
        self.config = self.checkpoint.document["config"]

    def verify(self, built: Built) -> None:
        """Refuse a model, class count or weights that differ from the saved ones; warn about
        plugin versions that changed since the save."""
        if self.checkpoint is None:
            return
        saved, info = self.checkpoint.document, built.data.info
        saved_model, model = saved["config"]["model"]["name"], built.plan.part("model").component
        saved_classes = self.checkpoint.data_info().num_classes
        if not model.is_named(saved_model) or saved_classes != info.num_classes:
            raise ConfigError(f"Cannot resume '{self.path}': it holds model '{saved_model}' for "
                              f"{saved_classes} classes, this run builds '{model.qualified_name}' for "
                              f"{info.num_classes} classes.")
        self.checkpoint.load_weights_into(built.model, model.qualified_name)
        for key, provider in providers(built.plan).items():
            if saved.get("providers", {}).get(key, provider) != provider:
                print(f"warning: {key} was provided by {saved['providers'][key]} when saved, now by {provider}",
                      file=sys.stderr)

    def rewind_metrics(self) -> None:
        """Cut metrics.jsonl back to the checkpoint's epochs: a kill may have left rows past it
        (a run without a checkpoint starts again, so none are kept)."""
        rows = "".join(json.dumps(row) + "\n" for row in self.checkpoint.state()["history"]) if self.checkpoint else ""
        (self.run_dir / "metrics.jsonl").write_text(rows, encoding="utf-8")
