"""Data-loading benchmark: native layout vs FUSU release layout vs the raw page-cache limit.

One command::

    python -m benchmarks.dataloader            # 5,000 patches (a few minutes on 2 cores)
    python -m benchmarks.dataloader --n 500    # quicker

It generates a synthetic dataset at the real sizes (512 x 512 px HR patches at 0.5 m, T1/T2 RGB,
two label rasters and a change mask as deflate GeoTIFFs, footprints of 128 x 128 px at 10 m on
one AOI grid, a 25-month Sentinel mosaic written month by month into the staging store with
:mod:`pipeline.io.mosaic` and consolidated into the read-optimised cube ``sentinel/<aoi>.zarr``
exactly as rule ``sentinel`` does), exports a subset of ``--measure`` patches to the FUSU
release layout (PNGs + one 14-band float32 GeoTIFF per month and patch, via
:mod:`pipeline.io.export`) and dumps the same subset as raw uncompressed arrays in their
stored dtypes. After reading every file once (page cache warm), it measures ``DataLoader``
samples/s over the subset in a fixed shuffled order with 1 and 2 workers for

* ``native``: :class:`pipeline.dataset.torchds.FusuDataset` (GeoTIFFs + footprint windows of
  the mosaic),
* ``native-c``: the same with ``compact=True`` (stored dtypes through the workers; the batch is
  normalised on the device by :func:`pipeline.dataset.torchds.prepare_batch`, timed separately here
  on
  the CPU as an upper bound of that device work),
* ``fusu``: a minimal FUSU-layout reader (PIL PNGs + rasterio per-month GeoTIFFs) producing the
  same tensors,
* ``raw``: ``np.fromfile`` of the pre-dumped arrays (no decoding, no conversion: the limit),

and prints native/raw (goal >= 0.5), native-c/raw (goal >= 0.8) and native/fusu, plus the
bytes on disk per patch of the Sentinel part: native (mosaic size / all patches) vs FUSU (month
GeoTIFFs per patch) (goal <= 1/10); then the goals, met or not (exit 1 when one is missed).
Synthetic content is textured (class-coloured blocks + noise, smooth S2 fields with noise and
cloud gaps) so compression ratios are plausible, not those of real scenes.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.goals import Goal, report

PATCH_PX = 512
GSD_M = 0.5
RES_M = 10.0
FP_PX = 128
MONTHS = [f"{2018 + (7 + k) // 12}-{(7 + k) % 12 + 1:02d}" for k in range(25)]  # 2018-08..2020-08


# --------------------------------------------------------------------------- generation


def _lattice(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def generate_native(root: Path, n: int, workers: int) -> list[dict[str, Any]]:
    """The native layout of about ``n`` patches (one AOI, a rows x cols lattice) under ``root``
    from the shared seeded factory (:func:`tests.synthetic_dataset.make_dataset`; existing
    GeoTIFFs are kept). Returns the index rows."""
    import pandas as pd

    from tests.synthetic_dataset import SyntheticAoi, make_dataset

    rows_, cols = _lattice(n)
    t0 = time.perf_counter()
    lay = make_dataset(
        root, (SyntheticAoi("bench", "bench", tuple(MONTHS), rows_, cols),), patch_px=PATCH_PX,
        fp_px=FP_PX, gsd_m=GSD_M, chunk_px=64, workers=workers, sentinel="natural",
        split="train",
    )
    print(f"  native dataset: {rows_ * cols} patches x {len(MONTHS)} months in "
          f"{time.perf_counter() - t0:.0f} s")
    return pd.read_parquet(lay.index(), columns=[
        "patch_id", "hr_t1", "hr_t2", "label_t1", "label_t2", "change_bin", "fp_col0",
        "fp_row0", "fp_size_px"]).to_dict("records")


def _fusu_export(job: tuple[str, str, list[dict[str, Any]]]) -> None:
    from pipeline.bands import ALL_BANDS
    from pipeline.grid import AoiGrid
    from pipeline.io.geotiff import read_patch, write_times_tif
    from pipeline.io.mosaic_read import read_footprint_cube
    from pipeline.io.png import write_png

    native, fusu, rows = job
    nr, fr = Path(native), Path(fusu)
    grid = AoiGrid.from_dict(json.loads((nr / "aois" / "bench" / "grid.json").read_text()))
    for row in rows:
        pid = row["patch_id"]
        for d, key in (
            ("im1", "hr_t1"),
            ("im2", "hr_t2"),
            ("label1", "label_t1"),
            ("label2", "label_t2"),
            ("label_bin", "change_bin"),
        ):
            p = fr / "train" / d / f"{pid}.png"
            if not p.exists():
                a = read_patch(nr / row[key]).data
                write_png(p, a if a.shape[0] == 3 else a[0])
        cube = read_footprint_cube(
            nr / "sentinel" / "bench.zarr", row["fp_col0"], row["fp_row0"], FP_PX
        )
        tr = grid.window_transform(row["fp_col0"], row["fp_row0"])
        for k in range(cube["x"].shape[0]):
            p = fr / "train" / "Times" / f"{pid}_{k + 1}.tif"
            if not p.exists():
                write_times_tif(p, cube["x"][k], tr, grid.crs, ALL_BANDS)


def _raw_dump(job: tuple[str, str, list[dict[str, Any]]]) -> None:
    from pipeline.io.geotiff import read_patch
    from pipeline.io.mosaic import _open_arrays

    native, raw, rows = job
    nr, rr = Path(native), Path(raw)
    arrays, _ = _open_arrays(str(nr / "sentinel" / "bench.zarr"), "r")
    for row in rows:
        p = rr / f"{row['patch_id']}.raw"
        if p.exists():
            continue
        ys = slice(row["fp_row0"], row["fp_row0"] + FP_PX)
        xs = slice(row["fp_col0"], row["fp_col0"] + FP_PX)
        parts = [
            read_patch(nr / row[k]).data
            for k in ("hr_t1", "hr_t2", "label_t1", "label_t2", "change_bin")
        ]
        parts += [
            np.asarray(arrays["s2"][:, :, ys, xs]),
            np.asarray(arrays["s1"][:, :, ys, xs]),
            np.stack([arrays["s2_count"][:, ys, xs], arrays["s1_count"][:, ys, xs]], 1),
        ]
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as fh:
            for a in parts:
                fh.write(np.ascontiguousarray(a).tobytes())


# --------------------------------------------------------------------------- readers


class FusuLayoutDataset:
    """Minimal FUSU-release-layout reader producing the native dataset's main tensors."""

    def __init__(self, root: Path, ids: list[str], months: int, stats: dict[str, Any]) -> None:
        from pipeline.dataset.normalize import parse_stats

        self.root, self.ids, self.months = root, ids, months
        self.st = parse_stats(stats)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import rasterio
        import torch
        from PIL import Image

        from pipeline.dataset.normalize import sentinel_arrays

        pid, d = self.ids[i], self.root / "train"

        def png(sub: str) -> np.ndarray:
            with Image.open(d / sub / f"{pid}.png") as im:
                return np.asarray(im)

        m, s = self.st["hr_mean"][:, None, None], self.st["hr_std"][:, None, None]
        t1 = (torch.from_numpy(png("im1")).permute(2, 0, 1).float() / 255 - m) / s
        t2 = (torch.from_numpy(png("im2")).permute(2, 0, 1).float() / 255 - m) / s
        x = np.empty((self.months, 14, FP_PX, FP_PX), np.float32)
        for k in range(self.months):
            with rasterio.open(d / "Times" / f"{pid}_{k + 1}.tif") as src:
                x[k] = src.read()
        vals, valid = sentinel_arrays(x, None, self.st["s_mean"], self.st["s_std"], inplace=True)
        return {
            "t1": t1,
            "t2": t2,
            "label1": torch.from_numpy(png("label1").astype(np.int64)),
            "label2": torch.from_numpy(png("label2").astype(np.int64)),
            "change": torch.from_numpy(png("label_bin").astype(np.int64)),
            "sentinel": torch.from_numpy(vals),
            "sentinel_valid": torch.from_numpy(valid),
            "month_mask": torch.ones(self.months, dtype=torch.bool),
        }


class RawDataset:
    """The limit: ``np.fromfile`` of one pre-dumped sample (stored dtypes, no decoding)."""

    def __init__(self, root: Path, ids: list[str], months: int) -> None:
        self.root, self.ids, T = root, ids, months
        P, F = PATCH_PX, FP_PX
        self.layout = [
            ("t1", np.uint8, (3, P, P)),
            ("t2", np.uint8, (3, P, P)),
            ("label1", np.uint8, (P, P)),
            ("label2", np.uint8, (P, P)),
            ("change", np.uint8, (P, P)),
            ("s2", np.uint16, (T, 12, F, F)),
            ("s1", np.float32, (T, 2, F, F)),
            ("counts", np.uint8, (T, 2, F, F)),
        ]
        # label rasters are stored as (1, P, P)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        buf = np.fromfile(self.root / f"{self.ids[i]}.raw", dtype=np.uint8)
        out, off = {}, 0
        for name, dt, shape in self.layout:
            nbytes = int(np.prod(shape)) * np.dtype(dt).itemsize
            out[name] = torch.from_numpy(buf[off : off + nbytes].view(dt).reshape(shape))
            off += nbytes
        return out


# --------------------------------------------------------------------------- measuring


def _du(path: Path) -> int:
    """Bytes on disk (allocated blocks) under ``path``."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(dirpath, f))
            total += st.st_blocks * 512
    return total


def _warm(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir():
            for dirpath, _, files in os.walk(p):
                for f in files:
                    with open(os.path.join(dirpath, f), "rb") as fh:
                        while fh.read(1 << 22):
                            pass
        elif p.exists():
            with open(p, "rb") as fh:
                while fh.read(1 << 22):
                    pass


def measure(ds: Any, order: list[int], workers: int, batch: int, collate: Any) -> float:
    """Samples/s of a DataLoader over ``order`` (first batch excluded: worker start-up)."""
    from torch.utils.data import DataLoader

    sampler = order  # a fixed shuffled order (list of indices) is a valid sampler
    dl = DataLoader(
        ds,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )
    it = iter(dl)
    first = next(it)
    n = 0
    t0 = time.perf_counter()
    for b in it:
        n += int(b["t1"].shape[0])
        del b
    dt = time.perf_counter() - t0
    del first
    return n / dt if dt > 0 else float("nan")


def count_only(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A collate that ships nothing but the batch size: measuring a loader with it leaves out
    the worker -> main transfer (stacking into fresh shared memory), so read and transfer
    costs can be told apart."""
    import torch

    return {"t1": torch.zeros(len(samples), 1)}


def cpu_ms_per_sample(ds: Any, order: list[int]) -> float:
    """CPU time (ms, this process and its threads) per sample read in-process: less sensitive
    than wall time to other jobs sharing the machine."""
    ds[order[0]]
    t0 = time.process_time()
    for i in order[1:]:
        ds[i]
    return 1000.0 * (time.process_time() - t0) / max(1, len(order) - 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="patches in the synthetic dataset")
    ap.add_argument(
        "--measure",
        type=int,
        default=96,
        help="patches read per measurement (also exported to the FUSU layout and dumped raw)",
    )
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--gen-workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="work folder (kept and reused if given; default: a temp folder)",
    )
    args = ap.parse_args(argv)

    import torch

    from pipeline.dataset.collate import fusu_collate, prepare_batch
    from pipeline.dataset.torchds import FusuDataset
    from pipeline.io.mosaic import _open_arrays

    torch.set_num_threads(1)
    work = args.dir or Path(tempfile.mkdtemp(prefix="fusu-bench-"))
    native, fusu, raw = work / "native", work / "fusu", work / "raw"
    native.mkdir(parents=True, exist_ok=True)
    print(
        f"benchmark folder {work}: {args.n} patches, {len(MONTHS)} months, "
        f"{PATCH_PX} px HR, {FP_PX} px footprints"
    )
    t_all = time.perf_counter()
    try:
        rows = generate_native(native, args.n, args.gen_workers)
        rng = np.random.default_rng(0)
        sub_idx = sorted(rng.choice(len(rows), size=min(args.measure, len(rows)), replace=False))
        sub = [rows[i] for i in sub_idx]
        t0 = time.perf_counter()
        jobs = [
            (str(native), str(fusu), sub[i :: args.gen_workers]) for i in range(args.gen_workers)
        ]
        _open_arrays.cache_clear()
        with mp.get_context("fork").Pool(args.gen_workers) as pool:
            pool.map(_fusu_export, jobs)
            pool.map(_raw_dump, [(str(native), str(raw), j[2]) for j in jobs])
        print(
            f"  FUSU layout + raw dumps of {len(sub)} patches in {time.perf_counter() - t0:.0f} s"
        )

        # ---- bytes on disk
        fusu_times = _du(fusu / "train" / "Times") / len(sub)
        native_s = _du(native / "sentinel" / "bench.zarr") / len(rows)  # the cube users read
        staging_s = _du(native / "sentinel" / "bench" / "staging.zarr") / len(rows)
        hr_native = _du(native / "aois") / len(rows)
        hr_fusu = sum(
            _du(fusu / "train" / d) for d in ("im1", "im2", "label1", "label2", "label_bin")
        ) / len(sub)
        raw_sample = (raw / f"{sub[0]['patch_id']}.raw").stat().st_size

        # ---- throughput
        stats = json.loads((native / "stats.json").read_text())
        nat_all = FusuDataset(native, split=None)
        pos = {pid: i for i, pid in enumerate(nat_all.patch_ids)}
        ids = [r["patch_id"] for r in sub]
        order = [int(i) for i in rng.permutation(len(sub))]
        nat = torch.utils.data.Subset(nat_all, [pos[p] for p in ids])
        nat_c_all = FusuDataset(native, split=None, compact=True)
        nat_c = torch.utils.data.Subset(nat_c_all, [pos[p] for p in ids])
        datasets = {
            "native": (nat, fusu_collate),
            "native-c": (nat_c, fusu_collate),
            "fusu": (FusuLayoutDataset(fusu, ids, len(MONTHS), stats), None),
            "raw": (RawDataset(raw, ids, len(MONTHS)), None),
        }
        _warm(
            [native / "sentinel", fusu, raw]
            + [
                native / r[k]
                for r in sub
                for k in ("hr_t1", "hr_t2", "label_t1", "label_t2", "change_bin")
            ]
        )
        res: dict[tuple[str, int], float] = {}
        cpu = {
            name: cpu_ms_per_sample(ds, order[: max(2, len(order) // 3)])
            for name, (ds, _c) in datasets.items()
        }
        print("  CPU ms/sample (in-process): " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()))
        # the device-side step of compact mode, here on the CPU (1 thread): an upper bound
        cb = fusu_collate([nat_c[i] for i in order[: args.batch]])
        prepare_batch(cb, nat_c_all.norm_stats, "cpu")
        t0 = time.process_time()
        for _ in range(3):
            prepare_batch(cb, nat_c_all.norm_stats, "cpu")
        prep_ms = 1000.0 * (time.process_time() - t0) / (3 * len(cb["meta"]))
        print(f"  prepare_batch on the CPU: {prep_ms:.1f} ms/sample")
        for w in args.workers:
            for name, (ds, coll) in datasets.items():
                res[(name, w)] = measure(ds, order, w, args.batch, coll)
                print(f"  {name:6s} workers={w}: {res[(name, w)]:7.1f} samples/s")
        # the same loaders with nothing shipped to the main process (1 worker): what reading
        # costs without the transfer every layout pays alike
        bare = {name: measure(datasets[name][0], order, 1, args.batch, count_only)
                for name in ("native", "native-c", "raw")}
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        f"RESULTS ({args.n} patches, measured on {len(sub)} patches x {len(MONTHS)} months, "
        f"batch {args.batch}, {os.cpu_count()} CPUs, total {time.perf_counter() - t_all:.0f} s)"
    )
    print(
        f"{'workers':>8} {'native/s':>9} {'native-c/s':>11} {'fusu/s':>8} {'raw/s':>8} "
        f"{'native/raw':>11} {'native-c/raw':>13} {'native/fusu':>12}"
    )
    for w in args.workers:
        nv, nc = res[("native", w)], res[("native-c", w)]
        fu, rw = res[("fusu", w)], res[("raw", w)]
        print(
            f"{w:>8} {nv:9.1f} {nc:11.1f} {fu:8.1f} {rw:8.1f} {nv / rw:11.2f} {nc / rw:13.2f} "
            f"{nv / fu:12.2f}"
        )
    goals = [g for w in args.workers for g in (
        Goal(f"native / raw, {w} worker(s)", res[("native", w)] / res[("raw", w)], ">=", 0.5),
        Goal(f"native-compact / raw, {w} worker(s)", res[("native-c", w)] / res[("raw", w)],
             ">=", 0.8))]
    print(
        f"CPU time per sample (in-process, 0 workers): native {cpu['native']:.0f} ms, fusu "
        f"{cpu['fusu']:.0f} ms, raw {cpu['raw']:.0f} ms, native-c {cpu['native-c']:.0f} ms "
        f"(+ prepare_batch {prep_ms:.1f} ms on the device): raw/native = "
        f"{cpu['raw'] / cpu['native']:.2f}, fusu/native = "
        f"{cpu['fusu'] / cpu['native']:.2f}"
    )
    if 1 in args.workers:
        print("Without the transfer to the main process (1 worker, nothing shipped): "
              + ", ".join(f"{k} {v:.1f}" for k, v in bare.items())
              + " samples/s: the transfer costs raw "
              f"{1000 / res[('raw', 1)] - 1000 / bare['raw']:.1f} ms and native-c "
              f"{1000 / res[('native-c', 1)] - 1000 / bare['native-c']:.1f} ms per sample of "
              "a worker's time")
    print(
        f"Sentinel bytes on disk per patch: native {native_s / 1e6:.2f} MB (mosaic / "
        f"{len(rows)} patches) vs FUSU {fusu_times / 1e6:.2f} MB (25 month GeoTIFFs): "
        f"native/fusu = {native_s / fusu_times:.3f}; write-optimised "
        f"staging store {staging_s / 1e6:.2f} MB/patch (build time only)"
    )
    print(
        f"HR + labels + change bytes per patch: native GeoTIFF {hr_native / 1e6:.2f} MB vs "
        f"FUSU PNG {hr_fusu / 1e6:.2f} MB; raw sample {raw_sample / 1e6:.2f} MB"
    )
    goals.append(Goal("Sentinel bytes per patch, native / FUSU", native_s / fusu_times, "<=",
                      0.1))
    return report(goals)


if __name__ == "__main__":
    raise SystemExit(main())
