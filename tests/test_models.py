"""Built-in models: the small ones, torchvision's by name, heads, channels, weights and freezing."""

import pickle
import urllib.error

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torchvision.models import _api as torchvision_weights

import cvcore
from cvcore.testing import check_component
from cvcore_models.torchvision_names import CLASSIFICATION_MODELS, SEGMENTATION_MODELS
from cvcore_models.tv import replace_head
from fixtures import Payload

FAMILIES = ["resnet18", "mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x0_5", "googlenet", "mnasnet0_5",
            "regnet_x_400mf", "efficientnet_b0", "densenet121", "convnext_tiny", "alexnet"]


def test_every_torchvision_model_is_registered():
    for module, listed in ((torchvision.models, CLASSIFICATION_MODELS), (torchvision.models.segmentation, SEGMENTATION_MODELS)):
        installed = set(torchvision.models.list_models(module=module))
        assert installed <= set(listed), f"add to torchvision_names.py: {installed - set(listed)}"
    registered = {c.name for c in cvcore.list_components("model", "tv/*") if c.plugin.name == "models"}
    assert registered == {f"tv/{name}" for name in CLASSIFICATION_MODELS + SEGMENTATION_MODELS}


@pytest.mark.parametrize("name", ["lenet", "mlp", "resnet18"])
def test_small_models_meet_the_contract(name):
    check_component("model", name, num_classes=7, in_channels=1, **({"image_size": (28, 28)} if name != "resnet18" else {}))


@pytest.mark.parametrize("arch", FAMILIES)
def test_torchvision_models_sized_to_the_data(arch):
    model = cvcore.create("model", f"tv/{arch}", num_classes=3, in_channels=1).eval()
    assert model(torch.randn(1, 1, 80, 80)).shape == (1, 3)


@pytest.mark.parametrize("arch", ["vit_b_32", "swin_t", "maxvit_t", "squeezenet1_0", "inception_v3"])
def test_pretrained_heads_are_found_and_replaced(arch):
    model = torchvision.models.get_model(arch, **({"aux_logits": False} if arch == "inception_v3" else {}))
    replace_head(model, 4)
    side = 299 if arch == "inception_v3" else 224
    assert model.eval()(torch.randn(1, 3, side, side)).shape == (1, 4)


@pytest.fixture
def offline_weights(monkeypatch):
    """ImageNet weights cannot be downloaded here; random weights of the right shapes stand in."""
    def get_state_dict(self, *args, **kwargs):
        return torchvision.models.get_model(self.url.rsplit("/", 1)[-1].split("-")[0]).state_dict()

    monkeypatch.setattr(torchvision_weights.WeightsEnum, "get_state_dict", get_state_dict)


def test_pretrained_keeps_backbone_and_replaces_head(offline_weights):
    torch.manual_seed(0)
    model = cvcore.create("model", "tv/resnet18", num_classes=2, pretrained=True)
    assert model.fc.out_features == 2 and model.layer1[0].conv1.weight.shape == (64, 64, 3, 3)


def test_freeze_trains_only_the_head(offline_weights):
    model = cvcore.create("model", "tv/resnet18", num_classes=2, pretrained=True, freeze=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}


def test_pretrained_without_network_says_what_to_do(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(cvcore.CvcoreError, match="Could not fetch torchvision's pretrained weights for 'resnet18'.*weights=PATH"):
        cvcore.create("model", "tv/resnet18", pretrained=True)


def test_local_safetensors_weights_load(tmp_path):
    source = cvcore.create("model", "tv/resnet18", num_classes=5)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    loaded = cvcore.create("model", "tv/resnet18", num_classes=5, weights=tmp_path / "w.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))
    # A 5-class head for a 5-class model loads as it is; another architecture is refused.
    with pytest.raises(cvcore.DataError, match="do not fit this model: missing \\['layer1.2.bn1.bias'"):
        cvcore.create("model", "tv/resnet34", num_classes=5, weights=tmp_path / "w.safetensors")


def test_imagenet_weights_file_loads_the_backbone_and_sizes_the_head(tmp_path):
    imagenet = torchvision.models.resnet18(num_classes=1000)  # a torchvision state dict, as converted
    save_file(imagenet.state_dict(), str(tmp_path / "imagenet.safetensors"))
    model = cvcore.create("model", "tv/resnet18", num_classes=2, weights=tmp_path / "imagenet.safetensors")
    assert model.fc.out_features == 2
    own = model.state_dict()
    assert all(torch.equal(value, own[key]) for key, value in imagenet.state_dict().items() if not key.startswith("fc."))


def test_frozen_backbone_batchnorm_statistics_do_not_move(in_tmp):
    from click.testing import CliRunner

    from cvcore.commands.cli import cli
    from fixtures import write_image_folder

    write_image_folder(in_tmp / "data", per_class=4)
    start = cvcore.create("model", "tv/resnet18", num_classes=2).state_dict()
    save_file(start, "start.safetensors")
    result = CliRunner().invoke(cli, [
        "train", "--dataset", "imagefolder", "--data-dir", "data", "--set", "dataset.image_size=32",
        "--set", "dataset.resize=36", "--model", "tv/resnet18", "--set", "model.weights=start.safetensors",
        "--set", "model.freeze=true", "--batch-size", "4", "--epochs", "2", "--optimizer", "sgd", "--lr", "0.5",
        "--run-dir", "r"])
    assert result.exit_code == 0, result.output
    from cvcore import checkpoint as ckpt

    trained = ckpt.load(in_tmp / "r" / "checkpoints" / "last.safetensors").model_weights()
    backbone = [key for key in start if not key.startswith("fc.") and not key.endswith("num_batches_tracked")]
    assert any(key.endswith("running_mean") for key in backbone)
    assert all(torch.equal(trained[key], start[key]) for key in backbone)
    assert not torch.equal(trained["fc.weight"], start["fc.weight"])


def test_pickle_in_the_torch_hub_cache_is_not_run(in_tmp, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(in_tmp / "torch"))
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    cache = in_tmp / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / url.rsplit("/", 1)[-1]).write_bytes(pickle.dumps({"fc.weight": Payload()}))
    with pytest.raises(cvcore.CvcoreError, match="hold more than tensors, so they were not loaded"):
        cvcore.create("model", "tv/resnet18", pretrained=True)
    assert not (in_tmp / "PWNED").exists()


def test_pickle_offered_as_weights_is_refused_unrun(in_tmp):
    (in_tmp / "evil.safetensors").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(cvcore.DataError, match="not a readable safetensors file"):
        cvcore.create("model", "tv/resnet18", weights=in_tmp / "evil.safetensors")
    assert not (in_tmp / "PWNED").exists()
    with pytest.raises(cvcore.DataError, match="does not exist"):
        cvcore.create("model", "tv/resnet18", weights=in_tmp / "missing.safetensors")
