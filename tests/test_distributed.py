"""Two processes on CPU with gloo, launched by torchrun exactly as users launch multi-GPU runs."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from cvcore import checkpoint as ckpt
from fixtures import md5, serve, write_image_folder, write_mnist_mirror

LAUNCH = Path(__file__).with_name("launch_cv.py")


def torchrun(tmp_path, *args, env=None, processes=2):
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
         str(LAUNCH), "train", "--device", "cpu", *args],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PROBE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", **(env or {})})
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def logged_and_evaluated(run_dir):
    """The last epoch's logged metrics, and `cv eval` of the last checkpoint in this one process."""
    from click.testing import CliRunner

    from cvcore.commands.cli import cli

    result = CliRunner().invoke(cli, ["eval", str(run_dir), "--checkpoint", "last", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    text = result.output  # a note on stderr (an averaged run's) follows the JSON
    return rows(run_dir)[-1], json.loads(text[text.index("{"):text.rindex("}") + 1])["metrics"]


def rows(run_dir):
    drop = ("seconds", "images_per_second")
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path):
    run_dir = tmp_path / "ddp"
    done = torchrun(tmp_path, "--epochs", "2", "--run-dir", str(run_dir))
    assert [row["epoch"] for row in rows(run_dir)] == [1, 2]  # written once, by rank 0
    assert done.stdout.count("epoch 2/2") == 1  # printed once
    assert rows(run_dir)[-1]["val_acc1"] > 0.8  # metrics all-reduced over both halves of the data
    assert list(tmp_path.glob("runs")) == []  # rank 1 created no run directory of its own


IDS = ["--dataset", "ids", "--model", "id_recorder", "--callback", "id_log", "--batch-size", "64",
       "--optimizer", "sgd", "--lr", "0.1"]


@pytest.mark.slow
@pytest.mark.parametrize("tensor_loader", ["true", "false"])
def test_every_sample_is_trained_once_per_epoch_and_validated_once(tmp_path, tensor_loader):
    # 129 training images, batch 64, 2 processes: shares of 65 (one image repeated, wrapped around as
    # DistributedSampler pads) in 2 batches each; 37 validation images: 19 + 18, each counted once.
    torchrun(tmp_path, *IDS, "--epochs", "3", "--run-dir", str(tmp_path / "run"),
             "--set", f"trainer.tensor_loader={tensor_loader}")
    logs = [[json.loads(line) for line in (tmp_path / "ids" / f"rank-{r}.jsonl").read_text().splitlines()]
            for r in (0, 1)]
    orders = []
    for epoch_rows in zip(*logs):
        trained = Counter(i for row in epoch_rows for i in row["train"])
        assert set(trained) == set(range(129)), f"never trained on: {set(range(129)) - set(trained)}"
        assert sorted(trained.values()) == [1] * 128 + [2]  # the one wrapped-around image
        assert [len(row["train"]) for row in epoch_rows] == [65, 65]
        validated = sorted(i for row in epoch_rows for i in row["val"])
        assert validated == list(range(10000, 10037))
        orders.append(epoch_rows[0]["train"])
    assert orders[0] != orders[1]  # a new permutation every epoch


@pytest.mark.slow
def test_resume_restores_each_process_own_random_state(tmp_path):
    augmented = [*IDS, "--set", "dataset.crop_padding=1", "--set", "dataset.flip=true", "--seed", "3",
                 "--scheduler", "step"]  # a schedule that does not depend on the run length
    torchrun(tmp_path, *augmented, "--epochs", "3", "--run-dir", str(tmp_path / "full"))
    torchrun(tmp_path, *augmented, "--epochs", "2", "--run-dir", str(tmp_path / "half"))
    torchrun(tmp_path, "--resume", str(tmp_path / "half"), "--epochs", "3")
    assert rows(tmp_path / "half") == rows(tmp_path / "full")
    full, half = (ckpt.load(tmp_path / d / "checkpoints" / "last.safetensors").model_weights()
                  for d in ("full", "half"))
    assert all(torch.equal(full[key], half[key]) for key in full)


@pytest.mark.slow
def test_download_happens_once_under_torchrun(tmp_path):
    files = write_mnist_mirror(tmp_path / "mirror", count=40)
    resources = json.dumps([(f.name, md5(f)) for f in files])
    requests = []
    with serve(tmp_path / "mirror", requests) as url:
        done = torchrun(tmp_path, "--dataset", "mnist", "--model", "mlp", "--data-dir", str(tmp_path / "data"),
                        "--set", "dataset.download=true", "--epochs", "1", "--run-dir", str(tmp_path / "run"),
                        env={"MNIST_MIRROR": url, "MNIST_RESOURCES": resources})
    # One process's download: torchvision asks for each file twice (a redirect probe, then the file).
    assert Counter(requests) == {f"/{f.name}": 2 for f in files}, done.stdout + done.stderr


@pytest.mark.slow
def test_the_folder_cache_is_decoded_once_under_torchrun(tmp_path):
    write_image_folder(tmp_path / "data")
    done = torchrun(tmp_path, "--dataset", "imagefolder", "--model", "lenet", "--data-dir", str(tmp_path / "data"),
                    "--set", "dataset.image_size=32", "--set", "dataset.resize=36", "--epochs", "1",
                    "--batch-size", "2", "--run-dir", str(tmp_path / "run"))
    assert done.stderr.count("note: decoding") == 2, done.stderr  # train/ and val/, by one process
    assert len(rows(tmp_path / "run")) == 1


@pytest.mark.slow
@pytest.mark.parametrize("averaged", [[], ["--ema", "0.9"]], ids=["weights", "ema"])
def test_two_process_validation_is_the_saved_models_on_every_image(tmp_path, averaged):
    # Exact AP needs every score: each process's rows are gathered, and both validate with rank 0's
    # BatchNorm statistics, so the logged metrics equal a one-process evaluation of the saved weights
    # (with --ema: of the saved average, which each process keeps alike).
    run_dir = tmp_path / "ml"
    torchrun(tmp_path, "--dataset", "multilabel_shapes", "--model", "resnet18", "--loss", "bce", "--epochs", "1",
             "--batch-size", "32", "--set", "dataset.count=150", "--set", "trainer.limit_train_batches=2",
             "--run-dir", str(run_dir), *averaged)
    logged, evaluated = logged_and_evaluated(run_dir)
    assert evaluated["val_map"] == pytest.approx(logged["val_map"], abs=1e-6)
    assert evaluated["val_loss"] == pytest.approx(logged["val_loss"], abs=1e-5)


@pytest.mark.slow
def test_a_signal_to_one_process_stops_every_process_after_the_same_step(tmp_path):
    import signal
    import time

    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(LAUNCH), "train",
         "--device", "cpu", "--epochs", "50", "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "PROBE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"})
    last = run_dir / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + 120
    while not last.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    workers = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
    os.kill(workers[-1], signal.SIGINT)  # one process only: the others learn it one step later
    _, err = process.communicate(timeout=120)
    assert err.count("Interrupted by SIGINT") == 1 and "Connection closed by peer" not in err, err
    assert err.count("exitcode  : 130") == 2, err  # torchrun's report: every process stopped cleanly
    saved = ckpt.load(last)
    assert saved.state()["epoch"] == len(rows(run_dir)) >= 1


def write_id_photos(root: Path, train: int, val: int) -> None:
    """An image folder whose PNGs are each one colour, red and green holding the image's id (id //
    256, id % 256): any resize or crop keeps it, so the id recorder reads which images a process
    trained on through the folder cache (training ids 0.., validation ids 10000..)."""
    from PIL import Image

    for split, ids in (("train", range(train)), ("val", range(10000, 10000 + val))):
        for image_id in ids:
            folder = root / split / ("even", "odd")[image_id % 2]
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (20, 14), (image_id // 256, image_id % 256, 7)).save(folder / f"{image_id}.png")


@pytest.mark.slow
def test_two_nodes_each_with_its_own_cache_train_on_the_same_pixels_and_every_image_once(tmp_path):
    """torchrun across two "nodes" on this machine (rendezvous over c10d, one process each), each
    with its own cache folder as nodes without a shared disk have: each node decodes the folder
    into its own cache, and every training image is trained on once per epoch across them."""
    import socket

    write_id_photos(tmp_path / "data", train=41, val=13)
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
         "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-nodes",
         str(LAUNCH), "train", "--device", "cpu", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"),
         "--set", "dataset.image_size=8", "--set", "dataset.resize=8", "--transform", "flip",
         "--model", "id_recorder", "--callback", "id_log", "--batch-size", "8", "--epochs", "2",
         "--run-dir", str(tmp_path / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "PROBE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1",
             "CVCORE_CACHE_DIR": str(tmp_path / f"cache-node-{node}")}) for node in (0, 1)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), "\n".join(out + err for out, err in outputs)
    caches = [sorted((tmp_path / f"cache-node-{node}" / "folders").glob("*.u8")) for node in (0, 1)]
    assert [len(found) for found in caches] == [2, 2]  # train/ and val/, decoded on each node into its own
    assert [path.read_bytes() for path in caches[0]] == [path.read_bytes() for path in caches[1]]  # the same pixels
    logs = [[json.loads(line) for line in (tmp_path / "ids" / f"rank-{rank}.jsonl").read_text().splitlines()]
            for rank in (0, 1)]
    for epoch_rows in zip(*logs):
        trained = Counter(i for row in epoch_rows for i in row["train"])
        assert set(trained) == set(range(41)) and sorted(trained.values()) == [1] * 40 + [2]  # 41 = 21 + 20 + 1 repeat
        assert sorted(i for row in epoch_rows for i in row["val"]) == list(range(10000, 10013))
    assert len(rows(tmp_path / "run")) == 2


@pytest.mark.slow
def test_two_processes_agree_on_the_epochs_a_time_budget_allows(tmp_path):
    # Each process measures its own first epoch; they take the slowest pace, or their epoch counts
    # would differ and the collectives of the first extra epoch would hang.
    done = torchrun(tmp_path, *IDS, "--time", "2s", "--epochs", "40", "--scheduler", "cosine",
                    "--run-dir", str(tmp_path / "run"))
    logged = rows(tmp_path / "run")
    assert f"epochs = {len(logged)}" in (tmp_path / "run" / "config.toml").read_text()
    assert f"so the run has {len(logged)} epoch(s)" in done.stdout + done.stderr
    assert [row["epoch"] for row in logged] == list(range(1, len(logged) + 1))


@pytest.mark.slow
@pytest.mark.parametrize("model", [
    ("timm", "--model", "timm/test_resnet", "--dataset", "digits", "--batch-size", "64"),
    ("segmentation_models_pytorch", "--model", "smp/unet", "--set", "model.encoder=resnet18", "--dataset", "shapes",
     "--set", "dataset.count=64", "--batch-size", "8"),
], ids=["timm", "smp"])
def test_timm_and_smp_models_train_under_torchrun(tmp_path, model):
    """The model libraries' models under DistributedDataParallel: one epoch on two processes,
    logged once, and the saved weights give the logged (all-reduced) validation metrics."""
    pytest.importorskip(model[0])
    run_dir = tmp_path / "ddp"
    done = torchrun(tmp_path, *model[1:], "--epochs", "1", "--run-dir", str(run_dir))
    assert done.stdout.count("epoch 1/1") == 1
    logged, evaluated = logged_and_evaluated(run_dir)
    assert evaluated == pytest.approx({k: v for k, v in logged.items() if k in evaluated}, abs=1e-5)
