"""timm's classifiers through the `timm` plugin, shaped like a third-party plugin: listed without
importing timm, built by timm with the data's classes and channels, trained, resumed and exported
like any model, and the data's normalisation turned into each model's pretrained one."""

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

import cvcore
from cvcore.commands.cli import cli
from cvcore.testing import check_component
from fixtures import train_resume_export

timm = pytest.importorskip("timm")

SAMPLE = ("timm/test_resnet", "timm/test_vit", "timm/test_efficientnet", "timm/test_convnext")


def test_the_listed_names_are_the_installed_timms():
    from cvcore_timm.names import TIMM_MODELS, TIMM_VERSION, generated

    assert TIMM_VERSION == timm.__version__, "regenerate: python -m cvcore_timm.names"
    assert list(TIMM_MODELS) == timm.list_models()
    with open(sys.modules["cvcore_timm.names"].__file__, encoding="utf-8") as listed:
        assert listed.read() == generated()


def test_listing_timm_models_imports_neither_timm_nor_torch():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom cvcore.commands.cli import cli\n"
            "out = CliRunner().invoke(cli, ['list', 'model', 'timm/convnext*', '--json']).output\n"
            "print(sorted(m for m in ('timm', 'torch') if m in sys.modules))\nprint(out)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, listing = result.stdout.split("\n", 1)
    assert loaded == "[]"
    names = [entry["name"] for entry in json.loads(listing)["components"]]
    assert "timm/convnext_tiny" in names and all(name.startswith("timm/convnext") for name in names)
    assert f"timm {timm.__version__}" in listing  # which release provided them


@pytest.mark.parametrize("name", SAMPLE)
def test_the_kit_checks_a_sample_of_timm_families(name):
    model = check_component("model", name, num_classes=7, in_channels=1, image_size=[32, 32])
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)


def test_a_missing_timm_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(cvcore.CvcoreError, match=r"needs timm.*pip install \"cvcore\[timm\]\""):
        cvcore.create("model", "timm/test_resnet", num_classes=3)


def test_the_datas_normalisation_becomes_the_pretrained_one():
    """A model whose pretrained configuration normalises with 0.5 / 0.5 receives the same tensor
    whatever normalisation the data used."""
    torch.manual_seed(0)
    pixels = torch.rand(2, 3, 32, 32)
    seen = []
    for mean, std in (((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), ((0.1, 0.2, 0.3), (0.5, 0.4, 0.3))):
        model = cvcore.create("model", "timm/test_vit", num_classes=3, mean=mean, std=std)
        assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
        model.patch_embed.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
        model((pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    assert torch.allclose(seen[0], seen[1], atol=1e-5)
    assert torch.allclose(seen[0], (pixels - 0.5) / 0.5, atol=1e-5)
    assert not any("input_" in key for key in model.state_dict())  # timm's keys, loadable by timm


@pytest.mark.slow
def test_a_timm_model_trains_at_bf16_channels_last_resumes_and_exports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_resume_export("--model", "timm/test_resnet", "--dataset", "digits", "--batch-size", "64",
                        "--set", "trainer.limit_train_batches=4", "--precision", "bf16-mixed", "--channels-last")
    weights = CliRunner().invoke(cli, ["export", "r", "--format", "safetensors", "--output", "w.safetensors"])
    assert weights.exit_code == 0, weights.output
    started = cvcore.create("model", "timm/test_resnet", num_classes=10, in_channels=1, weights="w.safetensors")
    from cvcore.export import load_model

    trained = load_model(tmp_path / "r").model.eval()
    images = torch.randn(2, 1, 32, 32)
    assert torch.allclose(started.eval()(images), trained(images), atol=1e-5)


@pytest.mark.parametrize("name", ["resnet50", "vit_base_patch16_224", "efficientnet_b3", "xception41",
                                  "deit3_small_patch16_384"])
def test_listed_input_sizes_are_those_of_timms_evaluation_transform(name):
    """The listed image_size, resize and interpolation of each model are the CenterCrop and Resize
    of the evaluation transform timm builds for its default pretrained weights."""
    from timm.data import create_transform, resolve_data_config

    from cvcore_timm.names import TIMM_INPUTS

    transform = create_transform(**resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict()))
    resize, crop = transform.transforms[:2]
    assert TIMM_INPUTS[name] == {"image_size": crop.size[0], "resize": resize.size,
                                 "interpolation": resize.interpolation.value}


def test_a_pretrained_model_sets_the_data_sizes_the_user_left_unset(tmp_path):
    """model.pretrained=true: the data set's image_size, resize and interpolation become the
    weights' (a note says so, config.toml records them); a size the user chose keeps both sizes
    the data set's own, no pretrained weights keep all three."""
    base = ["train", "--model", "timm/efficientnet_b3", "--dataset", "imagefolder", "--data-dir", str(tmp_path)]
    runner = CliRunner()
    chosen = runner.invoke(cli, [*base, "--set", "model.pretrained=true", "--print-config"])
    assert chosen.exit_code == 0, chosen.output
    assert 'image_size = 288\nresize = 329\ninterpolation = "bicubic"\n' in chosen.output
    for kept, interpolation in ((["--set", "model.pretrained=true", "--set", "dataset.image_size=160"], True),
                                ([], False)):
        result = runner.invoke(cli, [*base, *kept, "--print-config"])
        assert "resize" not in result.output and "image_size = 288" not in result.output, result.output
        assert ('interpolation = "bicubic"' in result.output) == interpolation
    refused = runner.invoke(cli, [*base, "--set", "model.pretrained=true", "--epochs", "1"])
    assert refused.exit_code != 0  # no data in tmp_path: the note comes first, before the data is read
    assert ("note: data set image_size 288, resize 329, interpolation bicubic, the input model "
            "'timm/efficientnet_b3'" in refused.output)
    assert "needs sub-folders train/ and val/" in refused.output
