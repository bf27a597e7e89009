"""Callbacks that write what the Trainer already computed: CSV, learning rates, TensorBoard, ONNX, pictures."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from cvcore import Callback, task_name
from cvcore.files import append_text, make_directory, save_image, write_text


class RunFileCallback(Callback):
    """Writes one file in the run directory, from the main process only."""

    filename = ""

    def path(self, trainer) -> Path | None:
        if trainer.run_dir is None or not trainer.is_main:
            return None
        return Path(trainer.run_dir) / self.filename


class CsvLogger(RunFileCallback):
    """metrics.csv: the rows of metrics.jsonl (the source of truth) as a spreadsheet."""

    filename = "metrics.csv"

    def on_epoch_end(self, trainer, metrics: dict[str, float]) -> None:
        path = self.path(trainer)
        if path is None:
            return
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=list(trainer.history[-1]))
        writer.writeheader()
        writer.writerows(trainer.history)
        write_text(path, table.getvalue())  # rewritten whole: resumes stay consistent


class LrMonitor(RunFileCallback):
    """lr.jsonl: the learning rate of every parameter group after every optimizer step."""

    filename = "lr.jsonl"

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.last_step = -1

    def on_batch_end(self, trainer, loss) -> None:
        if trainer.global_step != self.last_step:  # reading lr is a host value: no device sync
            self.last_step = trainer.global_step
            lrs = [group["lr"] for group in trainer.optimizer.param_groups]
            self.rows.append(json.dumps({"step": trainer.global_step, "epoch": trainer.epoch + 1, "lr": lrs}))

    def on_epoch_end(self, trainer, metrics) -> None:
        path = self.path(trainer)
        if path is not None and self.rows:
            append_text(path, "\n".join(self.rows) + "\n")
        self.rows = []


class TensorBoardLogger(RunFileCallback):
    """Epoch metrics as TensorBoard scalars in RUN_DIR/tensorboard."""

    filename = "tensorboard"

    def on_fit_start(self, trainer) -> None:
        path = self.path(trainer)
        if path is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(make_directory(path)))

    def on_epoch_end(self, trainer, metrics: dict[str, float]) -> None:
        if self.path(trainer) is not None:
            for key, value in metrics.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, metrics["epoch"])
            self.writer.flush()

    def on_fit_end(self, trainer) -> None:
        if self.path(trainer) is not None:
            self.writer.close()


class OnnxExport(RunFileCallback):
    """model.onnx at the end of training (the restored best weights), checked and verified."""

    filename = "model.onnx"

    def __init__(self, opset: int | None) -> None:
        self.opset = opset

    def on_fit_end(self, trainer) -> None:
        path = self.path(trainer)
        if path is None:
            return
        from cvcore.export import LoadedModel, export_onnx

        name = trainer.metadata.get("config", {}).get("model", {}).get("name", type(trainer.module).__name__)
        difference = export_onnx(LoadedModel(trainer.module.eval(), trainer.data.info, name, trainer.metadata),
                                 path, self.opset)
        trainer.module.train()
        checked = "not verified (onnxruntime not installed)" if difference is None else f"max |diff| {difference:.2e}"
        print(f"exported {path}: {checked}", flush=True)


class PredictionGrid(RunFileCallback):
    """predictions.png after each validation: images with predicted and true labels (green right, red wrong)."""

    filename = "predictions.png"

    def __init__(self, count: int) -> None:
        self.count = count

    def on_validation_end(self, trainer, metrics) -> None:
        path = self.path(trainer)
        if path is None or task_name(trainer.data.info.task) != "classification":
            return
        from cvcore_callbacks.pictures import prediction_grid

        save_image(prediction_grid(trainer, self.count), path)
