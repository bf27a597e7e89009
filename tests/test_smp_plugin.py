"""segmentation_models_pytorch's architectures through the `smp` plugin, shaped like a third-party
plugin: listed without importing smp, any encoder, trained, resumed and exported like any model."""

import sys

import pytest
import torch
from click.testing import CliRunner
import cvcore
from cvcore.commands.cli import cli
from cvcore.testing import check_component
from fixtures import train_resume_export

smp = pytest.importorskip("segmentation_models_pytorch")


def test_the_listed_names_are_the_installed_smps():
    from segmentation_models_pytorch.encoders import get_encoder_names

    from cvcore_smp.names import ARCHITECTURES, ENCODERS, SMP_VERSION

    assert SMP_VERSION == smp.__version__
    assert list(ARCHITECTURES) == list(smp.MODEL_ARCHITECTURES_MAPPING)
    assert list(ENCODERS) == get_encoder_names()


@pytest.mark.parametrize("name", ["smp/unet", "smp/fpn", "smp/deeplabv3plus"])
def test_the_kit_checks_a_sample_of_smp_architectures(name):
    model = check_component("model", name, num_classes=3, in_channels=1, encoder="resnet18")
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 3, 64, 64)


def test_a_misspelt_encoder_names_the_valid_ones(monkeypatch):
    with pytest.raises(cvcore.OptionError, match="'encoder' of model 'smp/unet' must be one of .* names or tu-NAME, "
                                                 "got 'resnt18'. Did you mean 'resnet18'.*efficientnet-b0.*, or tu-NAME"):
        cvcore.create("model", "smp/unet", encoder="resnt18")
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)
    with pytest.raises(cvcore.CvcoreError, match=r"pip install \"cvcore\[smp\]\""):
        cvcore.create("model", "smp/unet")


def test_a_misspelt_encoder_is_refused_before_the_data_is_read(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--model", "smp/unet", "--dataset", "segfolder",
                                      "--data-dir", str(tmp_path / "absent"), "--set", "model.encoder=resnt18"])
    assert result.exit_code != 0
    assert "got 'resnt18'. Did you mean 'resnet18'" in result.output and "absent" not in result.output


def test_encoder_weights_start_the_encoder(tmp_path):
    from safetensors.torch import save_file

    source = cvcore.create("model", "smp/unet", num_classes=2, encoder="resnet18")
    save_file(source.encoder.state_dict(), tmp_path / "encoder.safetensors")
    started = cvcore.create("model", "smp/unet", num_classes=2, encoder="resnet18",
                            encoder_weights=tmp_path / "encoder.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(source.encoder.state_dict().values(),
                                                  started.encoder.state_dict().values()))
    assert not torch.equal(source.segmentation_head[0].weight, started.segmentation_head[0].weight)


@pytest.mark.slow
def test_smp_unet_trains_at_bf16_channels_last_resumes_and_exports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_resume_export("--model", "smp/unet", "--set", "model.encoder=resnet18", "--dataset", "shapes",
                        "--set", "dataset.count=64", "--batch-size", "16", "--precision", "bf16-mixed", "--channels-last")
