"""Data order, RNG and batches of the training loop: seeding, resumable RNG snapshots, the
epoch sampler (the order is a pure function of seed and epoch, sharded per DDP rank), the
device and the flip augmentation."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from pipeline.config import TrainConfig
from pipeline.errors import TrainingError
from pipeline.train.distributed import Dist, shard


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Snapshot of the python, numpy, torch and CUDA RNG states."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot made by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class EpochSampler(Sampler[int]):
    """Shuffled indices; the order is a pure function of (seed, epoch), starting at ``start``.

    Makes data order resumable: a resumed run builds the sampler of the interrupted epoch with
    ``start = batches_done * batch_size``.
    """

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0,
                 dist: Dist | None = None) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start
        self.dist = dist or Dist()

    def order(self) -> list[int]:
        """This rank's samples of the epoch in order (all of them without DDP)."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return shard(torch.randperm(self.n, generator=g).tolist(), self.dist)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return max(0, len(self.order()) - self.start)


def resolve_device(cfg: TrainConfig) -> torch.device:
    """'auto' -> CUDA if available else CPU; 'cuda' without a GPU is a TrainingError."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainingError(
            "train.device is 'cuda' but no CUDA GPU is visible: set train.device to 'auto' or "
            "'cpu', or run on a GPU node (snakemake --resources gpu=1)"
        )
    if cfg.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v)
            for k, v in batch.items()}


def flip_batch(batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
    """Random per-sample horizontal / vertical flips of HR images, labels, the Sentinel cube
    and the patch box (consistent geometry). Uses the global torch RNG unless ``generator``."""
    out = dict(batch)
    B = batch["t1"].shape[0]
    hr_keys = [k for k in ("t1", "t2", "label1", "label2", "change") if k in batch]
    ts_keys = [k for k in ("sentinel", "sentinel_valid", "counts") if k in batch]
    flips = torch.rand(B, 2, generator=generator) < 0.5
    for k in hr_keys + ts_keys:
        out[k] = batch[k].clone()
    if "patch_box" in batch:
        out["patch_box"] = batch["patch_box"].clone()
    for i in range(B):
        for axis, (flip, dim) in enumerate(((flips[i, 0], -1), (flips[i, 1], -2))):
            if not flip:
                continue
            for k in hr_keys + ts_keys:
                out[k][i] = torch.flip(out[k][i], dims=(dim,))
            if "patch_box" in out and ts_keys:
                size = out[ts_keys[0]].shape[dim]
                off, ext = out["patch_box"][i, axis], out["patch_box"][i, axis + 2]
                out["patch_box"][i, axis] = size - off - ext
    return out
