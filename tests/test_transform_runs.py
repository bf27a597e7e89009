"""Transforms in runs: chosen with --transform or [transforms], a data set's own list by default,
recorded in config.toml so that a resumed run draws the same augmentations, refused for a task
whose targets they cannot carry."""

import json
import tomllib

import pytest
import torch
from click.testing import CliRunner

import cvcore
from cvcore.commands.cli import cli

SMALL_SHAPES = ["--dataset", "multilabel_shapes", "--set", "dataset.count=200", "--set", "dataset.size=16",
                "--model", "lenet", "--loss", "bce", "--batch-size", "32"]


def cv(*args):
    return CliRunner().invoke(cli, list(args))


def config_of(run):
    return tomllib.loads((run / "config.toml").read_text())


def test_a_data_sets_own_transforms_are_used_and_recorded(in_tmp):
    result = cv("train", *SMALL_SHAPES, "--epochs", "1", "--run-dir", "r")
    assert result.exit_code == 0, result.output
    recorded = config_of(in_tmp / "r")["transforms"]
    assert recorded == {"name": ["transforms:flip", "transforms:pad_crop"], "transforms:pad_crop": {"padding": 4}}


def test_transform_flags_replace_the_data_sets_list_and_take_options(in_tmp):
    result = cv("train", *SMALL_SHAPES, "--transform", "color_jitter", "--transform", "random_erasing",
                "--set", "transforms.random_erasing.p=0.5", "--print-config")
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.output)["transforms"] == {"name": ["color_jitter", "random_erasing"],
                                                         "random_erasing": {"p": 0.5}}
    result = cv("train", *SMALL_SHAPES, "--transform", "none", "--epochs", "1", "--run-dir", "r")
    assert result.exit_code == 0, result.output
    assert config_of(in_tmp / "r")["transforms"] == {"name": []}


def test_transforms_from_a_toml_file_run_in_order(in_tmp):
    (in_tmp / "run.toml").write_text(
        '[dataset]\nname = "multilabel_shapes"\ncount = 200\nsize = 16\n[model]\nname = "lenet"\n'
        '[loss]\nname = "bce"\n[optimizer]\nname = "adam"\n[trainer]\nepochs = 1\n'
        '[transforms]\nname = ["random_resized_crop", "flip"]\n[transforms.random_resized_crop]\nscale = [0.5, 1.0]\n')
    result = cv("train", "-c", "run.toml", "--run-dir", "r")
    assert result.exit_code == 0, result.output
    assert config_of(in_tmp / "r")["transforms"]["random_resized_crop"] == {"scale": [0.5, 1.0]}


@pytest.mark.parametrize(("args", "fragments"), [
    (["--transform", "flipp"], ["Unknown transform 'flipp'", "Did you mean 'flip'?", "cv list transform"]),
    (["--transform", "flip", "--set", "transforms.flip.p=2"], ["Option 'p' of transform 'flip' must be between 0.0 and 1.0, got 2."]),
    (["--transform", "flip", "--set", "transforms.flip.q=1"], ["Unknown option 'q' for transform 'flip'"]),
    (["--transform", "flip", "--set", "transforms.flop.p=1"], ["has options for 'flop'", "Did you mean 'flip'?"]),
])
def test_bad_transforms_are_refused_by_name(in_tmp, args, fragments):
    result = cv("train", *SMALL_SHAPES, *args, "--epochs", "1", "--run-dir", "r")
    assert result.exit_code != 0 and not isinstance(result.exception, (AttributeError, TypeError, KeyError))
    for fragment in fragments:
        assert fragment in result.output
    assert not (in_tmp / "r").exists()


def test_mixing_is_refused_for_segmentation(in_tmp):
    result = cv("train", "--dataset", "shapes", "--set", "dataset.count=40", "--model", "unet", "--transform", "mixup",
                "--epochs", "1", "--run-dir", "r")
    assert result.exit_code != 0
    assert "transform 'mixup' serves classification, but data set 'shapes' is a segmentation task" in result.output


def test_mixup_trains_with_soft_targets_and_measures_accuracy_on_the_labels(in_tmp):
    result = cv("train", "--transform", "mixup", "--transform", "cutmix", "--epochs", "2", "--run-dir", "r")
    assert result.exit_code == 0, result.output
    epochs = [json.loads(line) for line in (in_tmp / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < e["train_acc1"] <= 1 and 0 < e["val_acc1"] <= 1 for e in epochs)
    assert epochs[-1]["val_acc1"] > 0.5


def test_metrics_of_mixed_batches_use_the_labels_before_mixing():
    from cvcore.training.preparation import Preparation

    info = cvcore.DataInfo(num_classes=3, class_names="abc", in_channels=1, image_size=(4, 4), mean=(0.0,), std=(1.0,))
    prepare = Preparation(info, torch.device("cpu"), cvcore.create_transforms(["color_jitter", "mixup"], info),
                          torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 1])
    _, loss_targets, metric_targets = prepare(torch.rand(4, 1, 4, 4), labels, train=True)
    assert loss_targets.shape == (4, 3) and torch.equal(metric_targets, labels)


@pytest.mark.parametrize("loss", ["focal", "dice", "tversky"])
def test_mixing_with_a_loss_that_takes_class_ids_only_is_refused_before_data(in_tmp, loss, monkeypatch):
    import cvcore_datasets

    monkeypatch.setattr(cvcore_datasets, "digits", lambda **_: pytest.fail("data was read"))
    result = cv("train", "--transform", "cutmix", "--loss", loss, "--epochs", "1", "--run-dir", "r")
    assert result.exit_code == 1 and not (in_tmp / "r").exists()
    assert f"transform 'cutmix' turns labels into class probabilities, which loss '{loss}' cannot take" in result.output
    assert "cross_entropy" in result.output


def test_cutmix_label_shares_count_only_the_pixels_the_model_sees():
    # Images stored larger than image_size (the folder cache keeps a margin) are centre-cropped
    # before the first transform that is not geometric: cutmix's shares are of the kept pixels.
    from cvcore.training.preparation import Preparation

    info = cvcore.DataInfo(num_classes=2, class_names="ab", in_channels=1, image_size=(16, 16), mean=(0.0,), std=(1.0,))
    prepare = Preparation(info, torch.device("cpu"), cvcore.create_transforms([("cutmix", {"p": 1.0})], info),
                          torch.Generator().manual_seed(0))
    count = 400
    labels = torch.arange(count) % 2
    pixels = (labels * 255).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 24, 24).contiguous()
    images, soft, _ = prepare(pixels, labels, train=True)
    assert images.shape[-2:] == (16, 16)
    own = (images[:, 0] == labels.view(-1, 1, 1).float()).flatten(1).float().mean(1)
    assert torch.allclose(soft[torch.arange(count), labels], own, atol=1e-6)


def test_the_library_trainer_uses_the_data_sets_transforms_unless_given():
    data = cvcore.create("dataset", "shapes", count=20, size=16)
    model = cvcore.create("model", "unet", num_classes=4, width=4, depth=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    suggested = cvcore.Trainer(model=model, loss=torch.nn.CrossEntropyLoss(), optimizer=optimizer, data=data)
    assert [type(t).__name__ for t in suggested.transforms] == ["Flip"]
    none = cvcore.Trainer(model=model, loss=torch.nn.CrossEntropyLoss(), optimizer=optimizer, data=data, transforms=[])
    assert none.transforms == []


def test_a_resumed_run_draws_the_same_augmentations(in_tmp):
    # No schedule: the default job's cosine would be planned over 3 epochs in one run and 2 in the other.
    heavy = ["--transform", "random_resized_crop", "--transform", "trivial_augment", "--transform", "random_erasing",
             "--scheduler", "none"]
    straight = cv("train", *SMALL_SHAPES, *heavy, "--epochs", "3", "--run-dir", "straight")
    assert straight.exit_code == 0, straight.output
    first = cv("train", *SMALL_SHAPES, *heavy, "--epochs", "2", "--run-dir", "resumed")
    assert first.exit_code == 0, first.output
    again = cv("train", "--resume", "resumed", "--epochs", "3")
    assert again.exit_code == 0, again.output

    def last(run):
        return json.loads((in_tmp / run / "metrics.jsonl").read_text().splitlines()[-1])

    for key in ("train_loss", "val_loss", "val_map"):
        assert last("resumed")[key] == pytest.approx(last("straight")[key], abs=1e-6)


@pytest.mark.slow
def test_mixup_and_cutmix_train_digits_as_well_as_without_them(in_tmp):
    """The default job (digits, LeNet, 12 epochs), three seeds each: the mean best accuracy with
    mixup or cutmix is at least the mean without them, less one validation image (1/359)."""
    def mean_best(transform):
        values = []
        for seed in (0, 1, 2):
            run = in_tmp / f"{transform}-{seed}"
            result = cv("train", "--transform", transform, "--seed", str(seed), "--run-dir", str(run))
            assert result.exit_code == 0, result.output
            values.append(json.loads((run / "summary.json").read_text())["best_value"])
        return sum(values) / len(values)

    without = mean_best("none")
    assert mean_best("mixup") >= without - 1 / 359
    assert mean_best("cutmix") >= without - 1 / 359


def test_dry_run_lists_the_transforms_a_run_will_use(in_tmp):
    result = cv("train", *SMALL_SHAPES, "--dry-run")
    assert result.exit_code == 0, result.output
    assert [line.split()[1] for line in result.output.splitlines() if line.startswith("transform")] == ["flip", "pad_crop"]
