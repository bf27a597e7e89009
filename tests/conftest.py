import os

import pytest

from cvcore.plugins import loader


def pytest_configure(config):
    """Under pytest-xdist, each worker takes its share of the cores for torch's threads, and so do
    the `cv` processes its tests start: workers each using every core would oversubscribe them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = str(max(1, cores // workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads

        import torch

        torch.set_num_threads(int(threads))


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch, tmp_path):
    """Each test loads plugins anew, from the environment it sets up, and keeps its folder caches
    in its own temporary directory."""
    for variable in ("CVCORE_LOAD_PLUGINS", "CVCORE_DISABLE_PLUGINS", "CVCORE_STRICT_PLUGINS", "CVCORE_DEBUG"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CVCORE_CACHE_DIR", str(tmp_path / "cvcore-cache"))
    loader.reset()
    yield
    loader.reset()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty directory, so default run directories land in tmp_path/runs."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def written_configs_parse_back(request):
    """Every config.toml a test's runs wrote is valid TOML that `cv train -c` accepts."""
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if folder is None:
        return
    from cvcore.runs import config

    for path in folder.rglob("config.toml"):
        config.load(path)  # raises ConfigError, naming the file, if it does not parse
