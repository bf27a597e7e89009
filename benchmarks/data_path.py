"""Images/s of data paths, side by side in one run, on data in the real on-disk formats.

1. CIFAR-10 training data: the tutorials' pipeline (torchvision CIFAR10 + RandomCrop(32, padding=4),
   RandomHorizontalFlip, ToTensor, Normalize, DataLoader with 2 workers, batch 128) against
   cvcore's in-memory path (one uint8 tensor; flip, pad-crop and normalisation in batches on the device).
2. A folder of photo-sized JPEGs (375x500, like the ants/bees set), RandomResizedCrop(224) + flip:
   the tutorials' ImageFolder DataLoader (2 workers; its later epochs, and its first, which reads
   the folder and starts the workers) against cvcore's imagefolder: its first epoch (reading the
   folder and decoding every file into the cache, then the epoch), its later epochs (from the
   cache), and the same transforms with the cache off (every file decoded in every epoch, 2 workers).
3. The data path's share of a training step: torchvision's resnet18 at 224 trained on that folder.
4. Decoders: a photo into the cache's form with PIL (draft mode) and with torchvision's decode_jpeg,
   and with simplejpeg and OpenCV where installed (not dependencies), each checked for cvcore's pixels.

Writes a CIFAR-format fixture (python pickles, checksums of the fixture trusted for this run only)
and a folder of JPEGs in a temporary directory: no download.

    python benchmarks/data_path.py [--images 20000] [--jpegs 512] [--steps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

import cvcore
from cvcore.training.batching import DeviceLoader
from cvcore.training.preparation import Preparation

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
BATCH = 128
FOLDER_BATCH = 32


def write_cifar(root: Path, images: int) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        count = images // 5 if name != "test_batch" else 1000
        batch = {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, count))}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    digest = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    CIFAR10 = torchvision.datasets.CIFAR10
    CIFAR10.train_list = [[n, digest[n]] for n in names[:5]]
    CIFAR10.test_list = [["test_batch", digest["test_batch"]]]
    CIFAR10.meta = {**CIFAR10.meta, "md5": digest["batches.meta"]}


def write_jpegs(root: Path, count: int) -> None:
    """JPEGs with the structure of photos (smooth regions, edges, some grain) rather than noise,
    which no camera produces and which decodes several times slower."""
    rng = np.random.default_rng(0)
    for split, n in (("train", count), ("val", 8)):
        for cls in ("ants", "bees"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n // 2):
                coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((500, 375), Image.BICUBIC)
                grain = rng.normal(0, 6, (375, 500, 3))
                pixels = np.clip(np.asarray(coarse, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.jpg", quality=90)


def training_batches(data: cvcore.DataSplits, device: torch.device, batch: int, epochs: int = 1):
    """cvcore's training data path: batches built on the device, then the data set's transforms
    and the normalisation there, as the Trainer runs them."""
    prepare = Preparation(data.info, device, cvcore.create_transforms(data.transforms, data.info),
                          torch.Generator(device).manual_seed(0))
    order = torch.Generator().manual_seed(0)
    loader = (DeviceLoader(data.train.on_device(device), batch, shuffle=True, generator=order)
              if isinstance(data.train, cvcore.TensorImages) else
              DataLoader(data.train, batch_size=batch, shuffle=True, num_workers=2, persistent_workers=True))
    for _ in range(epochs):
        for batch in loader:  # (images, targets) or, of whole photos, (images, targets, extents)
            yield prepare(*batch, train=True)[:2]


def training_rate(data: cvcore.DataSplits, model_name: str, device: str, batches: int, batch_size: int,
                  precision: str = "32", channels_last: bool = False, compile: bool = False) -> float:
    """Images/s of the Trainer's second epoch of ``batches`` steps (the first pays for cudnn's
    autotuning and compilation), ``model_name`` trained with SGD on ``data``."""
    model = cvcore.create("model", model_name, num_classes=data.info.num_classes)
    optimizer = cvcore.create("optimizer", "sgd", model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    options = cvcore.TrainerOptions(epochs=2, batch_size=batch_size, device=device, precision=precision,
                                    channels_last=channels_last, compile=compile, limit_train_batches=batches,
                                    limit_val_batches=1)
    trainer = cvcore.Trainer(model=model, loss=torch.nn.CrossEntropyLoss(), optimizer=optimizer, data=data,
                             options=options)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        trainer.fit()
    return trainer.history[-1]["images_per_second"]


def rate(batches, device: torch.device) -> float:
    """Images/s of one pass over ``batches``, including the copy to ``device``."""
    start, seen = time.perf_counter(), 0
    for images, _ in batches:
        images = images.to(device, non_blocking=True)
        seen += len(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def cifar(root: Path, device: torch.device, repeats: int) -> None:
    tutorial_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    tutorial = DataLoader(torchvision.datasets.CIFAR10(str(root), True, tutorial_tf), batch_size=BATCH, shuffle=True,
                          num_workers=2, persistent_workers=True)
    data = cvcore.create("dataset", "cifar10", root=root)
    theirs_rates, our_rates = [], []
    for _ in range(repeats):  # interleaved
        theirs_rates.append(rate(tutorial, device))
        our_rates.append(rate(training_batches(data, device, BATCH), device))
    theirs, mine = max(theirs_rates), max(our_rates)
    print(f"CIFAR-10 train   tutorial pipeline {theirs:>10,.0f} img/s   cvcore in-memory {mine:>12,.0f} img/s   "
          f"ratio {mine / theirs:.1f}x", flush=True)


def imagefolder(root: Path, device: torch.device, repeats: int) -> tuple[cvcore.DataSplits, float]:
    """Prints the folder's figures; returns the cached data set and its later epochs' images/s."""
    tutorial_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                             T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    start = time.perf_counter()  # its first epoch, like cvcore's, includes reading the folder and starting workers
    tutorial = DataLoader(torchvision.datasets.ImageFolder(str(root / "train"), tutorial_tf), batch_size=FOLDER_BATCH,
                          shuffle=True, num_workers=2, persistent_workers=True)
    theirs_first = sum(len(images) for images, _ in tutorial) / (time.perf_counter() - start)
    theirs = max(rate(tutorial, device) for _ in range(repeats))
    start = time.perf_counter()
    data = cvcore.create("dataset", "imagefolder", root=root)  # decodes train/ and val/ into the cache
    seen = sum(len(images) for images, _ in training_batches(data, device, FOLDER_BATCH))
    first = seen / (time.perf_counter() - start)
    later = max(rate(training_batches(data, device, FOLDER_BATCH), device) for _ in range(repeats))
    uncached = cvcore.create("dataset", "imagefolder", root=root, cache="off")
    off = rate(training_batches(uncached, device, FOLDER_BATCH, epochs=2), device)
    print(f"JPEG folder      tutorial pipeline {theirs:>10,.0f} img/s (its first epoch {theirs_first:,.0f})   "
          f"cvcore first epoch {first:>6,.0f} img/s ({first / theirs:.2f}x; {first / theirs_first:.2f}x its first)   "
          f"later epochs {later:>6,.0f} img/s ({later / theirs:.1f}x)   cache off {off:>5,.0f} img/s "
          f"({off / theirs:.2f}x)", flush=True)
    return data, later


def step_share(data: cvcore.DataSplits, data_rate: float, device: torch.device, steps: int) -> None:
    """The data path's share of a training step: torchvision's resnet18 at 224 trained by the Trainer
    on the cached folder (mixed precision and channels_last on a GPU), against the data path alone.
    The Trainer prepares each batch before its step, so the share is the data path's time per image
    over the training's."""
    gpu = device.type == "cuda"
    trained = training_rate(data, "tv/resnet18", device.type, steps, FOLDER_BATCH, "bf16-mixed" if gpu else "32",
                            channels_last=gpu)
    print(f"resnet18 at 224  training {trained:>8,.1f} img/s ({steps} steps of {FOLDER_BATCH}); the data path alone "
          f"{data_rate:,.0f} img/s: {100 * trained / data_rate:.1f}% of a step", flush=True)


def decoders(root: Path, repeats: int) -> None:
    """Decoding a photo into the cache's form (decode, resize to 256): PIL (draft mode) against
    torchvision's libjpeg-turbo, which cvcore uses for JPEGs that draft mode would not reduce, and
    the well-kept decoders that are installed. One thread: the cache decodes files in parallel,
    one per core. Each is put in torchvision's place in cvcore's reader, so the rest is the same."""
    import cvcore.images

    files = sorted((root / "train").rglob("*.jpg"))[:128]
    torchvision_decoder = cvcore.images._torchvision_jpeg_decoder
    candidates = {"PIL (draft mode)": lambda: None, "torchvision decode_jpeg": torchvision_decoder,
                  **optional_decoders()}
    rates: dict[str, list[float]] = {name: [] for name in candidates}
    pixels: dict[str, list[torch.Tensor]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(repeats):
            for name, decoder in candidates.items():
                cvcore.images._torchvision_jpeg_decoder = decoder
                start = time.perf_counter()
                pixels[name] = [cvcore.images.read_stored(path, 3, 256)[0] for path in files]
                rates[name].append(len(files) / (time.perf_counter() - start))
    finally:
        cvcore.images._torchvision_jpeg_decoder = torchvision_decoder
        torch.set_num_threads(threads)
    pil = max(rates["PIL (draft mode)"])
    for name, found in rates.items():
        same = all(torch.equal(a, b) for a, b in zip(pixels[name], pixels["torchvision decode_jpeg"]))
        print(f"JPEG decoding    {name:<24} + resize {max(found):>7,.0f} img/s ({max(found) / pil:.2f}x PIL), "
              f"{'the same pixels' if same else 'OTHER PIXELS'} as cvcore's, one thread", flush=True)


def optional_decoders() -> dict:
    """simplejpeg and OpenCV (both libjpeg-turbo), where installed, as cvcore's reader calls a decoder."""
    found = {}
    with contextlib.suppress(ImportError):
        import simplejpeg

        def decode_simplejpeg(path, channels):
            return torch.from_numpy(simplejpeg.decode_jpeg(Path(path).read_bytes(), colorspace="RGB")).permute(2, 0, 1)

        found["simplejpeg"] = lambda: decode_simplejpeg
    with contextlib.suppress(ImportError):
        import cv2

        cv2.setNumThreads(1)

        def decode_opencv(path, channels):
            bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
            return torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)

        found["OpenCV"] = lambda: decode_opencv
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="CIFAR training images in the fixture")
    parser.add_argument("--jpegs", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="resnet18 steps per epoch (default 50 GPU, 3 CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_cifar(root / "cifar", args.images)
        cifar(root / "cifar", device, args.repeats)
        write_jpegs(root / "jpeg", args.jpegs)
        os.environ["CVCORE_CACHE_DIR"] = str(root / "cache")  # a cold cache, removed afterwards
        data, data_rate = imagefolder(root / "jpeg", device, args.repeats)
        step_share(data, data_rate, device, args.steps or (50 if device.type == "cuda" else 3))
        decoders(root / "jpeg", args.repeats)


if __name__ == "__main__":
    main()
