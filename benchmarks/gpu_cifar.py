"""Training images/s of the CIFAR-10 ResNet18 recipe under each precision / channels_last / compile
setting, beside the images/s of the data path alone (to show it is never the bottleneck).

Data: a CIFAR-10 fixture in the real file format (no network on the GPU machines either). The
Trainer runs 2 epochs of ``--batches`` steps; the second epoch's images/s is reported (the first
pays for cudnn autotuning and compilation). Without a GPU it runs on the CPU, smaller: batch 32,
float32 and bf16-mixed (float16 convolutions are very slow on CPUs), and no compile (minutes on a CPU).

    python benchmarks/gpu_cifar.py [--batches 100] [--images 50000]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch

import cvcore
from data_path import training_batches, training_rate, write_cifar

GPU_BATCH, CPU_BATCH = 128, 32


def data_path_rate(data, device: torch.device, batches: int, batch_size: int) -> float:
    stream = training_batches(data, device, batch_size)
    next(stream)
    start = time.perf_counter()
    seen = sum(len(images) for images, _ in itertools.islice(stream, batches))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=None, help="training steps per epoch (default 100 GPU, 3 CPU)")
    parser.add_argument("--images", type=int, default=50000)
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    batches = args.batches or (100 if gpu else 3)
    batch_size = GPU_BATCH if gpu else CPU_BATCH
    name = torch.cuda.get_device_name() if gpu else "CPU (no GPU here: CPU figures only)"
    print(f"{name}; torch {torch.__version__}; batch {batch_size}; {batches} steps per epoch")
    with tempfile.TemporaryDirectory() as folder:
        write_cifar(Path(folder), args.images)
        data = cvcore.create("dataset", "cifar10", root=Path(folder))
        print(f"data path alone: {data_path_rate(data, device, batches, batch_size):,.0f} img/s")
        precisions = ["16-mixed", "bf16-mixed"] if gpu else ["32", "bf16-mixed"]
        compiles = (False, True) if gpu else (False,)
        for precision, channels_last, compile in itertools.product(precisions, (False, True), compiles):
            rate = training_rate(data, "resnet18", device.type, batches, batch_size, precision, channels_last,
                                 compile)
            print(f"precision {precision:<10} channels_last {channels_last!s:<5} compile {compile!s:<5} "
                  f"{rate:>9,.0f} img/s  {50000 / rate:>7.1f} s per 50,000 images", flush=True)


if __name__ == "__main__":
    main()
