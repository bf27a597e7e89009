"""Throwaway virtual environments into which pip installs real plugin distributions (no network)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path


def make_venv(path: Path, *projects: Path) -> Path:
    """A venv that sees this environment's packages (cvcore, torch), plus ``projects`` installed by pip.

    A .pth file adds this interpreter's site directories: ``--system-site-packages`` would add the
    base interpreter's instead, which lack torch when the tests themselves run in a virtualenv.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    lines = "".join(f"import site; site.addsitedir({folder!r})\n" for folder in site.getsitepackages())
    Path(purelib, "zz_parent_environment.pth").write_text(lines)
    # This environment's pip installs into the venv, building with this environment's setuptools.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", *map(str, projects)], check=True)
    return path


def write_project(root: Path, distribution: str, entry_point: str, module: str, source: str,
                  dependencies: tuple[str, ...] = ()) -> Path:
    """A one-module plugin distribution: pyproject.toml naming ``entry_point`` and ``module``.py."""
    project = root / distribution
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=69"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{distribution}"
        version = "1.0"
        dependencies = {list(dependencies)!r}

        [project.entry-points."cvcore.plugins"]
        {entry_point} = "{module}"

        [tool.setuptools]
        py-modules = ["{module}"]
        """))
    (project / f"{module}.py").write_text(textwrap.dedent(source))
    return project


def run_cv(venv: Path, *args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``cv ARGS`` with the venv's interpreter."""
    command = [str(venv / "bin" / "python"), "-m", "cvcore.commands.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})})
