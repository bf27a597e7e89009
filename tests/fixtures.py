"""Small data sets written in the real on-disk formats, and a loopback server to 'download' them."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import pickle
import struct
import tarfile
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar10(root: Path, per_batch: int = 8, seed: int = 0) -> Path:
    """cifar-10-batches-py/ with python-pickled batches, exactly as the official archive has them."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in CIFAR_FILES:
        # The official batches were pickled by Python 2, whose str keys load as str.
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": [int(i % 10) for i in range(per_batch)], "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return folder


def trust_cifar_fixture(monkeypatch, folder: Path) -> None:
    """Make torchvision's checksum check accept the fixture's files (the check itself still runs)."""
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(folder / n)] for n in CIFAR_FILES[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(folder / "batches.meta")})


def write_idx_gz(folder: Path, prefix: str, count: int, seed: int = 0) -> list[Path]:
    """MNIST-format idx files, gzipped, as the official mirrors serve them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = (np.arange(count) % 10).astype(np.uint8)
    files = []
    for name, header, payload in (
        (f"{prefix}-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, count, 28, 28), images.tobytes()),
        (f"{prefix}-labels-idx1-ubyte.gz", struct.pack(">II", 2049, count), labels.tobytes()),
    ):
        path = folder / name
        path.write_bytes(gzip.compress(header + payload))
        files.append(path)
    return files


def write_mnist_mirror(folder: Path, count: int = 20) -> list[Path]:
    return write_idx_gz(folder, "train", count) + write_idx_gz(folder, "t10k", count // 2)


def install_mnist(root: Path, folder: str) -> Path:
    """root/<folder>/raw/ as torchvision leaves it after a download: the .gz files and their contents."""
    raw = root / folder / "raw"
    for path in write_mnist_mirror(raw):
        path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
    return root


def write_image_folder(root: Path, classes=("ants", "bees"), per_class: int = 3, size: int = 40) -> Path:
    """root/train/<class>/*.png|jpg and root/val/<class>/..., the transfer-learning tutorial's layout."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                pixels = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
                suffix = "png" if index % 2 else "jpg"
                Image.fromarray(pixels).save(folder / f"{index}.{suffix}")
    return root


@contextmanager
def serve(folder: Path, requests: list[str] | None = None):
    """Serve ``folder`` over HTTP on the loopback interface; yields the base URL. Each requested
    path is appended to ``requests``."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            if requests is not None:
                requests.append(self.path)
            super().do_GET()

    handler = functools.partial(Handler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def tar_cifar(source_root: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source_root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def augmented(data, transforms, seed: int = 0, std: float = 1.0, *, info=None):
    """The whole of ``data`` (a TensorImages) as one training batch through ``transforms`` (names or
    (name, options) pairs) and the Trainer's preparation; with mean 0 and ``std`` unless ``info`` is given."""
    import torch

    import cvcore
    from cvcore.training.preparation import Preparation

    channels = data.images.shape[1]
    info = info or cvcore.DataInfo(num_classes=4, class_names="abcd", in_channels=channels,
                                   image_size=data.images.shape[-2:], mean=(0.0,) * channels, std=(std,) * channels,
                                   ignore_index=255)
    built = cvcore.create_transforms(transforms, info)
    prepare = Preparation(info, torch.device("cpu"), built, torch.Generator().manual_seed(seed))
    (batch,) = data.on_device(torch.device("cpu")).batches(len(data), shuffle=False)
    return prepare(*batch, train=True)[:2]


class Payload:
    """A pickle that, if anything unpickled it, would run code: it leaves a file named PWNED."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').touch()",))


def train_resume_export(*options: str) -> None:
    """`cv train` with ``options`` for an epoch into run directory ``r`` of the working folder, then
    a resume for one more, then `cv export` to ONNX, verified by onnxruntime: a model's whole life."""
    from click.testing import CliRunner

    from cvcore.commands.cli import cli

    for args in (["train", *options, "--epochs", "1", "--run-dir", "r"], ["train", "--resume", "r", "--epochs", "+1"],
                 ["export", "r", "--format", "onnx", "--output", "m.onnx"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    assert "verified" in result.output, result.output
