"""Continuing a run: its checkpoint and saved configuration, checked against what is built now."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from cvcore.errors import ConfigError
from cvcore.files import write_text
from cvcore.runs import config as cfg
from cvcore.training.options import TrainerOptions
from cvcore.training.state import numbers_of
from cvcore.runs.plan import providers

if TYPE_CHECKING:
    from cvcore.runs.build import Built

class Resume:
    """A run to continue: its checkpoint, its directory and the configuration it was saved with.

    A run stopped before its first checkpoint has only its config.toml: it starts again from that
    (``checkpoint`` is None, ``state`` empty)."""

    def __init__(self, target: Path) -> None:
        from cvcore import checkpoint as ckpt

        target = Path(target)
        if target.is_dir() and (target / "config.toml").is_file() and not ckpt.last_of(target).is_file():
            self.path, self.checkpoint, self.run_dir, self.state = None, None, target, {}
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
        self.state = self.checkpoint.state()  # read once: what the run has done, for the checks below

    @property
    def seed(self) -> int | None:
        """The seed the run drew (its config may say none: a fresh seed for each new run)."""
        seed = self.state.get("seed")
        return seed if isinstance(seed, int) else None

    def continued(self, config: dict) -> dict:
        """``config`` (the saved one, with this command's flags) checked against what the run has
        done. Fewer epochs than already run are refused. More epochs on a run that finished its
        planned epochs with its learning rate decayed below ``restart_lr`` x its base rate (a cosine
        at 0) restart the schedule over the added epochs from that share of the base rate (recorded
        as ``trainer.schedule_start``); a schedule that ended above it (a step schedule) goes on."""
        if self.checkpoint is None:
            return config
        state, default = self.state, attrs.fields(TrainerOptions).epochs.default
        done, epochs = state["epoch"], config.get("trainer", {}).get("epochs", default)
        if isinstance(epochs, int) and epochs < done:
            raise ConfigError(f"'{self.run_dir}' has already run {done} epochs; --epochs {epochs} would undo them. "
                              f"Resuming continues a run: give --epochs above {done}, or start a new run.")
        if epochs == done:
            print(f"note: '{self.run_dir}' has already run its {done} epochs, so nothing is trained and no option "
                  f"takes effect; give --epochs above {done} to extend it.", file=sys.stderr)
        planned = state.get("planned_epochs", self.config.get("trainer", {}).get("epochs", default))
        restart = config.get("trainer", {}).get("restart_lr", attrs.fields(TrainerOptions).restart_lr.default)
        group = state["optimizer"]["param_groups"][0]
        decayed = group["lr"] < restart * group.get("initial_lr", group["lr"]) * (1 - 1e-9)
        if not (isinstance(epochs, int) and done >= planned and epochs > done and decayed):
            return config
        print(f"note: extending the finished run '{self.run_dir}' from {done} to {epochs} epochs: its learning rate "
              f"had decayed to {group['lr']:.3g}, so its schedule restarts over the added epochs from {restart:g} x "
              f"the base rate (trainer.restart_lr).", file=sys.stderr)
        return cfg.merge(config, {"trainer": {"schedule_start": done}})

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
        self._check_same("optimizer", [saved["config"].get("optimizer", {}).get("name")],
                         [built.plan.part("optimizer").component])
        if self.state.get("schedule_start", 0) == built.trainer.options.schedule_start:
            self._check_same("scheduler", cfg.names(saved["config"], "scheduler"),
                             [p.component for p in built.plan.chained("scheduler")])
        self.checkpoint.load_weights_into(built.model, model.qualified_name)
        for key, provider in providers(built.plan).items():
            if saved.get("providers", {}).get(key, provider) != provider:
                print(f"warning: {key} was provided by {saved['providers'][key]} when saved, now by {provider}",
                      file=sys.stderr)

    def _check_same(self, section: str, saved: list, components: list) -> None:
        """Refuse a resume whose optimizer or schedulers differ from the saved ones: their saved
        state (momentum, progress) belongs to those. Their options may change."""
        if len(saved) != len(components) or not all(c.is_named(n) for c, n in zip(components, saved)):
            now = [c.qualified_name for c in components]
            raise ConfigError(f"Cannot resume '{self.path}' with {section} {now}: it was saved with {saved}, whose "
                              f"state it holds. Keep the {section} (its options may change), or start a new run "
                              f"(cv train -c {self.run_dir / 'config.toml'} ...).")

    def rewind_metrics(self) -> None:
        """Cut metrics.jsonl back to the checkpoint's epochs: a kill may have left rows past it
        (a run without a checkpoint starts again, so none are kept). Only numbers are taken from
        the checkpoint's history: a file from someone else may carry anything in its strings."""
        history = self.state["history"] if self.checkpoint else []
        write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(numbers_of(row)) + "\n" for row in history))
