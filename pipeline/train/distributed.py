"""Multi-process training with ``torchrun`` (DistributedDataParallel; torch only here and in the
rest of ``pipeline.train``).

``torchrun --nproc_per_node N -m pipeline.train <dataset root> [--config JSON]`` starts N
processes; :func:`init_from_env` reads torchrun's environment (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``) and joins the process group: NCCL on GPUs (one per process, ``cuda:LOCAL_RANK``),
gloo on CPUs. Without torchrun (``WORLD_SIZE`` unset or 1) everything is one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world`` processes (``local_rank`` on its
    node); rank 0 writes every file."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_sum(self, values: np.ndarray, device: torch.device) -> np.ndarray:
        """Element-wise sum of ``values`` (int64 or float64) over every rank (the array itself
        without DDP); ``device`` is where the collective runs (CUDA for NCCL)."""
        if not self.enabled:
            return values
        t = torch.from_numpy(np.ascontiguousarray(values)).to(device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return t.cpu().numpy()

    def shutdown(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_from_env(device: torch.device) -> tuple[Dist, torch.device]:
    """Join torchrun's process group if there is one; returns (Dist, this process's device)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Dist(), device
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Dist(rank=rank, world=world, local_rank=local), device


def eval_shard(n: int, dist: Dist) -> list[int]:
    """This rank's samples of an evaluation set of ``n``: every sample exactly once over all
    ranks (strided, nothing dropped or repeated, so summed metrics equal one process's)."""
    return list(range(dist.rank, n, dist.world))


def shard(order: list[int], dist: Dist) -> list[int]:
    """This rank's share of a sample order: every rank gets the same number of samples (the
    tail that does not divide evenly is dropped, so every rank runs the same steps)."""
    if not dist.enabled:
        return order
    n = len(order) // dist.world * dist.world
    return order[:n][dist.rank::dist.world]
