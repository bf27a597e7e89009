"""Dice, IoU, Tversky, focal and Dice+CE against independent formulas, gradients and edge cases."""

import pytest
import torch
import torch.nn.functional as F
import torchvision

import cvcore

OVERLAP = ["dice", "iou", "tversky"]
ALL = OVERLAP + ["focal", "dice_bce"]


def overlap_reference(probs, onehot, a, alpha, beta):
    """Per class over the batch, class by class, with set notation: |P∩T|, |P \\ T|, |T \\ P|."""
    losses, present = [], []
    for c in range(probs.shape[1]):
        p, t = probs[:, c].flatten(), onehot[:, c].flatten()
        inter = (p * t).sum()
        only_p, only_t = p.sum() - inter, t.sum() - inter
        losses.append(1 - a * inter / (a * inter + alpha * only_p + beta * only_t))
        present.append(bool(t.sum() > 0) or bool((probs.argmax(1) == c).any()))
    chosen = [loss for loss, keep in zip(losses, present) if keep]
    return torch.stack(chosen).mean()


PARAMS = {"dice": (2, 1, 1), "iou": (1, 1, 1), "tversky": (1, 0.3, 0.7)}


@pytest.mark.parametrize("name", OVERLAP)
def test_multiclass_overlap_matches_formula(name):
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 5, 5), torch.randint(0, 3, (2, 5, 5))
    expected = overlap_reference(logits.softmax(1), F.one_hot(target, 3).permute(0, 3, 1, 2).float(), *PARAMS[name])
    assert cvcore.create("loss", name)(logits, target) == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", OVERLAP)
def test_binary_and_multilabel_overlap_match_formula(name):
    torch.manual_seed(1)
    logits, target = torch.randn(3, 1, 6, 6), torch.randint(0, 2, (3, 1, 6, 6)).float()
    a, alpha, beta = PARAMS[name]
    p = logits.sigmoid()
    inter = (p * target).sum()
    expected = 1 - a * inter / (a * inter + alpha * (p.sum() - inter) + beta * (target.sum() - inter))
    assert cvcore.create("loss", name, mode="binary")(logits, target) == pytest.approx(expected.item(), rel=1e-5)
    assert cvcore.create("loss", name, mode="binary")(logits, target[:, 0].long()) == pytest.approx(expected.item(), rel=1e-5)
    labels = torch.randint(0, 2, (3, 4, 6, 6)).float()
    multi = torch.randn(3, 4, 6, 6)
    per_class = [cvcore.create("loss", name, mode="binary")(multi[:, c:c + 1], labels[:, c:c + 1]) for c in range(4)]
    assert cvcore.create("loss", name, mode="multilabel")(multi, labels) == pytest.approx(torch.stack(per_class).mean().item(), rel=1e-5)


def test_binary_focal_matches_torchvision():
    torch.manual_seed(2)
    logits, target = torch.randn(4, 1, 8, 8), torch.randint(0, 2, (4, 1, 8, 8)).float()
    expected = torchvision.ops.sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, reduction="mean")
    ours = cvcore.create("loss", "focal", mode="binary", alpha=0.25, gamma=2.0)(logits, target)
    assert ours == pytest.approx(expected.item(), rel=1e-5)
    per_element = cvcore.create("loss", "focal", mode="multilabel", alpha=0.25, reduction="none")(logits, target)
    assert torch.allclose(per_element, torchvision.ops.sigmoid_focal_loss(logits, target, reduction="none"), atol=1e-6)


def test_multilabel_focal_takes_one_alpha_per_class():
    torch.manual_seed(3)
    logits, target = torch.randn(6, 3), torch.randint(0, 2, (6, 3)).float()
    alphas = [0.1, 0.5, 0.9]
    ours = cvcore.create("loss", "focal", mode="multilabel", alpha=alphas, reduction="none")(logits, target)
    for column, alpha in enumerate(alphas):
        expected = torchvision.ops.sigmoid_focal_loss(logits[:, column], target[:, column], alpha=alpha,
                                                      reduction="none")
        assert torch.allclose(ours[:, column], expected, atol=1e-6)
    with pytest.raises(cvcore.OptionError, match="2 alpha weights for 3 classes"):
        cvcore.create("loss", "focal", mode="multilabel", alpha=[0.1, 0.2])(logits, target)


def test_multiclass_focal_is_per_element():
    torch.manual_seed(3)
    logits, target = torch.randn(10, 4), torch.randint(0, 4, (10,))
    p_t = logits.softmax(1)[torch.arange(10), target]
    expected = (-(1 - p_t) ** 2 * p_t.log()).mean()
    assert cvcore.create("loss", "focal")(logits, target) == pytest.approx(expected.item(), rel=1e-5)
    weights = [0.1, 0.2, 0.3, 0.4]
    weighted = (-torch.tensor(weights)[target] * (1 - p_t) ** 2 * p_t.log()).mean()
    assert cvcore.create("loss", "focal", alpha=weights)(logits, target) == pytest.approx(weighted.item(), rel=1e-5)
    assert cvcore.create("loss", "focal", gamma=0.0)(logits, target) == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-5)


def test_dice_bce_is_the_sum_of_its_parts():
    logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    expected = cvcore.create("loss", "dice")(logits, target) + 0.5 * F.cross_entropy(logits, target)
    assert cvcore.create("loss", "dice_bce", bce_weight=0.5)(logits, target) == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("mode", ["multiclass", "binary"])
def test_gradcheck_float64(name, mode):
    torch.manual_seed(4)
    shape = (2, 3, 3, 3) if mode == "multiclass" else (2, 1, 3, 3)
    logits = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (2, 3, 3)) if mode == "multiclass" else torch.randint(0, 2, shape).double()
    options = {"mode": mode, **({"smooth": 1.0} if name != "focal" else {})}
    loss_fn = cvcore.create("loss", name, **options)
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, target), (logits,))


@pytest.mark.parametrize("name", ALL)
def test_perfect_prediction_scores_zero_and_worst_near_one(name):
    target = torch.randint(0, 3, (2, 6, 6))
    onehot = F.one_hot(target, 3).permute(0, 3, 1, 2).float()
    loss_fn = cvcore.create("loss", name)
    assert loss_fn(100 * (2 * onehot - 1), target) == pytest.approx(0.0, abs=1e-6)
    worst = loss_fn(-100 * (2 * onehot - 1), target)
    if name in OVERLAP:
        assert worst == pytest.approx(1.0, abs=1e-6)
    else:
        assert worst > 10  # unbounded: log of a vanishing probability


@pytest.mark.parametrize("name", ALL)
def test_finite_for_extreme_logits(name):
    logits = (torch.randint(0, 2, (2, 3, 4, 4)).float() * 200 - 100).requires_grad_()
    value = cvcore.create("loss", name)(logits, torch.randint(0, 3, (2, 4, 4)))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", ALL)
def test_ignore_index_pixels_are_left_out(name):
    torch.manual_seed(5)
    logits, target = torch.randn(1, 3, 4, 4), torch.randint(0, 3, (1, 4, 4))
    masked = target.clone()
    masked[0, :2] = 255  # the top half is ignored
    ours = cvcore.create("loss", name, ignore_index=255)(logits, masked)
    bottom = cvcore.create("loss", name)(logits[:, :, 2:], target[:, 2:])
    assert ours == pytest.approx(bottom.item(), rel=1e-5)


def test_absent_class_does_not_distort_the_mean():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :, :2] = 1  # classes 0 and 1 only
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 0, :, 2:] = 5
    logits[0, 1, :, :2] = 5  # class 2 is never predicted either
    both = cvcore.create("loss", "dice")(logits, target)
    assert both == pytest.approx(cvcore.create("loss", "dice", classes=[0, 1])(logits, target).item())
    assert cvcore.create("loss", "dice", reduction="none")(logits, target)[2] == 0
    assert both < 0.02


def test_half_precision_is_computed_in_float32():
    model = torch.nn.Conv2d(3, 3, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(2, 3, 8, 8))
        assert logits.dtype == torch.bfloat16
        for name in ALL:
            value = cvcore.create("loss", name)(logits, torch.randint(0, 3, (2, 8, 8)))
            assert value.dtype == torch.float32 and torch.isfinite(value)


@pytest.mark.parametrize(("options", "logits", "target", "message"), [
    ({}, torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 1, 4, 4)),
     r"dice \(mode multiclass\) expects integer targets of shape \(N, ...\) for logits \(N, C, ...\); "
     r"got logits \(2, 3, 4, 4\) and target \(2, 1, 4, 4\) int64"),
    ({}, torch.randn(2, 3, 4, 4), torch.full((2, 4, 4), 7), r"expects target values 0..2; found values from 7 to 7"),
    ({"mode": "binary"}, torch.randn(2, 1, 4, 4), torch.full((2, 1, 4, 4), 3.0), r"expects target values 0 or 1"),
    ({"mode": "multilabel"}, torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4)),
     r"mode multilabel\) expects targets of the same shape as the logits"),
])
def test_wrong_inputs_say_what_was_expected(options, logits, target, message):
    with pytest.raises(cvcore.OptionError, match=message):
        cvcore.create("loss", "dice", **options)(logits, target)


def test_bad_mode_is_refused_when_built():
    with pytest.raises(cvcore.OptionError, match="Option 'mode' of loss 'dice' must be 'binary' | 'multiclass' | 'multilabel'"):
        cvcore.create("loss", "dice", mode="softmax")


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_weighted_cross_entropy_is_normalised_alike_for_class_ids_and_probabilities(smoothing):
    # torch divides probability targets by the batch size but class ids by their weights: listing
    # mixup must not change the loss's scale (a uniform weight of 5 gave 13.66 instead of 2.73).
    logits, labels = torch.randn(16, 4), torch.arange(16) % 4
    weight = [0.5, 1.0, 2.0, 4.0]
    loss = cvcore.create("loss", "cross_entropy", num_classes=4, weight=weight, label_smoothing=smoothing)
    one_hot = F.one_hot(labels, 4).float()
    assert loss(logits, one_hot).item() == pytest.approx(loss(logits, labels).item(), rel=1e-5)
    uniform = cvcore.create("loss", "cross_entropy", num_classes=4, weight=[5.0] * 4, label_smoothing=smoothing)
    plain = cvcore.create("loss", "cross_entropy", num_classes=4, label_smoothing=smoothing)
    mixed = 0.7 * one_hot + 0.3 * one_hot.flip(0)
    assert uniform(logits, mixed).item() == pytest.approx(plain(logits, mixed).item(), rel=1e-5)


def test_bce_takes_multilabel_rows_stored_as_bytes():
    logits = torch.randn(6, 3)
    rows = (torch.rand(6, 3) > 0.5).to(torch.uint8)
    loss = cvcore.create("loss", "bce", num_classes=3)
    expected = F.binary_cross_entropy_with_logits(logits, rows.float())
    assert loss(logits, rows.long()).item() == pytest.approx(expected.item(), rel=1e-6)  # bytes arrive as ids
