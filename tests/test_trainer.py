"""The Trainer on CPU: precision paths, reproducibility, accumulation, clipping, schedules, best weights."""

import json

import pytest
import torch

import cvcore
from cvcore.trainer import Trainer, TrainerOptions, seed_everything


def digits_trainer(tmp_path=None, callbacks=(), schedulers=(), model="lenet", optimizer="sgd", lr=0.05, **options):
    """A small real run: digits at 16x16 (fast), built through the public API after seeding."""
    seed_everything(options.get("seed", 0))
    data = cvcore.create("dataset", "digits", image_size=16)
    net = cvcore.create("model", model, num_classes=10, in_channels=1, image_size=(16, 16))
    opt = cvcore.create("optimizer", optimizer, net.parameters(), lr=lr)
    built = [(cvcore.create("scheduler", name, opt, **kw), cvcore.get_component("scheduler", name).metadata["interval"])
             for name, kw in schedulers]
    defaults = {"epochs": 2, "batch_size": 64, "device": "cpu", "run_dir": tmp_path}
    return Trainer(model=net, loss=cvcore.create("loss", "cross_entropy"), optimizer=opt, data=data,
                   schedulers=built, callbacks=list(callbacks), options=TrainerOptions(**{**defaults, **options}))


class Recorder(cvcore.Callback):
    """Records every event, and the learning rate after every step."""

    def __init__(self):
        self.events, self.lrs = [], []

    def on_fit_start(self, trainer):
        self.events.append("fit_start")

    def on_epoch_start(self, trainer):
        self.events.append("epoch_start")

    def on_batch_end(self, trainer, loss):
        self.lrs.append(trainer.lr)

    def on_validation_end(self, trainer, metrics):
        self.events.append("validation_end")

    def on_epoch_end(self, trainer, metrics):
        self.events.append("epoch_end")

    def on_fit_end(self, trainer):
        self.events.append("fit_end")


def test_metrics_file_and_events(tmp_path):
    recorder = Recorder()
    summary = digits_trainer(tmp_path, callbacks=[recorder]).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_loss", "val_loss", "val_acc1", "val_acc5", "lr", "seconds", "images_per_second"):
        assert key in rows[0]
    assert all(0 <= r[k] <= 1 for r in rows for k in ("val_acc1", "val_acc5", "train_acc1"))
    assert recorder.events == ["fit_start"] + ["epoch_start", "validation_end", "epoch_end"] * 2 + ["fit_end"]
    assert set(summary["per_class"]) == {str(d) for d in range(10)} and summary["per_class_metric"] == "accuracy"


def test_same_seed_same_losses_on_cpu(tmp_path):
    first = digits_trainer(seed=7)
    first.fit()
    second = digits_trainer(seed=7)
    second.fit()
    strip = lambda h: [{k: v for k, v in row.items() if k not in ("seconds", "images_per_second")} for row in h]  # noqa: E731
    assert strip(first.history) == strip(second.history)
    third = digits_trainer(seed=8)
    third.fit()
    assert strip(third.history) != strip(first.history)


def test_deterministic_flag_runs():
    try:
        digits_trainer(deterministic=True, epochs=1, limit_train_batches=2).fit()
    finally:
        torch.use_deterministic_algorithms(False)


def test_bf16_mixed_runs_on_cpu_without_scaler():
    trainer = digits_trainer(precision="bf16-mixed", epochs=1, limit_train_batches=3)
    assert not trainer.scaler.is_enabled()
    with trainer._autocast():
        assert trainer.module(torch.zeros(2, 1, 16, 16)).dtype == torch.bfloat16
    assert trainer.fit()["last"]["train_loss"] > 0


def test_fp16_mixed_uses_a_grad_scaler():
    trainer = digits_trainer(precision="16-mixed", epochs=1, limit_train_batches=3)
    assert trainer.scaler.is_enabled() and trainer.autocast_dtype == torch.float16
    trainer.fit()
    assert trainer.scaler.get_scale() > 0 and trainer.global_step == 3
    assert not digits_trainer().scaler.is_enabled()


def test_channels_last_runs():
    trainer = digits_trainer(channels_last=True, epochs=1, limit_train_batches=2)
    trainer.fit()
    assert trainer.module.features[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_gradient_accumulation_steps_every_n_batches():
    trainer = digits_trainer(accumulate=3, epochs=1, limit_train_batches=7)
    trainer.fit()
    assert trainer.global_step == 3  # after batches 3, 6 and the last (7)


def test_gradient_clipping_bounds_the_update():
    trainer = digits_trainer(clip_norm=0.01, lr=1.0, epochs=1, limit_train_batches=1)
    before = torch.cat([p.detach().flatten().clone() for p in trainer.module.parameters()])
    trainer.fit()
    after = torch.cat([p.detach().flatten() for p in trainer.module.parameters()])
    assert 0 < (after - before).norm() <= 0.01 + 1e-6


def test_warmup_then_multistep_per_iteration_and_per_epoch():
    recorder = Recorder()
    trainer = digits_trainer(callbacks=[recorder], lr=0.1, epochs=3, batch_size=256, schedulers=[
        ("warmup", {"iterations": 4}), ("multistep", {"milestones": [2], "gamma": 0.1})])
    trainer.fit()
    steps = len(recorder.lrs) // 3  # 6 steps per epoch
    assert recorder.lrs[:4] == pytest.approx([0.05, 0.075, 0.1, 0.1])  # stepped after each step
    assert recorder.lrs[steps:2 * steps] == pytest.approx([0.1] * steps)
    assert recorder.lrs[2 * steps:] == pytest.approx([0.01] * steps)  # decayed after epoch 2


def test_best_epoch_weights_are_restored():
    trainer = digits_trainer(epochs=3, monitor="val_loss", monitor_mode="min")
    summary = trainer.fit()
    best = min(trainer.history, key=lambda row: row["val_loss"])
    assert summary["best_epoch"] == best["epoch"] and summary["best_value"] == best["val_loss"]
    for key, value in trainer.module.state_dict().items():
        assert torch.equal(value, trainer.best["state"][key])


def test_early_stopping_requests_a_stop():
    stopper = cvcore.create("callback", "early_stopping", monitor="val_acc1", mode="max", patience=1, min_delta=1.0)
    summary = digits_trainer(callbacks=[stopper], epochs=5).fit()
    assert summary["epochs_run"] == 2 and "early stopping" in summary["stop_reason"]


def test_unknown_monitor_is_a_config_error():
    with pytest.raises(cvcore.ConfigError, match="monitor 'val_f1' is not a logged metric"):
        digits_trainer(monitor="val_f1", epochs=1, limit_train_batches=1).fit()


def test_missing_device_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(cvcore.ConfigError, match="CUDA is not available"):
        digits_trainer(device="cuda")


@pytest.mark.slow
def test_compile_runs_on_cpu():
    trainer = digits_trainer(model="mlp", compile=True, epochs=1, limit_train_batches=2, limit_val_batches=1)
    assert trainer.fit()["epochs_run"] == 1
