"""Built-in losses, optimizers, schedulers and callbacks: every one meets its contract, and the values are right."""

import pytest
import torch
import torch.nn.functional as F

import cvcore
from cvcore.testing import check_plugin


@pytest.mark.parametrize("plugin", ["losses", "optim", "callbacks"])
def test_every_component_of_builtin_plugin_meets_contract(plugin):
    assert check_plugin(plugin)


def test_cross_entropy_label_smoothing_and_weights_match_the_formula():
    logits, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    weight = [1.0, 2.0, 0.5, 1.0]
    loss = cvcore.create("loss", "cross_entropy", num_classes=4, label_smoothing=0.1, weight=weight)(logits, target)
    smoothed = F.one_hot(target, 4) * 0.9 + 0.1 / 4
    w = torch.tensor(weight)
    per_sample = -(smoothed * w * logits.log_softmax(1)).sum(1)
    assert loss == pytest.approx((per_sample.sum() / w[target].sum()).item(), rel=1e-5)


def test_bce_one_hot_matches_the_formula():
    logits, target = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    expected = F.binary_cross_entropy_with_logits(logits, F.one_hot(target, 3).float())
    assert cvcore.create("loss", "bce", num_classes=3)(logits, target) == pytest.approx(expected.item())


def test_mse_on_probabilities():
    logits, target = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    expected = ((logits.softmax(1) - F.one_hot(target, 3)) ** 2).mean()
    assert cvcore.create("loss", "mse", num_classes=3)(logits, target) == pytest.approx(expected.item())


@pytest.mark.parametrize(("kind", "name", "options", "message"), [
    ("loss", "cross_entropy", {"num_classes": 3, "weight": [1.0, 2.0]}, "2 class weights given for 3 classes"),
    ("loss", "cross_entropy", {"label_smoothing": 1.5}, "'label_smoothing' of loss 'cross_entropy' must be between 0.0 and 1.0, got 1.5"),
])
def test_bad_loss_options(kind, name, options, message):
    with pytest.raises(cvcore.OptionError, match=message):
        cvcore.create(kind, name, **options)


def test_nesterov_needs_momentum():
    with pytest.raises(cvcore.OptionError, match="nesterov=true needs momentum > 0"):
        cvcore.create("optimizer", "sgd", [torch.nn.Parameter(torch.ones(1))], nesterov=True)


def _lrs(name, steps, **options):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0)
    scheduler = cvcore.create("scheduler", name, optimizer, **options)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_schedules():
    assert _lrs("warmup", 5, epochs=2.0, steps_per_epoch=2) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert _lrs("step", 4, step_size=2, gamma=0.1) == pytest.approx([1, 1, 0.1, 0.1])
    assert _lrs("multistep", 5, milestones=[1, 3], gamma=0.5) == pytest.approx([1, 0.5, 0.5, 0.25, 0.25])
    assert _lrs("cosine", 3, total_epochs=2) == pytest.approx([1, 0.5, 0])
    assert _lrs("exponential", 3, gamma=0.5) == pytest.approx([1, 0.5, 0.25])
    assert _lrs("constant", 3) == pytest.approx([1, 1, 1])
    assert cvcore.get_component("scheduler", "warmup").metadata["interval"] == "step"
    assert cvcore.get_component("scheduler", "multistep").metadata["interval"] == "epoch"
