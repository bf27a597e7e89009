"""The example plugin's own tests, written with cvcore's kit for plugin authors."""

import pytest
import torch

import cvcore
import cvcore_example
from cvcore.testing import check_plugin, plugin_registered
from cvcore import TrainerOptions


def test_every_component_meets_its_contract():
    with plugin_registered(cvcore_example, name="example-under-test"):
        kinds = {c.kind for c in check_plugin("example-under-test")}
    assert kinds == {"dataset", "model", "loss", "optimizer", "scheduler", "callback", "task"}


def test_trains_end_to_end():
    with plugin_registered(cvcore_example, name="example-under-test"):
        splits = cvcore.create("dataset", "example-under-test:stripes", size=128)
        model = cvcore.create("model", "example-under-test:tiny_cnn")
        loss_fn = cvcore.create("loss", "example-under-test:focal_ce")
        optimizer = cvcore.create("optimizer", "example-under-test:signsgd", model.parameters(), lr=0.01)
        trainer = cvcore.Trainer(model=model, loss=loss_fn, optimizer=optimizer, data=splits,
                                 options=TrainerOptions(epochs=4, batch_size=32, device="cpu"))
        summary = trainer.fit()
    assert summary["best_value"] > 0.9



def test_epoch_timer_writes_its_csv_to_the_run_directory(tmp_path):
    with plugin_registered(cvcore_example, name="example-under-test"):
        splits = cvcore.create("dataset", "example-under-test:stripes", size=64)
        model = cvcore.create("model", "example-under-test:tiny_cnn")
        optimizer = cvcore.create("optimizer", "example-under-test:signsgd", model.parameters())
        timer = cvcore.create("callback", "example-under-test:epoch_timer", filename="times.csv")
        trainer = cvcore.Trainer(model=model, loss=torch.nn.CrossEntropyLoss(), optimizer=optimizer, data=splits,
                                 callbacks=[timer], options=TrainerOptions(epochs=2, device="cpu", run_dir=tmp_path))
        trainer.fit()
    lines = (tmp_path / "times.csv").read_text().splitlines()
    assert lines[0] == "epoch,seconds" and [line.split(",")[0] for line in lines[1:]] == ["1", "2"]


@pytest.mark.parametrize(("kind", "name", "options", "message"), [
    ("scheduler", "halving", {"every": 0}, "'every' .* at least 1, got 0"),
    ("callback", "epoch_timer", {"filename": "../escape.csv"}, "plain file name"),
])
def test_bad_option_values_are_option_errors(kind, name, options, message):
    inputs = (torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1),) if kind == "scheduler" else ()
    with plugin_registered(cvcore_example, name="example-under-test"):
        with pytest.raises(cvcore.OptionError, match=message):
            cvcore.create(kind, f"example-under-test:{name}", *inputs, **options)


def test_its_own_task_trains_a_regression():
    with plugin_registered(cvcore_example, name="example-under-test"):
        splits = cvcore.create("dataset", "example-under-test:stripe_period", size=256)
        model = cvcore.create("model", "example-under-test:tiny_cnn", num_classes=1, width=16)
        optimizer = cvcore.create("optimizer", "adam", model.parameters(), lr=0.01)
        trainer = cvcore.Trainer(model=model, loss=cvcore.create("loss", "example-under-test:huber"),
                                 optimizer=optimizer, data=splits,
                                 options=TrainerOptions(epochs=8, batch_size=32, device="cpu"))
        summary = trainer.fit()
    assert summary["monitor"] == "val_mae" and summary["best_value"] < 1.0  # periods 2 to 8: guessing gives 1.5
