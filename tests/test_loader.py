"""Plugin loading: isolation of broken plugins, selection, disabling, duplicates, contract checks."""

import textwrap
from types import SimpleNamespace

import pytest

import cvcore
from cvcore.plugins.loader import registry
from cvcore.testing import plugin_registered
from plugins_for_tests import duplicate_lenet, plugin

BUILTINS = {"callbacks", "datasets", "detection", "losses", "models", "optim", "smp", "tasks", "timm", "transforms"}


def make_distribution(root, dist="broken-pkg", version="1.0", module_source="raise ImportError('no module named fancy_dep')"):
    """A fake installed distribution whose `cvcore.plugins` entry point is `broken`."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[cvcore.plugins]\nbroken = broken_plugin_mod\n")
    (root / "broken_plugin_mod.py").write_text(textwrap.dedent(module_source))
    return root


def test_builtins_load_through_entry_points():
    reg = registry()
    assert {p.name for p in reg.plugins} >= BUILTINS
    assert all(p.distribution == "cvcore" and p.error is None for p in reg.plugins if p.name in BUILTINS)


def test_broken_plugin_is_reported_and_others_keep_working(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(make_distribution(tmp_path)))
    reg = registry()
    (broken,) = reg.failures
    assert (broken.name, broken.distribution, broken.version) == ("broken", "broken-pkg", "1.0")
    assert broken.error == "ImportError: no module named fancy_dep"
    assert cvcore.get_component("model", "lenet").plugin.name == "models"
    with pytest.raises(cvcore.UnknownNameError, match="Plugin 'broken' .*failed to load.*fancy_dep"):
        cvcore.create("model", "broken:fancy")


def test_plugin_raising_while_registering_makes_its_components_fail_with_that_error():
    def register_models(register):
        register("half_done", duplicate_lenet)
        raise RuntimeError("lost the config file")

    with plugin_registered(plugin(register_models=register_models), name="flaky"):
        assert registry().failures[0].error == "in register_models: RuntimeError: lost the config file"
        with pytest.raises(cvcore.PluginError, match="plugin 'flaky'.*lost the config file"):
            cvcore.create("model", "half_done")
        assert cvcore.create("model", "mlp") is not None


def test_misspelled_hook_is_a_load_error():
    def register_model(register):
        register("never", duplicate_lenet)

    with plugin_registered(plugin(register_model=register_model), name="typo"):
        (failure,) = registry().failures
    assert "unknown hook 'register_model'" in failure.error
    assert "Did you mean 'register_models'" in failure.error


@pytest.mark.parametrize("marker", [{"hookwrapper": True}, {"wrapper": True}])
def test_hook_declared_as_a_wrapper_is_a_load_error(marker):
    def register_models(register):
        register("never", duplicate_lenet)
        yield

    wrapped = SimpleNamespace(register_models=cvcore.hookimpl(**marker)(register_models))
    with plugin_registered(wrapped, name="wrapped"):
        (failure,) = registry().failures
        assert "declares 'register_models' as a pluggy wrapper" in failure.error
        assert not cvcore.list_components("model", "never")


def test_invalid_registration_is_a_plugin_error():
    def register_schedulers(register):
        register("bad", duplicate_lenet, interval="hourly")

    with plugin_registered(plugin(register_schedulers=register_schedulers), name="bad"):
        assert "interval must be one of ('step', 'epoch'), got 'hourly'" in registry().failures[0].error


@pytest.mark.parametrize("sizes", [{"image_size": 0}, {"crop": 224}, {}, {"resize": True}, {"interpolation": "nearest"}])
def test_a_models_pretrained_input_must_be_sizes(sizes):
    def register_models(register):
        register("sized", duplicate_lenet, pretrained_input=sizes)

    with plugin_registered(plugin(register_models=register_models), name="bad"):
        assert (f"pretrained_input must be a mapping of 'image_size' and 'resize' (positive ints) and 'interpolation' "
                f"('bilinear' or 'bicubic'), any of them, got {sizes!r}" in registry().failures[0].error)


def test_duplicate_short_name_resolves_to_neither():
    def register_models(register):
        register("lenet", duplicate_lenet)

    with plugin_registered(plugin(register_models=register_models), name="dup"):
        with pytest.raises(cvcore.AmbiguousNameError, match="dup:lenet, models:lenet"):
            cvcore.create("model", "lenet")
        assert registry().conflicts() == {("model", "lenet")}
        assert type(cvcore.create("model", "dup:lenet")).__name__ == "Linear"
        assert type(cvcore.create("model", "models:lenet")).__name__ == "LeNet"


def test_disable_plugins_by_name(monkeypatch):
    monkeypatch.setenv("CVCORE_DISABLE_PLUGINS", "models, losses")
    names = {p.name for p in registry().plugins}
    assert names == BUILTINS - {"models", "losses"}
    with pytest.raises(cvcore.UnknownNameError):
        cvcore.get_component("model", "lenet")


def test_load_plugins_selects_only_those(monkeypatch):
    monkeypatch.setenv("CVCORE_LOAD_PLUGINS", "datasets")
    assert [p.name for p in registry().plugins] == ["datasets"]


def test_empty_load_plugins_loads_none_not_even_builtins(monkeypatch):
    monkeypatch.setenv("CVCORE_LOAD_PLUGINS", "")
    assert registry().plugins == ()
    assert cvcore.list_components() == []
