"""Every recipe in examples/ runs one limited batch on CPU against fixtures in the real file formats."""

import tomllib
from pathlib import Path

import pytest
import torchvision
from click.testing import CliRunner
from torchvision.models import _api as torchvision_weights

import cvcore
from cvcore.commands.cli import cli
from fixtures import install_mnist, trust_cifar_fixture, write_cifar10, write_image_folder

RECIPES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))


def prepare_data(dataset: str, root: Path, monkeypatch) -> Path:
    if dataset == "cifar10":
        trust_cifar_fixture(monkeypatch, write_cifar10(root))
    elif dataset == "fashion_mnist":
        install_mnist(root, "FashionMNIST")
    elif dataset == "imagefolder":
        write_image_folder(root)
    return root


def offline_imagenet_weights(monkeypatch) -> None:
    """Stand in for the ImageNet download (no network here): random weights of the right shapes."""
    def get_state_dict(self, *args, **kwargs):
        arch = self.url.rsplit("/", 1)[-1].split("-")[0]
        return torchvision.models.get_model(arch).state_dict()

    monkeypatch.setattr(torchvision_weights.WeightsEnum, "get_state_dict", get_state_dict)


def test_recipes_name_components_qualified_so_no_plugin_makes_them_ambiguous():
    for recipe in RECIPES:
        config = tomllib.loads(recipe.read_text())
        # a recipe may leave the loss to its task's suggestion, which the task names qualified
        names = [config[s]["name"] for s in ("dataset", "model", "loss", "optimizer") if s in config]
        names += config.get("scheduler", {}).get("name", []) + config.get("callbacks", {}).get("name", [])
        assert all(":" in name for name in names), (recipe.name, names)


def test_there_is_a_recipe_per_tutorial():
    assert {r.stem for r in RECIPES} >= {"cifar10_lenet", "fashion_mnist_mlp", "cifar10_resnet18",
                                         "cifar10_resnet18_fp16", "hymenoptera_finetune", "hymenoptera_frozen",
                                         "shapes_unet_dice"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_one_batch(recipe, tmp_path, monkeypatch):
    config = tomllib.loads(recipe.read_text())
    root = prepare_data(config["dataset"]["name"].rpartition(":")[2], tmp_path / "data", monkeypatch)
    if config["model"].get("pretrained"):
        offline_imagenet_weights(monkeypatch)
    run_dir = tmp_path / "run"
    reads_files = "root" in {o.name for o in cvcore.get_component("dataset", config["dataset"]["name"]).options}
    result = CliRunner().invoke(cli, [
        "train", "-c", str(recipe), *(["--data-dir", str(root)] if reads_files else []), "--epochs", "1",
        "--limit-train-batches", "2",
        "--limit-val-batches", "1", "--batch-size", "8", "--device", "cpu", "--workers", "0", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    saved = tomllib.loads((run_dir / "config.toml").read_text())
    assert saved["optimizer"] == {**config["optimizer"]}
    assert saved.get("scheduler", {}).get("name", []) == config.get("scheduler", {}).get("name", [])
