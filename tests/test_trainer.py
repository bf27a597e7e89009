"""The Trainer on CPU: precision paths, reproducibility, accumulation, clipping, schedules, best weights."""

import json

import pytest
import torch

import cvcore
from cvcore.training.trainer import Trainer, TrainerOptions, seed_everything


def digits_trainer(tmp_path=None, callbacks=(), schedulers=(), model="lenet", optimizer="sgd", lr=0.05, transforms=None,
                   **options):
    """A small real run: digits at 16x16 (fast), built through the public API after seeding."""
    seed_everything(options.get("seed", 0))
    data = cvcore.create("dataset", "digits", image_size=16)
    net = cvcore.create("model", model, num_classes=10, in_channels=1, image_size=(16, 16))
    opt = cvcore.create("optimizer", optimizer, net.parameters(), lr=lr)
    built = [(cvcore.create("scheduler", name, opt, **kw), cvcore.get_component("scheduler", name).metadata["interval"])
             for name, kw in schedulers]
    defaults = {"epochs": 2, "batch_size": 64, "device": "cpu", "run_dir": tmp_path}
    return Trainer(model=net, loss=cvcore.create("loss", "cross_entropy"), optimizer=opt, data=data,
                   schedulers=built, callbacks=list(callbacks), transforms=transforms,
                   options=TrainerOptions(**{**defaults, **options}))


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


@pytest.mark.parametrize("transforms", [[], ["flip"]])
def test_a_set_fed_as_stored_is_normalised_once_to_the_same_numbers(monkeypatch, transforms):
    """In-memory sets whose batches go to the model untransformed (validation; training without
    transforms) are normalised once, not every batch: the same floats, and the run's numbers the
    same to the bit, as normalising each batch."""
    from cvcore.training import tensor_data

    generator = torch.Generator().manual_seed(0)

    def split(n):
        images = torch.randint(0, 256, (n, 3, 8, 8), generator=generator, dtype=torch.uint8)
        return cvcore.TensorImages(images, torch.randint(0, 4, (n,), generator=generator))

    info = cvcore.DataInfo(num_classes=4, class_names=list("abcd"), in_channels=3, image_size=(8, 8),
                           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    data = cvcore.DataSplits(split(96), split(40), info)

    def run():
        seed_everything(0)
        net = cvcore.create("model", "mlp", num_classes=4, in_channels=3, image_size=(8, 8))
        trainer = Trainer(model=net, loss=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
                          data=data, transforms=[cvcore.create("transform", name) for name in transforms],
                          options=TrainerOptions(epochs=2, batch_size=16, device="cpu", seed=0))
        trainer.fit()
        val = trainer.val_loader.device_batches.images
        if val.dtype == torch.float32:  # what each batch would have been
            assert torch.equal(val, trainer.prepare(data.val.images, data.val.targets, train=False)[0])
        stored = [loader.device_batches.images.dtype for loader in (trainer.train_loader, trainer.val_loader)]
        return stored, [{k: v for k, v in row.items() if k not in ("seconds", "images_per_second")}
                        for row in trainer.history]

    stored, history = run()
    assert stored == [torch.uint8 if transforms else torch.float32, torch.float32]
    monkeypatch.setattr(tensor_data, "HOST_COPY_BYTES", 0)  # no room for the float copy: bytes every batch
    assert run() == ([torch.uint8, torch.uint8], history)


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


def test_deterministic_flag_runs_and_warns_where_an_operation_has_no_deterministic_kernel():
    # On CUDA, torchvision ResNets' AdaptiveAvgPool2d backward has none: the run must warn, not fail.
    try:
        digits_trainer(deterministic=True, epochs=1, limit_train_batches=2).fit()
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
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
def test_compile_runs_on_cpu_with_gradient_accumulation():
    trainer = digits_trainer(model="mlp", compile=True, accumulate=2, epochs=1, limit_train_batches=3,
                             limit_val_batches=1)
    assert trainer.fit()["epochs_run"] == 1 and trainer.global_step == 2


class ScaledSum(torch.nn.Module):
    """A one-weight model: output w * x, so the gradient of a sum loss is the sum of the inputs."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return (self.w * x.flatten(1).sum(1, keepdim=True)).expand(-1, 2)


def test_a_shorter_last_accumulation_group_weighs_as_much_as_a_full_one():
    # 3 batches, accumulate 2: steps after batches (1, 2) and (3). With SGD lr 1 and a loss that is the
    # batch's mean output, each step moves w by minus the mean input of the batches in its group.
    images = torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1)
    data = cvcore.DataSplits(cvcore.TensorImages(images, torch.zeros(12, dtype=torch.long)),
                             cvcore.TensorImages(images[:2], torch.zeros(2, dtype=torch.long)),
                             cvcore.DataInfo(num_classes=2, class_names=["a", "b"], in_channels=1, image_size=(1, 1),
                                             mean=(0.0,), std=(1 / 255,)))
    model = ScaledSum()
    moves = []

    class Moves(cvcore.Callback):
        def on_batch_end(self, trainer, loss):
            moves.append(model.w.item())

    trainer = Trainer(model=model, loss=lambda out, target: out[:, 0].mean(), data=data,
                      optimizer=torch.optim.SGD(model.parameters(), lr=1.0), callbacks=[Moves()],
                      options=TrainerOptions(epochs=1, batch_size=4, accumulate=2, device="cpu", seed=0))
    trainer.fit()
    from cvcore.training.trainer import stream_seed

    order = torch.randperm(12, generator=torch.Generator().manual_seed(stream_seed(0, "data_order"))).float()
    first, last = order[:8].mean().item(), order[8:].mean().item()
    assert moves[1] == pytest.approx(-first) and moves[2] == pytest.approx(-first - last)


@pytest.mark.parametrize("flags_read", ["at once (CPU)", "a step late (accelerators)"])
def test_skipped_fp16_steps_do_not_advance_per_step_schedules(flags_read, monkeypatch):
    from cvcore.training import trainer as trainer_module

    if flags_read.startswith("a step late"):
        monkeypatch.setattr(trainer_module, "reads_cost_no_sync", lambda device: False)
    trainer = digits_trainer(precision="16-mixed", epochs=1, limit_train_batches=4,
                             schedulers=[("warmup", {"iterations": 10})])
    first = [True]

    def overflow_first_step(grad):  # an inf gradient: the GradScaler skips that step and backs off
        if first[0]:
            first[0] = False
            return grad * float("inf")
        return grad

    next(trainer.module.parameters()).register_hook(overflow_first_step)
    used = []  # the learning rate of each step taken (a skipped step never calls the optimizer)
    trainer.optimizer.register_step_pre_hook(lambda optimizer, *_: used.append(optimizer.param_groups[0]["lr"]))
    trainer.fit()
    assert trainer.global_step == 3  # four batches, one skipped step
    start = 0.05 / 10
    assert used == pytest.approx([start, start * 2, start * 3], rel=1e-3)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(start * 4, rel=1e-3)  # the epoch ends settled


def test_no_seed_means_a_new_random_run_each_time(in_tmp):
    from click.testing import CliRunner

    from cvcore.commands.cli import cli

    for run in ("a", "b"):
        result = CliRunner().invoke(cli, ["train", "--set", "trainer.seed=none", "--epochs", "1",
                                          "--limit-train-batches", "3", "--run-dir", run])
        assert result.exit_code == 0, result.output
    summaries = [json.loads((in_tmp / run / "summary.json").read_text()) for run in ("a", "b")]
    assert summaries[0]["seed"] != summaries[1]["seed"]
    assert summaries[0]["last"]["train_loss"] != summaries[1]["last"]["train_loss"]


def test_early_stopping_on_accuracy_defaults_to_higher_is_better():
    stopper = cvcore.create("callback", "early_stopping", monitor="val_acc1", patience=1)
    trainer = digits_trainer(epochs=4, callbacks=[stopper], lr=0.1)
    summary = trainer.fit()
    accuracies = [row["val_acc1"] for row in trainer.history]
    assert accuracies[1] > accuracies[0] and summary["epochs_run"] > 2, accuracies


def test_top5_is_reported_only_with_more_than_five_classes():
    data = cvcore.create("dataset", "digits", image_size=16)
    two = cvcore.DataSplits(data.train, data.val, cvcore.DataInfo(
        num_classes=2, class_names=["a", "b"], in_channels=1, image_size=(16, 16), mean=data.info.mean,
        std=data.info.std))
    keep = [i for i in range(len(data.train)) if data.train.targets[i] < 2]
    two.train.images, two.train.targets = data.train.images[keep], data.train.targets[keep]
    keep = [i for i in range(len(data.val)) if data.val.targets[i] < 2]
    two.val.images, two.val.targets = data.val.images[keep], data.val.targets[keep]
    net = cvcore.create("model", "lenet", num_classes=2, in_channels=1, image_size=(16, 16))
    trainer = Trainer(model=net, loss=torch.nn.CrossEntropyLoss(), data=two,
                      optimizer=torch.optim.SGD(net.parameters(), lr=0.05),
                      options=TrainerOptions(epochs=1, device="cpu"))
    metrics = trainer.fit()["last"]
    assert "val_acc1" in metrics and "val_acc5" not in metrics


@pytest.mark.parametrize("option", ["limit_train_batches", "limit_val_batches", "epochs", "batch_size"])
def test_zero_limits_and_sizes_are_refused(in_tmp, option):
    from click.testing import CliRunner

    from cvcore.commands.cli import cli

    result = CliRunner().invoke(cli, ["train", "--set", f"trainer.{option}=0"])
    assert result.exit_code == 1
    allowed = ">= 1 or auto" if option == "batch_size" else ">= 1"
    assert f"[trainer] {option} must be {allowed}, got 0." in result.output
    assert not (in_tmp / "runs").exists()


def test_a_runs_random_streams_are_independent_of_each_other():
    # One seed, several streams: the data order, the augmentations and weight init (torch's global
    # generator, seeded seed + rank) must not replay one another's draws (all began at seed before).
    from cvcore.training.trainer import stream_seed

    seeds = {0, 1, stream_seed(0, "data_order")}  # global per process; the data order shared by all
    seeds |= {stream_seed(0, "augment", rank) for rank in (0, 1)}
    assert len(seeds) == 5
    draws = {torch.rand(1, generator=torch.Generator().manual_seed(s)).item() for s in seeds}
    assert len(draws) == 5


def test_callback_state_keys_do_not_depend_on_other_callbacks():
    # Checkpoints keep each callback's state under its key: removing one callback must not
    # renumber another class's repeats.
    from cvcore.training.trainer import callback_keys

    class Bell(cvcore.Callback):
        pass

    class BellTower(cvcore.Callback):
        pass

    with_tower = callback_keys([Bell(), BellTower(), Bell()])
    without = callback_keys([Bell(), Bell()])
    assert with_tower[2] == without[1] and with_tower[2].endswith("Bell#2")


class AveragedByTorch(cvcore.Callback):
    """PyTorch's own exponential moving average (torch.optim.swa_utils), updated after every step."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def on_fit_start(self, trainer):
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        self.average = AveragedModel(trainer.module, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        self.average.update_parameters(trainer.module)  # its first update copies: the start, as ours

    def on_batch_end(self, trainer, loss):
        self.average.update_parameters(trainer.module)


def test_the_weights_average_is_pytorchs_exponential_moving_average():
    reference = AveragedByTorch(0.9)
    seed_everything(0)
    net = cvcore.create("model", "resnet18", num_classes=10, in_channels=1)  # BatchNorm: buffers averaged too
    trainer = Trainer(model=net, loss=cvcore.create("loss", "cross_entropy"),
                      optimizer=cvcore.create("optimizer", "sgd", net.parameters(), lr=0.05),
                      data=cvcore.create("dataset", "digits", image_size=16), callbacks=[reference],
                      options=TrainerOptions(epochs=1, limit_train_batches=6, device="cpu", ema=0.9, ema_warmup=False))
    trainer.fit()
    ours, theirs = trainer.ema.model.state_dict(), reference.average.module.state_dict()
    floating = [key for key, value in ours.items() if value.is_floating_point()]
    assert any("running_mean" in key for key in floating)  # BatchNorm statistics are averaged too
    assert all(torch.allclose(ours[key], theirs[key], atol=1e-6) for key in floating)
    assert trainer.ema.updates == 6


def test_the_weights_average_warms_up_as_timms_model_ema_v3():
    from cvcore.training.ema import WeightAverage

    average = WeightAverage(torch.nn.Linear(2, 2), decay=0.999, warmup=True, every=1)
    decays = []
    for _ in range(2000):
        decays.append(average.current_decay())
        average.step()
    timm = [max(min(1 - (1 + step / 1.0) ** (-2 / 3), 0.999), 0.0) for step in range(2000)]  # ModelEmaV3.get_decay
    assert decays == pytest.approx(timm) and decays[0] == 0.0 and 0.99 < decays[-1] < 0.999
    capped = WeightAverage(torch.nn.Linear(2, 2), decay=0.9, warmup=True, every=1)
    for _ in range(200):
        capped.step()
    assert capped.current_decay() == 0.9


def test_with_ema_validation_and_the_restored_weights_are_the_average():
    trainer = digits_trainer(epochs=2, limit_train_batches=5, ema=0.8)
    trainer.fit()
    best = trainer.best["epoch"]
    assert best is not None
    assert all(torch.equal(value, trainer.best["state"][key]) for key, value in trainer.module.state_dict().items())
    live = digits_trainer(epochs=2, limit_train_batches=5)
    live.fit()
    assert [row["train_loss"] for row in trainer.history] == [row["train_loss"] for row in live.history]  # training alike
    assert [row["val_loss"] for row in trainer.history] != [row["val_loss"] for row in live.history]  # measured: the average
