"""How batches reach the Trainer: in-memory sets built on the device, file-backed sets through a
DataLoader, sharded across processes, with augmentations that a resumed run draws again exactly."""

from __future__ import annotations

import random
import signal
import threading
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler

from cvcore.training import distributed
from cvcore.training.tensor_data import DeviceBatches


class DeviceLoader:
    """Batches of an in-memory data set built on the device: a DataLoader's place for TensorImages.

    The order is drawn from ``generator``, which must be the same on every process (one
    permutation, sharded).
    """

    def __init__(self, batches: DeviceBatches, batch_size: int, *, shuffle: bool,
                 generator: torch.Generator | None = None) -> None:
        self.device_batches, self.batch_size, self.shuffle, self.generator = batches, batch_size, shuffle, generator

    def __len__(self) -> int:
        return self.device_batches.num_batches(self.batch_size, distributed.world_size(), distributed.rank(),
                                               shuffle=self.shuffle)

    def __iter__(self):
        return self.device_batches.batches(self.batch_size, shuffle=self.shuffle, generator=self.generator,
                                           rank=distributed.rank(), world_size=distributed.world_size())


class EpochSeeds(Sampler):
    """Pairs each index of ``sampler`` with a seed drawn once per epoch from ``generator``, so that a
    worker process seeds every item from (epoch seed, index): augmentations then depend on the saved
    generator alone, not on the random state that persistent workers carry from epoch to epoch."""

    def __init__(self, sampler: Sampler, generator: torch.Generator) -> None:
        self.sampler, self.generator = sampler, generator

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        seed = int(torch.randint(2**62, (), generator=self.generator))
        return ((index, seed) for index in self.sampler)


class SeededItems(Dataset):
    """Serves ``dataset[index]`` for keys ``(index, seed)`` after seeding torch, random and numpy."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        import numpy

        index, seed = key
        item_seed = (seed + index) % 2**62
        torch.manual_seed(item_seed)
        random.seed(item_seed)
        numpy.random.seed(item_seed % 2**32)
        return self.dataset[index]


_STOPS = (signal.SIGINT, signal.SIGTERM)


def _init_worker(worker_id: int) -> None:
    """Workers leave SIGINT/SIGTERM to the main process, which finishes the step and exits cleanly
    (a batch scheduler's cancel signals the whole process group). They start with both blocked
    (see :func:`batches_of`), and ignore them before letting them through."""
    for stop in _STOPS:
        signal.signal(stop, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)


def batches_of(loader: Any):
    """An iterator over ``loader`` whose DataLoader workers, if it starts any, begin with SIGINT and
    SIGTERM blocked: a signal sent to the process group in the first moments of a worker would
    otherwise reach it with the main process's handlers and leave the run hanging. The main
    process receives a signal held meanwhile as soon as the workers exist."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return iter(loader)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def shutdown_workers(loader: Any) -> None:
    """Stop a DataLoader's persistent worker processes now, not whenever the loader is collected."""
    iterator = getattr(loader, "_iterator", None)  # where torch keeps the iterator of persistent workers
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
        loader._iterator = None


def data_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, workers: int, pin_memory: bool,
                seed: int, generator: torch.Generator) -> DataLoader:
    """A DataLoader for one split. Training shards with DistributedSampler (padded by wrapping, so
    every process runs as many steps); validation counts each image once (:class:`ShardSampler`)."""
    many = distributed.world_size() > 1
    if shuffle:
        sampler = DistributedSampler(dataset, shuffle=True, seed=seed) if many else RandomSampler(dataset, generator=generator)
    else:
        sampler = distributed.ShardSampler(dataset) if many else None
    if shuffle and workers > 0:
        dataset, sampler = SeededItems(dataset), EpochSeeds(sampler, generator)
    # The loader draws its workers' base seed from a generator of its own: persistent workers draw it
    # in the first epoch of a process, which is another epoch in a resumed run.
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=workers > 0, worker_init_fn=_init_worker if workers else None,
                      generator=torch.Generator().manual_seed(seed))


def set_epoch(loader: Any, epoch: int) -> None:
    """Tell the loader's sampler the epoch (DistributedSampler draws its permutation from seed + epoch)."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def num_batches(loader: Any, limit: int | None) -> int:
    return len(loader) if limit is None else min(len(loader), limit)


