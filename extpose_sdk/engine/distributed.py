"""Process groups as ``torchrun`` describes them: one process per device, NCCL on GPUs, gloo on CPU.

    with distributed_context("auto") as dist:
        dist.rank, dist.world_size, dist.device, dist.first

Under ``torchrun --nproc_per_node=N`` (or ``--nnodes=M --rdzv-backend c10d``) the environment
holds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous; this module only joins the group
torch describes and leaves it at the end. Without torchrun the context is one process.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from typing import Any

import attrs
import torch


@attrs.frozen
class Distributed:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``, and whether it is
    the ``first`` (the one that prints and writes)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def first(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; anything else as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def is_initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


@contextlib.contextmanager
def distributed_context(device: str = "auto") -> Iterator[Distributed]:
    """Join torchrun's process group when ``WORLD_SIZE > 1`` (and leave it at the end)."""
    device = resolve_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda")
    if cuda and world_size > 1:
        device = f"cuda:{local_rank}"
    if cuda:
        torch.cuda.set_device(torch.device(device))
    joined = False
    if world_size > 1 and not is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
        joined = True
    rank = torch.distributed.get_rank() if is_initialized() else 0
    world_size = torch.distributed.get_world_size() if is_initialized() else 1
    try:
        yield Distributed(rank, world_size, local_rank, torch.device(device))
    except BaseException:
        if joined:  # no barrier: the other processes may never reach one
            torch.distributed.destroy_process_group()
        raise
    if joined:
        leave_together()


def leave_together() -> None:
    """End the process group once every process is done with it: wait for the others (a
    process that tore its group down while another still worked on its last steps aborted,
    rarely, inside gloo: "terminate called without an active exception"), free what still holds
    the group (a finished run's DistributedDataParallel, kept by reference cycles), then end it."""
    torch.distributed.barrier()
    gc.collect()
    torch.distributed.destroy_process_group()


def gather_objects(value: Any) -> list[Any]:
    """Every process's ``value``, in rank order (a one-item list without a group)."""
    if not is_initialized():
        return [value]
    everything: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(everything, value)
    return everything


def barrier() -> None:
    if is_initialized():
        torch.distributed.barrier()


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    if is_initialized():
        torch.distributed.all_reduce(x)
    return x
