"""Each hook, exercised through a throwaway plugin and the public API."""

import pytest

import cvcore
from cvcore.testing import check_component, plugin_registered
from plugins_for_tests import plugin


def make_dataset(*, size: int = 8):
    """Eight zero images."""
    import torch
    from torch.utils.data import TensorDataset

    info = cvcore.DataInfo(num_classes=2, class_names=["a", "b"], in_channels=1, image_size=(4, 4),
                           mean=(0.0,), std=(1.0,))
    data = TensorDataset(torch.zeros(size, 1, 4, 4), torch.zeros(size, dtype=torch.long))
    return cvcore.DataSplits(data, data, info)


def make_model(*, num_classes: int = 2, in_channels: int = 1):
    """Pool and classify."""
    from torch import nn

    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes))


def make_loss():
    """Plain cross-entropy."""
    from torch import nn

    return nn.CrossEntropyLoss()


def make_optimizer(params, *, lr: float = 0.5):
    """SGD."""
    import torch

    return torch.optim.SGD(params, lr=lr)


def make_scheduler(optimizer, *, steps_per_epoch: int = 1):
    """Halve every epoch's worth of steps."""
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, steps_per_epoch, 0.5)


def make_callback():
    """Does nothing."""
    return cvcore.Callback()


def _with(hook, factory, kind, name="thing"):
    def implementation(register):
        register(name, factory, **({"interval": "step"} if kind == "scheduler" else {}))

    return plugin_registered(plugin(**{hook: implementation}), name="hooks")


def test_register_datasets():
    with _with("register_datasets", make_dataset, "dataset"):
        splits = check_component("dataset", "thing", size=4)
        assert len(splits.train) == 4 and cvcore.get_component("dataset", "hooks:thing").plugin.name == "hooks"


def test_register_models():
    with _with("register_models", make_model, "model"):
        model = check_component("model", "thing", num_classes=5, in_channels=2)
        assert model[-1].out_features == 5


def test_register_losses():
    with _with("register_losses", make_loss, "loss"):
        assert check_component("loss", "thing").__class__.__name__ == "CrossEntropyLoss"


def test_register_optimizers():
    with _with("register_optimizers", make_optimizer, "optimizer"):
        assert check_component("optimizer", "thing", lr=0.25).param_groups[0]["lr"] == 0.25


def test_register_schedulers():
    with _with("register_schedulers", make_scheduler, "scheduler"):
        assert cvcore.get_component("scheduler", "thing").metadata == {"interval": "step"}
        scheduler = check_component("scheduler", "thing", steps_per_epoch=2)
        assert scheduler.optimizer.param_groups[0]["lr"] == 0.1 * 0.5**2


def test_register_callbacks():
    with _with("register_callbacks", make_callback, "callback"):
        assert isinstance(check_component("callback", "thing"), cvcore.Callback)


def test_hook_implementation_may_omit_register_argument():
    calls = []
    with plugin_registered(plugin(register_models=lambda: calls.append(1)), name="lazy"):
        cvcore.list_components()
    assert calls == [1]


def make_task():
    """Classification whose best epoch is the lowest validation loss."""
    from cvcore_tasks.classification import Classification

    class LowestLoss(Classification):
        default_monitor = "val_loss"

    return LowestLoss()


def test_register_tasks():
    with _with("register_tasks", make_task, "task"):
        assert check_component("task", "thing").default_monitor == "val_loss"
        splits = make_dataset()
        info = cvcore.DataInfo(**{**splits.info.fill(), "task": "hooks:thing"})
        model, loss = make_model(), make_loss()
        trainer = cvcore.Trainer(model=model, loss=loss, optimizer=make_optimizer(model.parameters()),
                                 data=cvcore.DataSplits(splits.train, splits.val, info),
                                 options=cvcore.TrainerOptions(epochs=1, device="cpu"))
        assert trainer.fit()["monitor"] == "val_loss"


class Invert(cvcore.Transform):
    """Inverts every image and notes what it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, images, targets, generator):
        self.calls.append((images.min().item(), images.max().item(), generator is not None))
        return 1 - images, targets


def make_transform():
    """Invert the colours."""
    return Invert()


class ViewedRoll(cvcore.Transform):
    """Moves every image's pixels along by one through a flat view, as if batches had one layout."""

    geometric = True

    def __call__(self, images, targets, generator):
        return images.view(len(images), -1).roll(1, 1).view(images.shape), targets


def make_viewed_roll():
    """Roll the pixels."""
    return ViewedRoll()


def test_check_component_refuses_a_geometric_transform_that_cannot_take_channels_last_bytes():
    """The folder cache's batches reach geometric transforms channels last in memory."""
    with _with("register_transforms", make_viewed_roll, "transform"):
        with pytest.raises(AssertionError, match="fails on a channels-last batch.*reshape rather than view"):
            check_component("transform", "thing")


def test_register_transforms():
    with _with("register_transforms", make_transform, "transform"):
        transform = check_component("transform", "thing")
        transform.calls.clear()
        model, seen = make_model(), []

        class Inputs(cvcore.Callback):
            def on_fit_start(self, trainer):
                seen.append(trainer.prepare(*next(iter(trainer.train_loader)), train=True)[0].mean().item())
                seen.append(trainer.prepare(*next(iter(trainer.val_loader)), train=False)[0].mean().item())

        trainer = cvcore.Trainer(model=model, loss=make_loss(), optimizer=make_optimizer(model.parameters()),
                                 data=make_dataset(), transforms=[transform], callbacks=[Inputs()],
                                 options=cvcore.TrainerOptions(epochs=1, device="cpu", batch_size=4))
        trainer.fit()
        assert seen == [1.0, 0.0]  # training batches inverted (zeros become ones), validation untouched
        assert transform.calls[0] == (0.0, 0.0, True)  # [0, 1] pixels (mean 0, std 1 undone) and a generator
        assert len(transform.calls) == 1 + 2  # the callback's batch, then the epoch's two batches
