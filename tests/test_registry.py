"""The Python API: create, list_components, option descriptions and errors."""

from typing import Annotated

import pytest

import cvcore
from cvcore.testing import plugin_registered
from plugins_for_tests import needs_depth, plugin, ranged


def test_create_builds_with_options():
    model = cvcore.create("model", "lenet", num_classes=7, in_channels=1, image_size=(28, 28))
    assert model.classifier[-1].out_features == 7


def test_create_drops_none_options_so_defaults_hold():
    assert cvcore.create("model", "mlp", hidden=None).layers[1].out_features == 512


def test_unknown_name_quotes_it_and_suggests():
    with pytest.raises(cvcore.UnknownNameError) as error:
        cvcore.create("model", "resnt18")
    message = str(error.value)
    assert "Unknown model 'resnt18'" in message
    assert "Did you mean 'resnet18'" in message
    assert "See 'cv list model'" in message


def test_unknown_kind_lists_kinds():
    with pytest.raises(cvcore.UnknownNameError, match="Did you mean 'model'.*Kinds: dataset, model"):
        cvcore.list_components("modle")


def test_unknown_option_names_valid_ones():
    with pytest.raises(cvcore.OptionError) as error:
        cvcore.create("optimizer", "sgd", [], momentun=0.9)
    assert "Unknown option 'momentun' for optimizer 'sgd'. Did you mean 'momentum'?" in str(error.value)
    assert "Valid options: lr, momentum, nesterov, weight_decay, dampening." in str(error.value)


def test_wrong_option_type_is_named():
    with pytest.raises(cvcore.OptionError, match="Option 'lr' of optimizer 'sgd' must be float, got 'fast'"):
        cvcore.create("optimizer", "sgd", [], lr="fast")


def test_a_misspelt_choice_suggests_the_closest(in_tmp):
    with pytest.raises(cvcore.OptionError, match="must be 'auto' \\| 'memory' \\| 'mmap' \\| 'off', got 'memry' "
                                                 "\\(str\\). Did you mean 'memory'\\?"):
        cvcore.create("dataset", "imagefolder", root=in_tmp, cache="memry")


def test_missing_required_option():
    def register_models(register):
        register("deep", needs_depth)

    with plugin_registered(plugin(register_models=register_models), name="req"):
        with pytest.raises(cvcore.OptionError, match="needs option\\(s\\) depth"):
            cvcore.create("model", "deep")
        assert len(cvcore.create("model", "deep", depth=3)) == 3


@pytest.mark.parametrize(("options", "message"), [
    ({"share": 1.5}, "Option 'share' of model 'ranged' must be between 0.0 and 1.0, got 1.5."),
    ({"share": -0.0001}, "Option 'share' of model 'ranged' must be between 0.0 and 1.0, got -0.0001."),
    ({"pair": [3.0, 2.0]}, "Option 'pair' of model 'ranged' must be (low, high) with 0.0 <= low <= high <= 10.0"),
    ({"pair": [1.0, 11.0]}, "Option 'pair' of model 'ranged' must be (low, high) with 0.0 <= low <= high <= 10.0"),
    ({"count": 0}, "Option 'count' of model 'ranged' must be at least 1, got 0."),
])
def test_declared_ranges_are_checked_before_the_factory_runs(options, message):
    with plugin_registered(plugin(register_models=lambda register: register("ranged", ranged)), name="ranges"):
        with pytest.raises(cvcore.OptionError) as error:
            cvcore.create("model", "ranged", **options)
        assert str(error.value) == message or str(error.value).startswith(message)
        for bound in ({"share": 0.0}, {"share": 1}, {"pair": [2, 2]}, {"count": None}, {"count": 1}):
            cvcore.create("model", "ranged", **bound)  # the bounds themselves are in range
        types = {opt.name: opt.type_name for opt in cvcore.get_component("model", "ranged").options}
        assert types == {"share": "float between 0.0 and 1.0",
                         "pair": "tuple[float, float] (low, high) with 0.0 <= low <= high <= 10.0",
                         "count": "int at least 1 | None"}


def test_declared_names_are_checked_before_the_factory_runs_with_the_closest():
    def backbone(*, encoder: Annotated[str, cvcore.Named(("resnet18", "resnet50"), prefixes=("tu-",))] = "resnet18"):
        """A model whose option names its choices.

        :param encoder: a backbone.
        """
        from torch import nn

        return nn.Linear(1, 1)

    with plugin_registered(plugin(register_models=lambda register: register("backbone", backbone)), name="named"):
        with pytest.raises(cvcore.OptionError) as error:
            cvcore.create("model", "backbone", encoder="resnet5O")
        assert str(error.value) == ("Option 'encoder' of model 'backbone' must be one of 2 names or tu-NAME, got "
                                    "'resnet5O'. Did you mean 'resnet50' or 'resnet18'? Valid names: resnet18, resnet50, or tu-NAME.")
        for taken in ("resnet50", "tu-anything"):
            cvcore.create("model", "backbone", encoder=taken)
        assert cvcore.get_component("model", "backbone").options[0].type_name == "str one of 2 names or tu-NAME"


def test_options_are_described_without_building():
    options = {opt.name: opt for opt in cvcore.get_component("optimizer", "sgd").options}
    assert options["momentum"].type_name == "float"
    assert options["momentum"].default == 0.0
    assert options["momentum"].help == "momentum factor."
    assert options["nesterov"].type_name == "bool"
    milestones = {o.name: o for o in cvcore.get_component("scheduler", "multistep").options}["milestones"]
    assert milestones.type_name == "list[int]"


def test_list_components_with_wildcards_and_providers():
    found = cvcore.list_components("model", "tv/resnet*")
    assert {c.name for c in found} >= {"tv/resnet18", "tv/resnet50", "tv/resnet152"}
    assert all(c.plugin.distribution == "cvcore" and c.plugin.version == cvcore.__version__ for c in found)
    assert all(c.summary for c in cvcore.list_components())


def test_aliases_resolve():
    assert cvcore.get_component("loss", "ce").name == "cross_entropy"
