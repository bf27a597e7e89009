"""The example plugin's own tests, written with cvcore's kit for plugin authors."""

import cvcore
import cvcore_example
from cvcore.testing import check_plugin, plugin_registered
from cvcore.trainer import TrainerOptions


def test_every_component_meets_its_contract():
    with plugin_registered(cvcore_example, name="example-under-test"):
        kinds = {c.kind for c in check_plugin("example-under-test")}
    assert kinds == {"dataset", "model", "loss", "optimizer", "scheduler", "callback"}


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

