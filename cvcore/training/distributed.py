"""Multi-process training as launched by torchrun: process group, ranks, shards, reductions."""

from __future__ import annotations

import math
import os
import secrets
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Only the main process writes files and prints."""
    return rank() == 0


def setup(device: torch.device) -> None:
    """Join the process group torchrun set up (nccl on CUDA, gloo otherwise); idempotent."""
    if world_size() > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def side_group():
    """A gloo group of every process, for small host-side collectives that must not queue behind
    (or sync with) the device's work; None without a process group."""
    return dist.new_group(backend="gloo") if dist.is_initialized() else None


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(tensors: list[torch.Tensor]) -> None:
    if dist.is_initialized():
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def all_gather_rows(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor in place by the concatenation of every process's rows, in rank order.
    Processes may hold different numbers of rows (validation shares differ by one)."""
    if not dist.is_initialized():
        return
    for tensor in tensors:
        count = torch.tensor([len(tensor)], device=tensor.device)
        counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
        dist.all_gather(counts, count)
        sizes = [int(c) for c in counts]  # at the epoch's end, once per tensor
        padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
        padded[:len(tensor)] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        tensor.set_(torch.cat([part[:size] for part, size in zip(parts, sizes)]))


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm statistics): each process's last training
    forward updated its own, and validation must measure the model that rank 0 saves."""
    if dist.is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


def gather(value: Any) -> list[Any]:
    """Every process's ``value``, in rank order (a list of one without a process group)."""
    if not dist.is_initialized():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def shared_seed(seed: int | None) -> int:
    """``seed``, or for ``None`` a fresh random seed: rank 0's, so that every process shares it."""
    if seed is not None:
        return seed
    return gather(secrets.randbits(62))[0]


@contextmanager
def main_first():
    """Run the block on the main process first, then on the others: a download happens once."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def shard(order: torch.Tensor, rank: int, world_size: int, *, pad: bool) -> torch.Tensor:
    """One process's share of ``order``: every ``world_size``-th element, from ``rank``.

    With ``pad`` the order is first wrapped around to a multiple of ``world_size``, so every process
    gets as many elements (training: equal batch counts, or the collectives would hang); without it
    every element is taken exactly once and shares may differ by one (validation).
    """
    if pad and len(order) % world_size:
        total = math.ceil(len(order) / world_size) * world_size
        order = order.repeat(math.ceil(total / len(order)))[:total]
    return order[rank::world_size]


class ShardSampler(torch.utils.data.Sampler):
    """This process's share of a data set's indices in order, each index once across processes."""

    def __init__(self, dataset) -> None:
        self.indices = shard(torch.arange(len(dataset)), rank(), world_size(), pad=False).tolist()

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
