"""A seeded synthetic dataset in the native layout: the one factory the tests and the benchmarks
build their datasets with (``python -m benchmarks.dataloader`` at FUSU patch size, the dataset,
report and training tests at 32 px).

:func:`make_dataset` writes everything the PyTorch dataset, the QA report and the training
stage read: ``patches.parquet`` (merged index, EPSG:4326, with split, footprint and histogram
columns), HR / label / change GeoTIFFs, ``stats.json``, ``sentinel/<aoi>.zarr`` (the documented
cube layout), month summaries, ``splits/leakage.json`` and ``aois/<aoi>/grid.json``.

Known values (asserted by the tests):

* S2 DN = :func:`s2_dn` = 1000 + 100*band + 10*t + (x % 7), 65535 (no data) at the first grid
  pixel in month 0; S1 = -10 - band - 0.5*t dB (NaN at that pixel in month 0); counts 0 there.
* Labels: 4x4 class blocks (0..17), T2 = T1 with the top-left quadrant's classes + 1 (mod 18),
  T1's first row no data (255). Change: 1 where they differ, 255 where either date is
  background or no data.
* HR: class-coloured blocks + noise (plausible compression), uint8, nodata 0.
* Splits cycle train, val, test, train, train, test over the patches in order (or all
  ``train`` with ``split="train"``). AOIs with ``explicit_paths`` write their label / change
  paths into the index; the others leave them to the layout's defaults (``beta`` by default).
* ``sentinel="natural"`` replaces the known cube values with smooth fields + noise and cloud
  gaps (64 px cells, 25 %), so that compressed sizes are plausible (benchmarks).

Everything is deterministic for a given ``seed``; with ``workers`` > 1 the GeoTIFFs are written
by a process pool (same bytes).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from pipeline.bands import ALL_BANDS, S1_BANDS, S2_BANDS
from pipeline.grid import AoiGrid
from pipeline.io.geotiff import write_patch_tif
from pipeline.io.jsonfile import write_json
from pipeline.io.mosaic import consolidate_mosaic, init_mosaic, write_block
from pipeline.io.parquet import write_geoparquet
from pipeline.layout import Layout
from pipeline.sentinel.model import Block, BlockResult

EPSG = 32649
RES_M = 10.0
X0, Y0 = 600000.0, 3800000.0
SPLIT_CYCLE = ("train", "val", "test", "train", "train", "test")
#: Colour of each class in the synthetic HR images (seeded, int16 for the noise arithmetic).
PALETTE = np.random.default_rng(7).integers(40, 220, (18, 3)).astype(np.int16)


@dataclass(frozen=True)
class SyntheticAoi:
    """One AOI of the synthetic dataset: ``rows`` x ``cols`` patches over ``months``."""

    name: str
    city: str
    months: tuple[str, ...]
    rows: int = 2
    cols: int = 2
    #: write label / change paths into the index (False: readers use the layout's defaults)
    explicit_paths: bool = True


DEFAULT_AOIS = (
    SyntheticAoi("alpha", "xian", ("2019-01", "2019-02", "2019-03")),
    SyntheticAoi("beta", "wuhan", ("2019-05", "2019-06"), rows=1, cols=2, explicit_paths=False),
)


def s2_dn(t: int, band: int, x: np.ndarray) -> np.ndarray:
    """Known S2 DN of the synthetic cube at month index ``t``, band index, grid column(s) x."""
    return 1000 + 100 * band + 10 * t + (x % 7)


def patch_arrays(seed: int, k: int, patch_px: int) -> tuple[np.ndarray, ...]:
    """Patch ``k``'s (T1 RGB, T2 RGB, T1 label, T2 label, binary change), all uint8.

    RGB (3, n, n), labels and change (n, n); see the module docstring for the values.
    """
    rng = np.random.default_rng([seed, k])
    cell = max(1, patch_px // 4)
    l1 = np.kron(rng.integers(0, 18, (4, 4)), np.ones((cell, cell), np.int64))
    l1 = np.pad(l1, ((0, patch_px - l1.shape[0]), (0, patch_px - l1.shape[1])), mode="edge")
    l1 = l1.astype(np.uint8)
    l2 = l1.copy()
    h = patch_px // 2
    l2[:h, :h] = (l2[:h, :h] + 1) % 18
    l1[0, :] = 255

    def rgb(lab: np.ndarray) -> np.ndarray:
        base = PALETTE[np.where(lab == 255, 0, lab)].transpose(2, 0, 1)
        noise = rng.integers(-10, 11, base.shape, dtype=np.int16)
        return np.clip(base + noise, 1, 255).astype(np.uint8)

    change = (l1 != l2).astype(np.uint8)
    change[(l1 == 0) | (l2 == 0) | (l1 == 255) | (l2 == 255)] = 255
    return rgb(l1), rgb(l2), l1, l2, change


@dataclass(frozen=True)
class _Geometry:
    patch_grid_px: float  # patch side in grid px
    margin: float  # footprint margin around a patch, grid px
    width: int
    height: int


def _geometry(a: SyntheticAoi, patch_px: int, fp_px: int, gsd_m: float,
              chunk_px: int) -> _Geometry:
    pg = patch_px * gsd_m / RES_M
    margin = (fp_px - pg) / 2
    w = int(np.ceil(a.cols * pg + 2 * margin)) + 2
    h = int(np.ceil(a.rows * pg + 2 * margin)) + 2
    w, h = -(-w // chunk_px) * chunk_px, -(-h // chunk_px) * chunk_px
    return _Geometry(pg, margin, w, h)


def _write_patches(job: tuple[str, int, int, float, list[tuple[int, dict[str, Any]]]]) -> None:
    root, seed, patch_px, gsd_m, items = job
    lay = Layout(Path(root))
    crs = f"EPSG:{EPSG}"
    for k, row in items:
        t1, t2, l1, l2, ch = patch_arrays(seed, k, patch_px)
        tr = Affine(gsd_m, 0, row["_x"], 0, -gsd_m, row["_y"])
        a, pid = row["aoi"], row["patch_id"]
        for path, arr, nd in (
            (lay.hr_dir(a, "t1") / f"{pid}.tif", t1, 0),
            (lay.hr_dir(a, "t2") / f"{pid}.tif", t2, 0),
            (lay.labels_dir(a, "t1") / f"{pid}.tif", l1, 255),
            (lay.labels_dir(a, "t2") / f"{pid}.tif", l2, 255),
            (lay.change_dir(a, "bin") / f"{pid}.tif", ch, 255),
        ):
            if not path.exists():
                write_patch_tif(path, arr, tr, crs, nd)


def _index_rows(a: SyntheticAoi, g: _Geometry, patch_px: int, fp_px: int, gsd_m: float,
                seed: int, k0: int) -> list[dict[str, Any]]:
    from shapely.geometry import box

    rows: list[dict[str, Any]] = []
    for r in range(a.rows):
        for c in range(a.cols):
            k = k0 + len(rows)
            pid = f"{a.name}_r{r:03d}_c{c:03d}"
            px_x = X0 + (g.margin + c * g.patch_grid_px) * RES_M
            px_y = Y0 - (g.margin + r * g.patch_grid_px) * RES_M
            _, _, l1, l2, change = patch_arrays(seed, k, patch_px)
            valid = change != 255
            row: dict[str, Any] = {
                "patch_id": pid, "aoi": a.name, "city": a.city,
                "split": SPLIT_CYCLE[k % len(SPLIT_CYCLE)],
                "t1": f"{a.months[0]}-15", "t2": f"{a.months[-1]}-15",
                "hr_crs": f"EPSG:{EPSG}", "gsd_m": gsd_m,
                "px_col0": c * patch_px, "px_row0": r * patch_px, "size_px": patch_px,
                "hr_t1": f"aois/{a.name}/hr/t1/{pid}.tif",
                "hr_t2": f"aois/{a.name}/hr/t2/{pid}.tif",
                "fp_col0": int(c * g.patch_grid_px), "fp_row0": int(r * g.patch_grid_px),
                "fp_size_px": fp_px,
                "patch_off_x_px": float(g.margin), "patch_off_y_px": float(g.margin),
                "patch_w_px": float(g.patch_grid_px), "patch_h_px": float(g.patch_grid_px),
                "change_fraction": float(change[valid].mean()) if valid.any() else 0.0,
                "geometry": box(px_x, px_y - patch_px * gsd_m, px_x + patch_px * gsd_m, px_y),
                "_x": px_x, "_y": px_y,
            }
            if a.explicit_paths:
                row["label_t1"] = f"aois/{a.name}/labels/t1/{pid}.tif"
                row["label_t2"] = f"aois/{a.name}/labels/t2/{pid}.tif"
                row["change_bin"] = f"aois/{a.name}/change/bin/{pid}.tif"
            for v in range(18):
                row[f"hist_t1_{v}"] = int((l1 == v).sum())
                row[f"hist_t2_{v}"] = int((l2 == v).sum())
            rows.append(row)
    return rows


def _natural_month(t: int, h: int, w: int) -> tuple[np.ndarray, ...]:
    """Month t: S2 reflectance (12, h, w) float32 with NaN cloud gaps, S1 dB (2, h, w), counts."""
    rng = np.random.default_rng(50 + t)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field = 0.5 + 0.25 * np.sin(xx / 37.0 + t) * np.cos(yy / 53.0 - t / 3)
    s2 = np.empty((12, h, w), np.float32)
    for b in range(12):
        s2[b] = (0.05 + 0.02 * b) * field + rng.normal(0, 0.004, (h, w)).astype(np.float32)
    cloud = np.kron(rng.random((h // 64 + 1, w // 64 + 1)) < 0.25, np.ones((64, 64), bool))
    cloud = cloud[:h, :w]
    s2[:, cloud] = np.nan
    s1 = np.stack([-12 + 3 * field, -18 + 3 * field]) + rng.normal(0, 0.3, (2, h, w))
    c2 = rng.integers(1, 7, (h, w)).astype(np.uint8)
    c2[cloud] = 0
    c1 = rng.integers(2, 6, (h, w)).astype(np.uint8)
    return s2, s1.astype(np.float32), c2, c1


def _write_cube(lay: Layout, a: SyntheticAoi, g: _Geometry, seed: int, chunk_px: int,
                natural: bool) -> None:
    """The AOI's cube (see the module docstring), one month at a time."""
    rng = np.random.default_rng([seed, 99, len(a.name)])
    grid = AoiGrid(EPSG, RES_M, X0, Y0, g.width, g.height)
    staging = lay.mosaic_staging(a.name)
    init_mosaic(staging, grid, list(a.months), chunk_px=chunk_px, aoi=a.name, overwrite=True)
    xs = np.arange(g.width)
    for t in range(len(a.months)):
        if natural:
            n2, n1, nc2, nc1 = _natural_month(t, g.height, g.width)
            write_block(staging, t, Block(0, 0, g.width, g.height),
                        BlockResult(s2=n2, s2_count=nc2, s1=n1, s1_count=nc1,
                                    meta={"s2_product": "L2A"}))
            continue
        s2 = np.empty((len(S2_BANDS), g.height, g.width), np.float32)
        for b in range(len(S2_BANDS)):
            s2[b] = (s2_dn(t, b, xs).astype(np.float32) / np.float32(10000.0))[None, :]
        s1 = np.empty((len(S1_BANDS), g.height, g.width), np.float32)
        for b in range(len(S1_BANDS)):
            s1[b] = -10.0 - b - 0.5 * t
        s2c = rng.integers(1, 6, (g.height, g.width)).astype(np.uint8)
        s1c = rng.integers(1, 4, (g.height, g.width)).astype(np.uint8)
        if t == 0:
            s2[:, 0, 0] = np.nan
            s1[:, 0, 0] = np.nan
            s2c[0, 0] = s1c[0, 0] = 0
        write_block(staging, t, Block(0, 0, g.width, g.height),
                    BlockResult(s2=s2, s2_count=s2c, s1=s1, s1_count=s1c,
                                meta={"s2_product": "L2A"}))
    consolidate_mosaic(staging, lay.mosaic(a.name), dict.fromkeys(a.months, "L2A"))


def _write_month_summaries(lay: Layout, a: SyntheticAoi, g: _Geometry) -> None:
    for i, m in enumerate(a.months):
        write_json(lay.month_summary(a.name, m), {
            "aoi": a.name, "month": m, "requests": 2 + i, "pixels": g.width * g.height * 2,
            "bytes": 1000 * (i + 1), "retries": i % 2, "seconds": 1.5,
            # the second month is an L1C-fallback month (as the demo's 2019-08)
            "s2_product": "L1C" if i == 1 else "L2A",
            "n_scenes": {"s2": 3, "s1": 2}, "blocks_done": 1, "blocks_skipped": 0,
        })


def _write_dataset_docs(lay: Layout) -> None:
    write_json(lay.stats(), {
        "sentinel": {
            "bands": list(ALL_BANDS),
            "mean": [0.1 + 0.01 * b for b in range(12)] + [-10.0, -11.0],
            "std": [0.05] * 12 + [2.0, 2.0],
        },
        "hr": {"bands": ["R", "G", "B"], "mean": [127.5] * 3, "std": [51.0] * 3},
        "class_frequencies": {"train": {str(v): 1.0 / 18 for v in range(18)}},
    })
    pair = {"fp_overlap_frac": 0.0, "patch_in_fp_frac": 0.0, "n_leaking": 0}
    write_json(lay.leakage_report(), {
        "definition": "fp_overlap_frac: share of the second split's footprint area ...",
        "info": {"mode": "block", "guard": True},
        "overall": {"guard_patches": 1, "train-val": pair, "train-test": pair, "val-test": pair},
        "per_city": {
            "xian": {"guard_patches": 1, "train-val": {**pair, "n_patches": 1}},
            "wuhan": {"guard_patches": 0, "train-test": {**pair, "n_patches": 1}},
        },
    })


def make_dataset(
    root: str | Path,
    aois: Sequence[SyntheticAoi] = DEFAULT_AOIS,
    patch_px: int = 32,
    fp_px: int = 40,
    gsd_m: float = 2.5,
    seed: int = 0,
    chunk_px: int = 16,
    workers: int = 1,
    sentinel: str = "known",
    split: str | None = None,
) -> Layout:
    """Write a synthetic native-layout dataset under ``root``; return its :class:`Layout`.

    Args:
        aois: the AOIs (names, cities, months, patch lattice).
        patch_px: HR patch side (px) at ``gsd_m`` metres.
        fp_px: footprint side (10 m grid px).
        chunk_px: spatial chunk of the cubes; grids are padded to a multiple of it.
        workers: processes writing the patch GeoTIFFs (existing files are kept, so an
            interrupted benchmark setup resumes).
        sentinel: ``"known"`` (test values) or ``"natural"`` (benchmark content).
        split: put every patch in this split (default: the cycle of the module docstring).
    """
    import geopandas as gpd
    import pandas as pd

    lay = Layout(Path(root))
    rows: list[dict[str, Any]] = []
    for a in aois:
        g = _geometry(a, patch_px, fp_px, gsd_m, chunk_px)
        write_json(lay.grid(a.name), {"epsg": EPSG, "res_m": RES_M, "x0": X0, "y0": Y0,
                                      "width": g.width, "height": g.height, "rule": "scale",
                                      "size_px": fp_px, "scale": 5.0})
        rows += _index_rows(a, g, patch_px, fp_px, gsd_m, seed, len(rows))
        _write_cube(lay, a, g, seed, chunk_px, natural=sentinel == "natural")
        _write_month_summaries(lay, a, g)
    items = list(enumerate(rows))
    n_jobs = max(1, workers) * 8 if workers > 1 else 1
    jobs = [(str(lay.root), seed, patch_px, gsd_m, items[i::n_jobs]) for i in range(n_jobs)]
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            pool.map(_write_patches, jobs)
    else:
        for job in jobs:
            _write_patches(job)
    df = pd.DataFrame(rows).drop(columns=["_x", "_y"])
    if split is not None:
        df["split"] = split
    gdf = gpd.GeoDataFrame(df, geometry="geometry", crs=f"EPSG:{EPSG}").to_crs("EPSG:4326")
    write_geoparquet(gdf, lay.index())  # the merged index is in lon/lat (like assemble's)
    _write_dataset_docs(lay)
    return lay
