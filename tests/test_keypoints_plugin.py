"""The plugin contract, proven on a task no built-in knows: keypoints (tests/keypoint_plugin.py, public
API only). Its targets are coordinates: every built-in geometric transform and the centre crop must
move them exactly as they move the pixels, built-in models must serve it, and the test kit must check
its loss and transform."""

import json

import pytest
import torch
from click.testing import CliRunner

import cvcore
import keypoint_plugin
from cvcore.commands.cli import cli
from cvcore.testing import check_plugin, plugin_registered
from cvcore.training.preparation import Preparation
from cvcore import move_points

TRANSFORMS = [("flip", {"p": 0.5}), ("flip", {"p": 1.0, "vertical": True}), ("pad_crop", {"padding": 4}),
              ("random_resized_crop", {"scale": [0.3, 1.0], "image_size": [24, 40]}), ("trivial_augment", {}),
              ("kp:shift", {"pixels": 3})]


@pytest.fixture(autouse=True)
def keypoints_installed():
    with plugin_registered(keypoint_plugin, name="kp"):
        yield


def centroids(images: torch.Tensor, channels: int = 2) -> torch.Tensor:
    """(N, channels, 2): the centre of mass (x, y) of each image's bright pixels in each channel, in
    continuous coordinates (a pixel's centre is at +0.5); NaN where a channel has none."""
    bright = (images[:, :channels].float() > images[:, :channels].float().amax(dim=(2, 3), keepdim=True) / 2).float()
    height, width = images.shape[-2:]
    ys = torch.arange(height).float().view(1, 1, -1, 1) + 0.5
    xs = torch.arange(width).float().view(1, 1, 1, -1) + 0.5
    mass = bright.sum(dim=(2, 3))
    return torch.stack([(bright * xs).sum(dim=(2, 3)) / mass, (bright * ys).sum(dim=(2, 3)) / mass], -1)


def test_the_test_kit_checks_every_component_with_the_tasks_own_samples():
    kinds = {component.kind for component in check_plugin("kp")}
    assert kinds == {"task", "dataset", "loss", "transform"}


@pytest.mark.parametrize(("name", "options"), TRANSFORMS)
def test_every_geometric_transform_reports_how_it_moved_each_image(name, options):
    data = cvcore.create("dataset", "kp_dots", count=64)
    info = data.info
    (transform,) = cvcore.create_transforms([(name, options)], info)
    images, targets = data.train.images, data.train.targets
    images = images if transform.geometric else images.float() / 255  # colour operations take floats
    out, kept, matrices = transform.moved(images.clone(), targets.clone(), torch.Generator().manual_seed(0))
    assert torch.equal(kept, targets)  # coordinates are the task's to move
    expected, found = move_points(targets, matrices), centroids(out)
    moved = ~torch.isclose(matrices, torch.eye(3)).all(dim=(1, 2))  # colour operations leave no trace
    height, width = out.shape[-2:]
    inside = ((expected > 3) & (expected < torch.tensor([width - 3.0, height - 3.0]))).all(-1) & moved[:, None]
    scale = matrices[:, :2, :2].abs().sum(-1).amax(-1)[:, None]  # pixels of output per input pixel, at most
    assert inside.sum() >= 20, "too few points to check"
    error = (found - expected).norm(dim=-1)[inside]
    assert (error <= 0.75 + 0.5 * scale.expand_as(inside)[inside]).all(), error.max()


def test_the_centre_crop_and_the_transforms_move_points_on_the_way_to_the_model():
    data = cvcore.create("dataset", "kp_dots", count=64, margin=5)  # stored 42 x 42, seen 32 x 32
    transforms = cvcore.create_transforms([("flip", {"p": 0.5}), ("pad_crop", {"padding": 3})], data.info)
    prepare = Preparation(data.info, torch.device("cpu"), transforms, torch.Generator().manual_seed(1))
    for train in (True, False):
        images, targets, _ = prepare(data.train.images, data.train.targets, train=train)
        assert images.shape[-2:] == (32, 32)
        found = centroids(images)
        inside = ((targets > 3) & (targets < 29)).all(-1)
        assert inside.sum() > 60 and ((found - targets).norm(dim=-1)[inside] < 0.75).all()


def test_points_move_for_a_task_that_moves_targets_without_saying_they_are_coordinates(monkeypatch):
    """Transforms compute their maps only for tasks that move targets: one that overrides
    move_targets but leaves targets_have_coordinates False still has its points moved."""
    monkeypatch.setattr(keypoint_plugin.Keypoints, "targets_have_coordinates", False)
    data = cvcore.create("dataset", "kp_dots", count=64)
    transforms = cvcore.create_transforms([("flip", {"p": 0.5}), ("pad_crop", {"padding": 3})], data.info)
    images, targets, _ = Preparation(data.info, torch.device("cpu"), transforms, torch.Generator().manual_seed(1))(
        data.train.images, data.train.targets, train=True)
    inside = ((targets > 3) & (targets < 29)).all(-1)
    assert not torch.equal(targets, data.train.targets) and inside.sum() > 60
    assert ((centroids(images) - targets).norm(dim=-1)[inside] < 0.75).all()


def test_a_geometric_transform_that_does_not_report_is_refused_for_coordinates():
    class Silent(cvcore.Transform):
        geometric = True

        def __call__(self, images, targets, generator):
            return images.flip(-1), targets

    info = cvcore.create("dataset", "kp_dots", count=8).info
    with pytest.raises(cvcore.ConfigError, match="Silent moves pixels without reporting how"):
        Preparation(info, torch.device("cpu"), [Silent()])


@pytest.mark.parametrize("model", ["lenet", "resnet18", "tv/resnet18"])
def test_built_in_models_train_the_task_with_its_suggested_loss(in_tmp, model):
    result = CliRunner().invoke(cli, ["train", "--dataset", "kp_dots", "--model", model, "--epochs", "1",
                                      "--transform", "flip", "--run-dir", "run"])
    assert result.exit_code == 0, result.output
    row = json.loads((in_tmp / "run" / "metrics.jsonl").read_text())
    assert {"val_nme", "val_pck"} <= set(row)
    assert 'name = "kp:wing"' in (in_tmp / "run" / "config.toml").read_text()
    summary = json.loads((in_tmp / "run" / "summary.json").read_text())
    assert summary["per_class_metric"] == "PCK" and set(summary["per_class"]) == {"red", "green"}  # per point


@pytest.mark.slow
def test_lenet_learns_the_points_with_flips_and_crops(in_tmp):
    result = CliRunner().invoke(cli, ["train", "--dataset", "kp_dots", "--set", "dataset.count=2048", "--model",
                                      "lenet", "--epochs", "30", "--transform", "flip", "--transform", "pad_crop",
                                      "--lr", "0.003", "--run-dir", "run"])
    assert result.exit_code == 0, result.output
    best = max(json.loads(line)["val_pck"] for line in (in_tmp / "run" / "metrics.jsonl").read_text().splitlines())
    assert best >= 0.8


def test_a_dry_run_names_the_items_as_the_task_does():
    result = CliRunner().invoke(cli, ["train", "--dataset", "kp_dots", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "2 keypoints, 3x32x32" in result.output
