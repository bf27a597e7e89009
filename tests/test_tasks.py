"""Tasks are a registered kind: the kernel names none, the built-in ones behave as before, and the
multi-label task measures what its definition says."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from cvcore_tasks.multilabel import MultilabelMetrics
from PIL import Image
from sklearn.metrics import average_precision_score, f1_score

import cvcore
from cvcore.commands.cli import cli
from cvcore.testing import check_plugin

ROOT = Path(__file__).resolve().parents[1]


def cv(*args):
    return CliRunner().invoke(cli, list(args))


def test_built_in_tasks_meet_the_task_contract():
    kinds = {c.name for c in check_plugin("tasks")}
    assert kinds == {"classification", "segmentation", "multilabel"}


def test_cv_list_and_info_show_tasks():
    assert "multilabel" in cv("list", "task").output
    info = cv("info", "multilabel").output
    assert "best epoch by default: val_map" in info and "val_f1" in info


def measured(logits: torch.Tensor, truth: np.ndarray, batch: int = 64) -> MultilabelMetrics:
    """Validation metrics over ``logits`` fed in batches, as in training."""
    metrics = MultilabelMetrics(truth.shape[1], torch.device("cpu"), detailed=True)
    for start in range(0, len(truth), batch):
        part = slice(start, start + batch)
        metrics.update(logits[part], torch.tensor(truth[part]), torch.tensor(0.5))
    metrics.tensors()
    metrics.rows()
    return metrics


def score_sets():
    """(name, logits, truth): realistic, confident, near-zero and tied scores, and a class without positives."""
    rng = np.random.default_rng(0)
    truth = (rng.random((400, 4)) < [0.1, 0.3, 0.5, 0.8]).astype(np.float32)
    scores = np.clip(truth * 0.35 + rng.random((400, 4)) * 0.65, 1e-6, 1 - 1e-6)
    realistic = torch.logit(torch.tensor(scores, dtype=torch.float64)).float()
    yield "realistic", realistic, truth
    yield "confident (logits x 8)", realistic * 8, truth  # sigmoids round to 1.0 in float32
    yield "near zero", realistic - 30, truth
    yield "tied", (realistic * 2).round() / 2, truth
    empty = truth.copy()
    empty[:, 2] = 0
    yield "a class without positives", realistic, empty


@pytest.mark.parametrize("name, logits, truth", list(score_sets()), ids=lambda v: v if isinstance(v, str) else "")
def test_multilabel_average_precision_equals_scikit_learn(name, logits, truth):
    metrics = measured(logits, truth)
    scores = logits.double().numpy()  # AP depends on the ranking only; logits keep it where sigmoids round
    expected = [average_precision_score(truth[:, c], scores[:, c]) if truth[:, c].any() else None
                for c in range(truth.shape[1])]
    assert metrics.per_class() == pytest.approx(expected, abs=1e-9)
    kept = [value for value in expected if value is not None]
    assert metrics.compute("val")["val_map"] == pytest.approx(np.mean(kept), abs=1e-9)


def test_multilabel_f1_equals_scikit_learn():
    _, logits, truth = next(score_sets())
    values = measured(logits, truth).compute("val")
    predicted = (torch.sigmoid(logits).numpy() >= 0.5).astype(np.float32)
    assert values["val_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0), abs=1e-6)


def test_a_class_with_no_positive_has_no_ap_and_does_not_count_in_the_mean():
    metrics = measured(torch.tensor([[3.0, 1.0], [-3.0, 2.0]]), np.array([[1.0, 0.0], [0.0, 0.0]], np.float32))
    assert metrics.per_class() == [1.0, None]
    assert metrics.compute("val")["val_map"] == 1.0
    nothing = measured(torch.tensor([[3.0, 1.0]]), np.zeros((1, 2), np.float32))
    assert np.isnan(nothing.compute("val")["val_map"])  # undefined, never a perfect score


def test_asymmetric_loss_follows_its_formula():
    logits = torch.tensor([[2.0, -1.0, 0.5]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0, 0.0]])
    value = cvcore.create("loss", "asymmetric", gamma_pos=1.0, gamma_neg=2.0, clip=0.1)(logits, target)
    p = torch.sigmoid(logits.detach())[0]
    shifted = (p - 0.1).clamp_min(0)
    expected = -((1 - p[0]) * torch.log(p[0]) + sum(shifted[i] ** 2 * torch.log(1 - shifted[i]) for i in (1, 2)))
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    plain = cvcore.create("loss", "asymmetric", gamma_pos=0.0, gamma_neg=0.0, clip=0.0)(logits, target)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    assert plain.item() == pytest.approx(bce.item(), rel=1e-5)


def test_multilabel_shapes_labels_are_the_visible_shapes():
    splits = cvcore.create("dataset", "multilabel_shapes", count=60, augment=False)
    assert splits.info.task == "multilabel" and splits.info.class_names == ("circle", "square", "triangle")
    images, labels = splits.train.images, splits.train.targets
    assert labels.shape == (len(images), 3) and set(labels.unique().tolist()) <= {0.0, 1.0}
    assert bool((labels.sum(1) >= 1).all())  # every image shows at least one shape


def test_multilabel_recipe_reaches_its_documented_map(in_tmp):
    result = cv("train", "-c", str(ROOT / "examples" / "shapes_multilabel.toml"), "--run-dir", "run")
    assert result.exit_code == 0, result.output
    summary = json.loads((in_tmp / "run" / "summary.json").read_text())
    assert summary["monitor"] == "val_map" and summary["best_value"] >= 0.80  # README: 0.87


def write_csv_folder(root: Path) -> Path:
    rng = np.random.default_rng(1)
    rows = {"train": [("a.png", "cat dog"), ("b.jpg", "dog"), ("c.png", "")], "val": [("d.png", "cat"), ("e.png", "dog")]}
    for split, entries in rows.items():
        lines = ["image,labels"] + [f"{name},{labels}" for name, labels in entries]
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
        for name, _ in entries:
            Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(root / name)
    return root


def test_multilabel_csv_trains_evaluates_predicts_and_exports(in_tmp):
    root = write_csv_folder(in_tmp)
    args = ["--dataset", "multilabel_csv", "--data-dir", str(root), "--model", "tv/resnet18", "--loss", "bce",
            "--set", "dataset.image_size=32", "--set", "dataset.resize=36", "--epochs", "1", "--batch-size", "3"]
    result = cv("train", *args, "--run-dir", "run")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(cv("eval", "run", "--json").output)
    assert set(evaluated["metrics"]) == {"val_loss", "val_f1", "val_map"} and evaluated["confusion"] is None
    predicted = json.loads(cv("predict", "run", str(root / "a.png"), "--json").output)[0]
    assert set(predicted) == {"image", "labels", "top"} and {t["class"] for t in predicted["top"]} == {"cat", "dog"}
    assert cv("export", "run").exit_code == 0


def test_a_component_declaring_an_unknown_task_is_refused():
    from cvcore.testing import plugin_registered
    from plugins_for_tests import plugin

    def register_losses(register):
        register("odd", lambda: torch.nn.MSELoss(), tasks=("regresion",))

    with plugin_registered(plugin(register_losses=register_losses), name="odd"):
        result = cv("train", "--loss", "odd:odd", "--dry-run")
    assert result.exit_code == 1 and "declares task 'regresion'" in result.output



def test_monitor_is_the_one_rule_for_the_best_epoch():
    loss = cvcore.Monitor("val_loss")
    assert loss.mode == "min"
    assert [loss.update(v, e) for e, v in enumerate([0.5, float("nan"), 0.6, 0.4, 0.4], 1)] == \
        [True, False, False, True, False]
    assert (loss.best, loss.best_epoch) == (0.4, 4)
    accuracy = cvcore.Monitor("val_acc1", min_delta=0.05)
    assert [accuracy.update(v, e) for e, v in enumerate([float("inf"), 0.5, 0.54, 0.56], 1)] == [False, True, False, True]
    restored = cvcore.Monitor("val_acc1", min_delta=0.05)
    restored.load_state_dict(accuracy.state_dict())
    assert (restored.best, restored.best_epoch) == (0.56, 4) and not restored.update(0.6, 5)


def test_a_task_says_which_of_its_metrics_are_better_lower():
    class Regression(cvcore.Task):
        minimized = ("mae",)

    task = Regression()
    assert [task.mode(m) for m in ("val_mae", "train_mae", "val_loss", "val_r2")] == ["min", "min", "min", "max"]


@pytest.mark.parametrize(("dataset", "model", "loss"), [("digits", "lenet", "losses:cross_entropy"),
                                                        ("shapes", "unet", "losses:cross_entropy"),
                                                        ("multilabel_shapes", "lenet", "losses:bce")])
def test_each_task_suggests_its_loss_and_the_config_records_it(dataset, model, loss):
    import tomllib

    result = cv("train", "--dataset", dataset, "--model", model, "--print-config")
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.output)["loss"] == {"name": loss}
    chosen = cv("train", "--dataset", dataset, "--model", model, "--loss", "focal", "--print-config")
    assert tomllib.loads(chosen.output)["loss"] == {"name": "focal"}  # a chosen loss is kept


def test_a_data_set_that_does_not_declare_its_task_gets_its_tasks_loss_once_read(in_tmp):
    """Registered without task=: before its data the default task's loss is planned; its data says
    multilabel, so the run trains with bce, and config.toml says so."""
    from cvcore.testing import plugin_registered
    from cvcore_datasets import multilabel_shapes
    from plugins_for_tests import plugin

    def register_datasets(register):
        register("undeclared", lambda: multilabel_shapes(count=96, size=16))

    with plugin_registered(plugin(register_datasets=register_datasets), name="quiet"):
        result = cv("train", "--dataset", "undeclared", "--epochs", "1", "--run-dir", "run")
    assert result.exit_code == 0, result.output
    assert 'name = "losses:bce"' in (in_tmp / "run" / "config.toml").read_text()
    assert "val_map" in (in_tmp / "run" / "metrics.jsonl").read_text()


def _recounting_task():
    """A task whose metrics call their own attribute `count` (not a tensor), as a plugin may."""
    from cvcore_tasks.classification import Classification

    class LossOnly(cvcore.Metrics):
        def __init__(self, device):
            self.count = "mine"  # the Trainer once read metrics.count as the image count
            self.sums = torch.zeros(2, device=device)  # loss sum, images

        def update(self, output, target, loss):
            self.seen += len(target)
            self.sums += torch.stack([loss.detach().float() * len(target), loss.new_tensor(float(len(target)))])

        def running(self):
            loss, images = self.sums.tolist()
            return loss / max(images, 1), 0.0

        def tensors(self):
            return [self.sums]

        def compute(self, prefix):
            loss, images = self.sums.tolist()
            return {f"{prefix}_loss": loss / max(images, 1)}

    class Recounting(Classification):
        default_monitor = "val_loss"

        def metric_names(self, num_classes, detailed):
            return ["loss"]

        def metrics(self, num_classes, device, detailed):
            return LossOnly(device)

    return Recounting()


def _failing_task():
    """Classification whose metrics' update raises: the plugin's bug."""
    from cvcore_tasks.classification import Classification

    class Failing(Classification):
        def metrics(self, num_classes, device, detailed):
            metrics = super().metrics(num_classes, device, detailed)
            metrics.update = lambda *args: {}["no such key"]
            return metrics

    return Failing()


@pytest.mark.parametrize(("factory", "fragments"), [
    (_recounting_task, None),
    (_failing_task, ["task 'mytasks:clf' (", "failed in Metrics.update(): KeyError: 'no such key'", "CVCORE_DEBUG=1"]),
])
def test_metrics_attributes_are_the_tasks_own_and_their_errors_name_the_plugin(in_tmp, factory, fragments):
    from cvcore.testing import plugin_registered
    from plugins_for_tests import plugin

    def register_tasks(register):
        register("clf", factory, output="vector", loss="mytasks:ce")

    def register_datasets(register):
        register("digits_as_clf", lambda: _digits_of_task("mytasks:clf"))

    def register_losses(register):
        register("ce", lambda: torch.nn.CrossEntropyLoss(), summary="cross-entropy")

    with plugin_registered(plugin(register_tasks=register_tasks, register_datasets=register_datasets,
                                  register_losses=register_losses), name="mytasks"):
        result = cv("train", "--dataset", "digits_as_clf", "--epochs", "1", "--run-dir", "run")
    if fragments is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1 and all(f in result.output for f in fragments), result.output
    assert "Traceback" not in result.output


def _digits_of_task(task: str):
    import attrs

    data = cvcore.create("dataset", "digits")
    return cvcore.DataSplits(data.train, data.val, attrs.evolve(data.info, task=task), transforms=data.transforms)


def _self_loss_task():
    """A task whose model computes its own losses in training (as detectors do) and gives logits in
    evaluation: the training step is the task's, and each loss term is logged."""
    import torch.nn.functional as F

    class Terms(cvcore.Metrics):
        def __init__(self, device, detailed):
            self.detailed = detailed
            self.sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss, ce, l2 or hits, images

        def update(self, output, target, loss):
            self.seen += len(target)
            if isinstance(output, dict):  # training: the model's loss terms
                parts = [output["loss_ce"], output["loss_l2"]]
            else:  # validation: logits
                parts = [output.argmax(1).eq(target).sum() / len(target), torch.zeros((), device=target.device)]
            self.sums += torch.stack([loss.double(), *(p.double() for p in parts),
                                      torch.ones((), dtype=torch.float64, device=target.device)]) * torch.tensor(
                [len(target)] * 3 + [len(target)], dtype=torch.float64, device=target.device)

        def running(self):
            loss, first, _, images = self.sums.tolist()
            return loss / max(images, 1), first / max(images, 1)

        def tensors(self):
            return [self.sums]

        def compute(self, prefix):
            loss, first, second, images = (self.sums / self.sums[3].clamp_min(1)).tolist()
            if self.detailed:
                return {f"{prefix}_loss": loss, f"{prefix}_acc": first}
            return {f"{prefix}_loss": loss, f"{prefix}_loss_ce": first, f"{prefix}_loss_l2": second}

    class SelfLoss(cvcore.Task):
        default_monitor = "val_acc"

        def metric_names(self, num_classes, detailed):
            return ["loss", "acc"] if detailed else ["loss", "loss_ce", "loss_l2"]

        def metrics(self, num_classes, device, detailed):
            return Terms(device, detailed)

        def expected_output(self, info):
            return None  # checked by running it only

        def example_target(self, info, batch):
            return torch.arange(batch) % info.num_classes

        def training_step(self, model, images, targets, loss_fn):
            terms = model(images, targets)
            return loss_fn(terms, targets), terms

        def validation_step(self, model, images, targets, loss_fn):
            logits = model(images)
            return F.cross_entropy(logits, targets), logits

    return SelfLoss()


class _LossComputingNet(torch.nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.net = cvcore.create("model", "lenet", num_classes=num_classes, in_channels=1)

    def forward(self, images, targets=None):
        logits = self.net(images)
        if self.training and targets is not None:
            return {"loss_ce": torch.nn.functional.cross_entropy(logits, targets), "loss_l2": 1e-3 * logits.pow(2).mean()}
        return logits


def test_a_task_owns_its_training_step_and_logs_each_loss_term(in_tmp):
    from cvcore.testing import plugin_registered
    from plugins_for_tests import plugin

    def summed(*, num_classes: int = 10):
        """The sum of the loss terms the model computed."""
        return lambda terms, targets: sum(terms.values())

    def register_tasks(register):
        register("selfloss", _self_loss_task, loss="own:summed")

    def register_models(register):
        register("losing_lenet", lambda *, num_classes=10: _LossComputingNet(num_classes), tasks=("own:selfloss",),
                 summary="lenet computing its own losses")

    def register_losses(register):
        register("summed", summed, tasks=("own:selfloss",))

    def register_datasets(register):
        register("digits_selfloss", lambda: _digits_of_task("own:selfloss"), task="own:selfloss")

    hooks = plugin(register_tasks=register_tasks, register_models=register_models, register_losses=register_losses,
                   register_datasets=register_datasets)
    with plugin_registered(hooks, name="own"):
        dry = cv("train", "--dataset", "digits_selfloss", "--model", "losing_lenet", "--dry-run")
        result = cv("train", "--dataset", "digits_selfloss", "--model", "losing_lenet", "--epochs", "2",
                    "--run-dir", "run")
    assert dry.exit_code == 0 and "backward ok" in dry.output, dry.output
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (in_tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"train_loss_ce", "train_loss_l2", "val_acc"} <= set(rows[-1])
    assert rows[-1]["train_loss"] == pytest.approx(rows[-1]["train_loss_ce"] + rows[-1]["train_loss_l2"], rel=1e-4)
    assert rows[-1]["val_acc"] > 0.5


@pytest.mark.parametrize("batches", [3, 70])  # fewer than the pending batches kept, and two rounds and more
def test_training_accuracy_and_loss_weigh_every_image_once_with_batches_added_later(batches):
    """Training's classification metrics keep batches pending and add them later: the loss is
    the mean over images (a short last batch weighs less) and top-1 the share of images right,
    as scikit-learn's accuracy_score counts it, ties included."""
    from sklearn.metrics import accuracy_score
    from cvcore_tasks.classification import ClassificationMetrics

    generator = torch.Generator().manual_seed(0)
    metrics = ClassificationMetrics(10, torch.device("cpu"), detailed=False)
    sizes = [16] * (batches - 1) + [5]
    logits = [torch.randn(size, 10, generator=generator).round() for size in sizes]  # ties: argmax takes the first
    targets = [torch.randint(0, 10, (size,), generator=generator) for size in sizes]
    losses = [torch.rand((), generator=generator) for _ in sizes]
    for output, target, loss in zip(logits, targets, losses):
        metrics.update(output, target, loss)
    metrics.tensors()
    values = metrics.compute("train")
    expected_loss = sum(float(loss) * size for loss, size in zip(losses, sizes)) / sum(sizes)
    expected_acc = accuracy_score(torch.cat(targets).numpy(), torch.cat(logits).argmax(1).numpy())
    assert values["train_loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert values["train_acc1"] == pytest.approx(expected_acc, abs=1e-7)
    assert metrics.running() == pytest.approx((expected_loss, expected_acc), rel=1e-6)


@pytest.mark.parametrize("batches", [3, 70])
def test_validation_metrics_equal_scikit_learn_with_batches_added_later(batches):
    """Validation keeps batches pending too: top-1 (ties to the first class), top-5, per-class
    accuracy and the confusion matrix equal scikit-learn's over uneven batches, a class absent."""
    from sklearn.metrics import accuracy_score, confusion_matrix, top_k_accuracy_score
    from cvcore_tasks.classification import ClassificationMetrics

    generator = torch.Generator().manual_seed(1)
    metrics = ClassificationMetrics(10, torch.device("cpu"), detailed=True)
    sizes = [16] * (batches - 1) + [5]
    logits = [torch.randn(size, 10, generator=generator) for size in sizes]
    tied = [torch.randn(size, 10, generator=generator).round() for size in sizes]  # ties: top-1 only
    targets = [torch.randint(0, 9, (size,), generator=generator) for size in sizes]  # class 9: none
    for output, target in zip(tied, targets):
        metrics.update(output, target, torch.rand((), generator=generator))
    metrics.tensors()
    truth, predicted = torch.cat(targets).numpy(), torch.cat(tied).argmax(1).numpy()
    expected = confusion_matrix(truth, predicted, labels=range(10))
    assert metrics.compute("val")["val_acc1"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-7)
    assert metrics.confusion_matrix() == expected.tolist()
    assert metrics.per_class()[:9] == pytest.approx((expected.diagonal()[:9] / expected.sum(1)[:9]).tolist())
    assert metrics.per_class()[9] is None

    untied = ClassificationMetrics(10, torch.device("cpu"), detailed=True)
    for output, target in zip(logits, targets):
        untied.update(output, target, torch.zeros(()))
    untied.tensors()
    top5 = top_k_accuracy_score(truth, torch.cat(logits).numpy(), k=5, labels=range(10))
    assert untied.compute("val")["val_acc5"] == pytest.approx(top5, abs=1e-7)


def test_top_k_ranks_tied_classes_lower_class_first_as_argmax_does():
    from cvcore_tasks.classification import within_top

    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 5.0, 5.0]])
    assert within_top(logits, torch.tensor([1, 3, 3]), 1).tolist() == [True, False, False]  # argmax: 1, 0, 2
    assert within_top(logits, torch.tensor([2, 1, 3]), 2).tolist() == [True, True, True]
    assert within_top(logits, torch.tensor([0, 2, 0]), 2).tolist() == [False, False, False]
