"""The architecture, checked: the kernel names no task, and built-in plugins use only the public
API that a third-party plugin has (so a third party can do all that a built-in does)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK_WORDS = ("classification", "segmentation", "multilabel")
PUBLIC_MODULES = {"cvcore", "cvcore.cache", "cvcore.checkpoint", "cvcore.deprecations", "cvcore.export", "cvcore.files", "cvcore.images",
                  "cvcore.testing"}


def code_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants in a module's code, docstrings left out (they may explain tasks by example)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_the_kernel_names_no_task():
    found = [f"{path.name}:{line}: {text!r}" for path in sorted((ROOT / "cvcore").rglob("*.py"))
             for line, text in code_strings(ast.parse(path.read_text())) if any(w in text for w in TASK_WORDS)]
    assert found == []


def test_plugins_use_only_the_public_api():
    plugins = [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "examples" / "cvcore-example-plugin" / "cvcore_example").rglob("*.py")]
    private = [f"{path.relative_to(ROOT)}:{line}: {module}" for path in sorted(plugins)
               for line, module in imported_modules(ast.parse(path.read_text()))
               if module.split(".")[0] == "cvcore" and module not in PUBLIC_MODULES]
    assert private == []
