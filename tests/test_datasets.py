"""Built-in data sets read fixtures in the real file formats; the download code runs against a loopback server."""

import pytest
import torch
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

import cvcore
from cvcore.testing import check_component
from fixtures import md5, serve, tar_cifar, trust_cifar_fixture, write_cifar10, write_image_folder, write_mnist_mirror


def test_digits_is_real_and_offline():
    splits = check_component("dataset", "digits")
    assert (len(splits.train), len(splits.val)) == (1438, 359)
    assert splits.info.in_channels == 1 and splits.info.image_size == (32, 32)
    pixels = splits.train.images.float() / 255  # uint8, normalised on the device with the info's mean and std
    normalised = (pixels - splits.info.mean[0]) / splits.info.std[0]
    assert abs(normalised.mean().item()) < 1e-4 and abs(normalised.std().item() - 1) < 1e-3


def test_digits_are_scikit_learns_read_without_importing_it():
    """The pixels and labels of sklearn.datasets.load_digits, read from its file in a process that
    never imports scikit-learn (a second of every default job's start), and through load_digits
    where the file is not where this scikit-learn keeps it."""
    import subprocess
    import sys

    import numpy as np
    from sklearn.datasets import load_digits

    from cvcore_datasets import sklearn_digits

    reference = load_digits()
    images, labels = sklearn_digits._digits()
    assert np.array_equal(images, reference.images) and np.array_equal(labels, reference.target)
    check = ("import sys, cvcore; cvcore.create('dataset', 'digits'); "
             "assert not [m for m in sys.modules if m.startswith('sklearn')]")
    assert subprocess.run([sys.executable, "-c", check]).returncode == 0


def test_digits_come_from_load_digits_where_the_file_moved(monkeypatch, tmp_path):
    import importlib.machinery
    import importlib.util

    import numpy as np
    from sklearn.datasets import load_digits

    from cvcore_datasets import sklearn_digits

    elsewhere = importlib.machinery.ModuleSpec("sklearn", None, is_package=True)
    elsewhere.submodule_search_locations = [str(tmp_path)]  # no datasets/data/digits.csv.gz there
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: elsewhere)
    images, labels = sklearn_digits._digits()
    reference = load_digits()
    assert np.array_equal(images, reference.images) and np.array_equal(labels, reference.target)


def test_digits_without_scikit_learn_say_how_to_install_it(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(cvcore.DataError, match=r"needs scikit-learn: pip install 'cvcore\[digits\]'"):
        cvcore.create("dataset", "digits")


def test_cifar10_reads_python_batches_with_checksums(tmp_path, monkeypatch):
    trust_cifar_fixture(monkeypatch, write_cifar10(tmp_path))
    splits = check_component("dataset", "cifar10", root=tmp_path)
    assert (len(splits.train), len(splits.val)) == (40, 8)
    assert splits.info.class_names[:2] == ("airplane", "automobile")


def test_cifar10_checksum_stays_on_for_users(tmp_path):
    write_cifar10(tmp_path)  # files present, but not the official release
    with pytest.raises(cvcore.DataError, match="not found or corrupted"):
        cvcore.create("dataset", "cifar10", root=tmp_path)


def test_cifar10_download_code_runs_against_a_local_mirror(tmp_path, monkeypatch):
    source = tmp_path / "source"
    archive = tar_cifar(source, tmp_path / "cifar-10-python.tar.gz") if write_cifar10(source) else None
    trust_cifar_fixture(monkeypatch, source / "cifar-10-batches-py")
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive))
    with serve(tmp_path) as url:
        monkeypatch.setattr(CIFAR10, "url", url + archive.name)
        splits = cvcore.create("dataset", "cifar10", root=tmp_path / "data", download=True)
    assert len(splits.train) == 40


@pytest.mark.parametrize(("name", "cls", "folder"), [("mnist", MNIST, "MNIST"),
                                                     ("fashion_mnist", FashionMNIST, "FashionMNIST")])
def test_mnist_family_downloads_idx_gz_from_a_mirror(tmp_path, monkeypatch, name, cls, folder):
    files = write_mnist_mirror(tmp_path / "mirror")
    monkeypatch.setattr(cls, "resources", [(f.name, md5(f)) for f in files])
    with serve(tmp_path / "mirror") as url:
        monkeypatch.setattr(cls, "mirrors", [url])
        check_component("dataset", name, root=tmp_path / "data", download=True)
    assert (tmp_path / "data" / folder / "raw" / "train-images-idx3-ubyte").exists()
    splits = check_component("dataset", name, root=tmp_path / "data")  # offline now
    assert (len(splits.train), len(splits.val), splits.info.in_channels) == (20, 10, 1)


def test_missing_files_name_what_is_expected_where(tmp_path):
    with pytest.raises(cvcore.DataError) as error:
        cvcore.create("dataset", "mnist", root=tmp_path)
    assert f"{tmp_path}/MNIST/raw/train-images-idx3-ubyte" in str(error.value)
    assert "download=true" in str(error.value)


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # nothing listens on port 9
    with pytest.raises(cvcore.DataError, match="(Downloading failed|not found).*train-images-idx3-ubyte"):
        cvcore.create("dataset", "mnist", root=tmp_path, download=True)


def test_imagefolder_reads_png_and_jpeg_stored_at_the_resize(tmp_path):
    splits = check_component("dataset", "imagefolder", root=write_image_folder(tmp_path), image_size=32, resize=36)
    assert splits.info.class_names == ("ants", "bees") and len(splits.train) == 6
    image, label, extent = splits.val[0]  # 40 x 48 photos, stored whole with the shorter side at 36
    assert tuple(image.shape) == (3, 36, 43) and extent.tolist() == [36, 43]
    assert image.dtype == torch.uint8 and int(label) == 0
    assert splits.info.image_size == (32, 32) and splits.info.eval_resize == 36


def test_imagefolder_without_splits_says_what_is_missing(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(cvcore.DataError, match="needs sub-folders train/ and val/.*missing: val/"):
        cvcore.create("dataset", "imagefolder", root=tmp_path)
    with pytest.raises(cvcore.DataError, match="missing: train/, val/\\.$"):
        cvcore.create("dataset", "imagefolder", root=tmp_path / "nowhere")


@pytest.mark.parametrize(("name", "options"), [("shapes", {"count": 40, "size": 16}),
                                               ("multilabel_shapes", {"count": 40, "size": 16}),
                                               ("imagefolder", {"image_size": 24, "resize": 28}),
                                               ("digits", {})])
def test_cv_info_shows_the_transforms_a_data_set_suggests(tmp_path, name, options):
    from click.testing import CliRunner

    from cvcore.commands.cli import cli
    from fixtures import write_image_folder

    if name == "imagefolder":
        write_image_folder(tmp_path / "data")
        options = {**options, "root": tmp_path / "data"}
    component = cvcore.get_component("dataset", name)
    built = cvcore.create("dataset", name, **options).transforms
    assert component.metadata.get("transforms", ()) == built  # what cv info says is what a run gets
    shown = CliRunner().invoke(cli, ["info", name]).output
    assert ("transforms: " in shown) == bool(built)
