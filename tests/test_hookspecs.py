"""Every hook spec is documented to one standard, and every hook has a test of its own."""

import ast
import inspect
from pathlib import Path

import pytest

from cvcore.plugins import hookspecs
from cvcore.plugins.registry import KINDS

HOOKS = [hook for hook, _ in KINDS.values()]


def test_kinds_and_hookspecs_agree():
    specs = {name for name, value in vars(hookspecs).items() if hasattr(value, "cvcore_spec")}
    assert specs == set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    spec = getattr(hookspecs, hook)
    doc = inspect.getdoc(spec) or ""
    assert doc.splitlines()[0].startswith("Register "), "summary line first"
    assert ":param register:" in doc
    assert "Example::" in doc and "@cvcore.hookimpl" in doc and f"def {hook}(register)" in doc
    assert "returns" in doc, "say what the factory must return"
    assert list(inspect.signature(spec).parameters) == ["register"]
    assert inspect.signature(spec).parameters["register"].annotation == "Register"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    tested = set()
    for path in Path(__file__).parent.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        tested |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert any(name.startswith(f"test_{hook}") for name in tested), f"write test_{hook}_... in tests/"
