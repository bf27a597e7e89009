"""A whole job: a dry run, or training (claim the run directory, build, fit, write the summary)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import attrs

from cvcore.callbacks import Callback
from cvcore.files import write_text
from cvcore.runs import config as cfg
from cvcore.runs.build import Built
from cvcore.runs.plan import Plan, describe_parts, plan
from cvcore.runs.resume import Resume

# Versions of summary.json and of the rows of metrics.jsonl (stated in summary.json: a row holds
# only numbers). Keys are only ever added; removing or changing one is a new version.
SUMMARY_FORMAT, METRICS_FORMAT = "cvcore-summary/1", "cvcore-metrics/1"


def dry_run(plan: Plan, resume: Resume | None = None) -> list[str]:
    """Build everything, check that it fits (and, resuming, what the resume checks and loads), run
    one forward/backward batch; return report lines."""
    checkpoint = resume.checkpoint if resume else None
    built = Built(plan, None, resuming=checkpoint is not None, seed=resume.seed if resume else None)
    if resume is not None:
        resume.verify(built)
    trainer = built.trainer
    batch_size, loss = trainer.trial_step(checkpoint)
    params = sum(p.numel() for p in built.model.parameters())
    trainable = sum(p.numel() for p in built.model.parameters() if p.requires_grad)
    info = built.data.info
    return [*plan.notes, *describe_parts(built.plan),
            f"data      {len(built.data.train)} train / {len(built.data.val)} val images, "
            f"{info.num_classes} {trainer.task.items}, {info.in_channels}x{info.image_size[0]}x"
            f"{info.image_size[1]}",
            f"model     {params:,} parameters ({trainable:,} trainable)",
            *([f"resume    from epoch {trainer.epoch} of '{resume.path}'"] if checkpoint is not None else []),
            f"one batch of {batch_size}: loss {loss:.4f}, backward ok on {trainer.device}"]


class ConfigRecord(Callback):
    """Rewrites config.toml when the run changes its own configuration (a time budget sizing its
    epochs after the first), so that the file always re-runs or resumes the same run."""

    def __init__(self, path: Path, written: str) -> None:
        self.path, self.written = path, written

    def on_epoch_end(self, trainer, metrics) -> None:
        text = cfg.to_toml(trainer.metadata["config"])
        if text != self.written:
            write_text(self.path, text)
            self.written = text


def train(config: dict[str, Any], resume: Resume | None = None,
          callbacks: tuple = ()) -> tuple[dict[str, Any], Path | None]:
    """Run a whole training job, or continue one from a checkpoint; returns the summary and run directory.
    ``callbacks``: objects added to the configured ones (a search's pruning), not recorded.

    The run directory is claimed before anything is built and keeps only what a run wrote: a run
    that fails while building leaves no directory behind (or, resumed, its files as they were)."""
    from cvcore.runs.rundir import RunDir
    from cvcore.training import distributed

    checked = plan(config)
    if distributed.is_main():
        for note in checked.notes:
            print(note, file=sys.stderr)
    claim = RunDir.claim(config, resuming=resume and resume.run_dir) if distributed.is_main() else None
    run_dir = claim.path if claim else None
    resolved = cfg.merge(checked.config, {"trainer": {"run_dir": str(run_dir)}}) if run_dir else checked.config
    try:
        built = Built(attrs.evolve(checked, config=resolved), run_dir, resuming=bool(resume and resume.checkpoint),
                      seed=resume.seed if resume else None)
        if resume is not None:
            resume.verify(built)
    except BaseException:
        if claim:
            claim.abandon()
        raise
    try:
        if claim:
            if resume is not None:
                resume.rewind_metrics()
            recorded = ConfigRecord(run_dir / "config.toml", cfg.to_toml(built.plan.config))
            write_text(recorded.path, recorded.written)
        built.trainer.callbacks.extend([*callbacks, *([recorded] if claim else [])])
        summary = built.trainer.fit(resume.checkpoint if resume else None)
        if claim:
            document = {"format": SUMMARY_FORMAT, "metrics_format": METRICS_FORMAT, **summary}
            write_text(run_dir / "summary.json", json.dumps(document, indent=2) + "\n")
    finally:
        if claim:
            claim.release()
    return summary, run_dir
