"""The `cv` command through click's CliRunner, and its import cost in a real subprocess."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import cvcore
from cvcore.commands.cli import cli
from cvcore.testing import plugin_registered
from plugins_for_tests import duplicate_lenet, plugin
from test_loader import make_distribution


def cv(*args, **env):
    return CliRunner().invoke(cli, list(args), env=env or None)


def test_list_shows_tables_with_providers():
    result = cv("list")
    assert result.exit_code == 0
    assert "lenet" in result.output and "models (cvcore" in result.output
    for title in ("datasets", "models", "losses", "optimizers", "schedulers", "callbacks"):
        assert title in result.output


def test_list_json_with_kind_and_pattern():
    result = cv("list", "model", "res*", "--json")
    entries = json.loads(result.output)["components"]
    assert [e["name"] for e in entries] == ["resnet18"]
    assert {"kind", "name", "summary", "plugin"} <= set(entries[0])
    assert entries[0]["plugin"] == "models" and entries[0]["distribution"] == "cvcore"


def test_list_single_argument_that_is_not_a_kind_is_a_pattern():
    names = [e["name"] for e in json.loads(cv("list", "tv/vgg1?", "--json").output)["components"]]
    assert names == ["tv/vgg11", "tv/vgg13", "tv/vgg16", "tv/vgg19"]


def test_list_nothing_matches_hints_kind():
    result = cv("list", "modle")
    assert result.exit_code == 1 and "Did you mean 'model'?" in result.output


def test_list_marks_conflicts():
    def register_models(register):
        register("lenet", duplicate_lenet)

    with plugin_registered(plugin(register_models=register_models), name="dup"):
        assert "conflict: use dup:lenet" in cv("list", "model", "lenet").output
        entries = json.loads(cv("list", "model", "lenet", "--json").output)["components"]
    assert [e["conflict"] for e in entries] == [True, True]


def test_broken_plugin_listed_with_exit_zero_and_strict_exits_two(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(make_distribution(tmp_path)))
    result = cv("list")
    assert result.exit_code == 0
    assert "plugin 'broken' (broken-pkg 1.0) failed to load: ImportError: no module named fancy_dep" in result.output
    assert cv("--strict-plugins", "list").exit_code == 2
    assert cv("list", CVCORE_STRICT_PLUGINS="1").exit_code == 2
    plugins = json.loads(cv("plugins", "--json").output)
    assert {"name": "broken", "distribution": "broken-pkg", "version": "1.0"}.items() <= next(
        p for p in plugins if p["name"] == "broken").items()


def test_info_shows_docs_and_options():
    result = cv("info", "sgd")
    assert result.exit_code == 0
    assert "optimizer optim:sgd" in result.output
    assert "momentum" in result.output and "Nesterov" in result.output


def test_info_asks_for_kind_when_name_is_in_several_kinds():
    def register_datasets(register):
        register("lenet", duplicate_lenet)

    with plugin_registered(plugin(register_datasets=register_datasets), name="odd"):
        result = cv("info", "lenet")
        assert result.exit_code == 1 and "cv info dataset/lenet" in result.output
        assert "model models:lenet" in cv("info", "model/lenet").output


def test_plugins_json_lists_what_each_registers():
    plugins = {p["name"]: p for p in json.loads(cv("plugins", "--json").output)}
    assert "lenet" in plugins["models"]["registers"]["model"]
    assert plugins["optim"]["registers"]["scheduler"]
    assert plugins["models"]["error"] is None


def test_doctor_reports_versions_and_plugins():
    result = cv("doctor")
    assert result.exit_code == 0
    assert "torch" in result.output and "cuda available" in result.output and "import time" in result.output


def test_version_and_help_everywhere():
    assert cvcore.__version__ in cv("--version").output
    for args in ([], ["list"], ["info"], ["plugins"], ["doctor"], ["train"]):
        assert cv(*args, "-h").exit_code == 0


def test_user_error_is_one_paragraph_and_exit_one():
    result = cv("info", "lenett")
    assert result.exit_code == 1
    assert result.output.startswith("Error: Unknown component 'lenett'. Did you mean 'lenet'")
    assert "Traceback" not in result.output


def test_debug_env_shows_the_traceback():
    result = cv("info", "lenett", CVCORE_DEBUG="1")
    assert isinstance(result.exception, cvcore.UnknownNameError)


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--json"], ["plugins"], ["info", "flip", "--json"]])
def test_listing_never_imports_torch(args):
    code = ("import sys; from cvcore.commands.cli import cli\n"
            f"try: cli({args!r})\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules]\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stderr


def test_console_script_runs():
    done = subprocess.run(["cv", "list", "loss", "--json"], capture_output=True, text=True, check=True)
    assert {e["name"] for e in json.loads(done.stdout)["components"]} >= {"cross_entropy", "bce", "mse"}
