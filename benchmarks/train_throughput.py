"""Training throughput benchmark: samples/s, step time and peak memory of FUSU-Net.

::

    python -m benchmarks.train_throughput                 # paper sizes, needs a GPU to be useful
    python -m benchmarks.train_throughput --small         # CPU smoke run (tiny, small inputs)
    python -m benchmarks.train_throughput --small --root results/demo   # + real-loading step time

Paper sizes (FUSU A.5.2 / section 4): HR 512 x 512 RGB, Sentinel 25 x 14 x 128 x 128, batch 8,
full widths (``--preset fast``: HRNet-W18-small backbone; ``--preset paper``: HRNet-W18 as in
the paper; U-TAE 64-64-64-128). For every model variant it reports
the mean training-step time over ``--steps`` steps after ``--warmup`` steps with synthetic batches
already in (device) memory, samples/s, and peak memory (CUDA: ``max_memory_allocated``; CPU:
the process's peak RSS, which includes the Python/torch baseline). With ``--root`` it also
times steps fed by :class:`pipeline.dataset.torchds.FusuDataset` through a ``DataLoader`` (real
GeoTIFF + Zarr loading, ``--workers`` processes) and prints real / synthetic step time: a ratio
near 1 means loading keeps up with the GPU.

Figures that matter (paper sizes, bf16) need a CUDA GPU; without one the script says so and the
numbers are CPU numbers at whatever sizes were asked for.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any


def synthetic_batch(batch: int, hr: int, t: int, fp: int, seed: int = 0) -> dict[str, Any]:
    """A batch in the ``fusu_collate`` form with random content (patch = central fifth)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, 18, (batch, hr, hr), generator=g)
    lab2 = torch.randint(0, 18, (batch, hr, hr), generator=g)
    return {
        "t1": torch.randn(batch, 3, hr, hr, generator=g),
        "t2": torch.randn(batch, 3, hr, hr, generator=g),
        "label1": lab,
        "label2": lab2,
        "change": (lab != lab2).long(),
        "sentinel": torch.randn(batch, t, 14, fp, fp, generator=g),
        "month_mask": torch.ones(batch, t, dtype=torch.bool),
        "patch_box": torch.tensor([[fp * 0.4, fp * 0.4, fp * 0.2, fp * 0.2]] * batch),
    }


def _peak_mb(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def time_steps(trainer: Any, batches: Any, steps: int, warmup: int) -> float:
    """Mean seconds per training step (after ``warmup`` steps), synchronising CUDA."""
    import torch

    it = iter(batches)
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        trainer.train_step(next(it))
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(it))
    sync()
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true",
                    help="CPU-sized run: tiny widths, HR 64, Sentinel 4 x 14 x 32 x 32, batch 2")
    ap.add_argument("--models", default="fusunet,hr_only,utae")
    ap.add_argument("--preset", default="fast", choices=["fast", "paper"],
                    help="model widths / backbone of train.preset (paper = HRNet-W18)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--root", default=None, help="dataset root for the real-loading timing")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op CPU threads")
    args = ap.parse_args(argv)

    import itertools
    import tempfile

    import torch

    from pipeline.config import TrainConfig
    from pipeline.train.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    has_gpu = torch.cuda.is_available()
    if args.small:
        hr, t, fp, batch, tiny = 64, 4, 32, args.batch or 2, True
        steps = args.steps or 3
    else:
        hr, t, fp, batch, tiny = 512, 25, 128, args.batch or 8, False
        steps = args.steps or (20 if has_gpu else 1)
    if not has_gpu:
        print("NOTE: no CUDA GPU visible. GPU figures (paper sizes, bf16, CUDA peak memory) "
              "need a GPU; the numbers below are CPU numbers (peak memory = process RSS).")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"sizes: HR {hr}x{hr}, Sentinel {t}x14x{fp}x{fp}, batch {batch}, "
          f"{'tiny' if tiny else 'full'} widths, preset {args.preset}, {steps} timed steps "
          f"after {args.warmup} warm-up")

    class _One(torch.utils.data.Dataset):  # only its length is used by Trainer
        def __len__(self) -> int:
            return batch

        def __getitem__(self, i: int) -> Any:
            raise IndexError(i)

    synth_times: dict[str, float] = {}
    for model in args.models.split(","):
        cfg = TrainConfig(preset=args.preset, model=model, tiny=tiny, batch_size=batch,
                          max_steps=10_000, device=args.device, augment=False, num_workers=0)
        with tempfile.TemporaryDirectory() as tmp:
            tr = Trainer(cfg, _One(), tmp, None, progress=False)
            if tr.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            b = synthetic_batch(batch, hr, t, fp)
            b = {k: v.to(tr.device) for k, v in b.items()}
            dt = time_steps(tr, itertools.repeat(b), steps, args.warmup)
            synth_times[model] = dt
            print(f"{model:8s} synthetic: {dt:8.3f} s/step  {batch / dt:8.2f} samples/s  "
                  f"peak {_peak_mb(tr.device):8.0f} MiB  ({tr.device})")

    if args.root:
        from torch.utils.data import DataLoader

        from pipeline.dataset.collate import fusu_collate
        from pipeline.dataset.torchds import FusuDataset

        model = args.models.split(",")[0]
        cfg = TrainConfig(preset=args.preset, model=model, tiny=tiny, batch_size=batch,
                          max_steps=10_000, device=args.device, augment=False,
                          num_workers=args.workers, hr_size_px=hr)
        ds = FusuDataset(args.root, split="train", hr_size=hr,
                         with_sentinel=model != "hr_only")
        with tempfile.TemporaryDirectory() as tmp:
            tr = Trainer(cfg, ds, tmp, fusu_collate, progress=False)
            loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=args.workers,
                                collate_fn=fusu_collate, drop_last=True,
                                persistent_workers=args.workers > 0)
            n = min(steps, max(1, len(loader) - args.warmup))
            real_dt = time_steps(tr, itertools.cycle(loader), n, args.warmup)
            sample = next(iter(loader))
            rt, rfp = ((sample["sentinel"].shape[1], sample["sentinel"].shape[-1])
                       if "sentinel" in sample else (t, fp))
            b = synthetic_batch(batch, hr, rt, rfp)
            b = {k: v.to(tr.device) for k, v in b.items()}
            synth_dt = time_steps(tr, itertools.repeat(b), n, 1)
            print(f"{model:8s} real loading ({args.workers} workers, {len(ds)} train patches, "
                  f"HR {hr}, Sentinel {rt}x14x{rfp}x{rfp}): {real_dt:8.3f} s/step  "
                  f"{batch / real_dt:8.2f} samples/s")
            print(f"{model:8s} synthetic at the same sizes: {synth_dt:8.3f} s/step")
            print(f"real / synthetic step time: {real_dt / synth_dt:.2f} "
                  "(1.0 = loading fully hidden behind compute)")
    if not has_gpu:
        print("GPU figures: not measured (no GPU). Run on a GPU node without --small.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
