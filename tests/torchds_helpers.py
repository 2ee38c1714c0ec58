"""Tiny, seeded native-layout datasets for the dataset and report tests.

``make_dataset(root)`` writes everything the PyTorch dataset and the QA report read:
``patches.parquet`` (merged index with split + footprint columns), HR/label/change GeoTIFFs,
``stats.json``, ``sentinel/<aoi>.zarr`` (documented mosaic layout), month summaries,
``splits/leakage.json`` and ``aois/<aoi>/grid.json``.

Sentinel values are known: S2 DN = 1000 + 100*band + 10*t + (x % 7) (65535 where t == 0 and
x == y == 0, i.e. no data at the mosaic's first pixel in month 0); S1 = -10 - band - 0.5*t dB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine

from pipeline.bands import ALL_BANDS, S1_BANDS, S2_BANDS
from pipeline.grid import AoiGrid
from pipeline.io.geotiff import write_patch_tif
from pipeline.io.jsonfile import write_json
from pipeline.io.mosaic import init_mosaic, write_block
from pipeline.io.parquet import write_geoparquet
from pipeline.layout import Layout
from pipeline.sentinel.sources.base import Block, BlockResult

EPSG = 32649
GSD_M = 2.5  # HR pixel size of the tiny fixture
RES_M = 10.0


@dataclass(frozen=True)
class AoiFixture:
    name: str
    city: str
    months: tuple[str, ...]
    rows: int = 2
    cols: int = 2


DEFAULT_AOIS = (
    AoiFixture("alpha", "xian", ("2019-01", "2019-02", "2019-03")),
    AoiFixture("beta", "wuhan", ("2019-05", "2019-06"), rows=1, cols=2),
)


def s2_dn(t: int, band: int, x: np.ndarray) -> np.ndarray:
    """Known S2 DN of the fixture mosaic at month index t, band index, grid column(s) x."""
    return 1000 + 100 * band + 10 * t + (x % 7)


def make_dataset(
    root: Path,
    aois: tuple[AoiFixture, ...] = DEFAULT_AOIS,
    patch_px: int = 32,
    fp_px: int = 40,
    seed: int = 0,
) -> Layout:
    """Write a tiny native-layout dataset under ``root``; return its :class:`Layout`."""
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    lay = Layout(Path(root))
    patch_grid_px = patch_px * GSD_M / RES_M  # patch side in 10 m px (8)
    margin = (fp_px - patch_grid_px) / 2  # 16
    rows_all = []
    splits = ["train", "val", "test", "train", "train", "test"]
    k = 0
    for a in aois:
        x0, y0 = 600000.0, 3800000.0
        width = int(np.ceil(a.cols * patch_grid_px + 2 * margin)) + 2
        height = int(np.ceil(a.rows * patch_grid_px + 2 * margin)) + 2
        write_json(
            lay.grid(a.name),
            {
                "epsg": EPSG,
                "res_m": RES_M,
                "x0": x0,
                "y0": y0,
                "width": width,
                "height": height,
                "rule": "scale",
                "size_px": fp_px,
                "scale": 5.0,
            },
        )
        for r in range(a.rows):
            for c in range(a.cols):
                pid = f"{a.name}_r{r:03d}_c{c:03d}"
                # HR patch upper-left in metres (patch inside the grid with margin)
                px_x = x0 + (margin + c * patch_grid_px) * RES_M
                px_y = y0 - (margin + r * patch_grid_px) * RES_M
                tr = Affine(GSD_M, 0, px_x, 0, -GSD_M, px_y)
                img1 = rng.integers(0, 256, (3, patch_px, patch_px), dtype=np.uint8)
                img2 = rng.integers(0, 256, (3, patch_px, patch_px), dtype=np.uint8)
                l1 = np.repeat(
                    np.repeat(rng.integers(0, 18, (4, 4)), patch_px // 4, 0), patch_px // 4, 1
                ).astype(np.uint8)
                l2 = l1.copy()
                l2[: patch_px // 2, : patch_px // 2] = (
                    l2[: patch_px // 2, : patch_px // 2] + 1
                ) % 18
                l1[0, :] = 255
                change = (l1 != l2).astype(np.uint8)
                change[(l1 == 0) | (l2 == 0) | (l1 == 255) | (l2 == 255)] = 255
                hr1 = lay.hr_dir(a.name, "t1") / f"{pid}.tif"
                hr2 = lay.hr_dir(a.name, "t2") / f"{pid}.tif"
                write_patch_tif(hr1, img1, tr, f"EPSG:{EPSG}", 0)
                write_patch_tif(hr2, img2, tr, f"EPSG:{EPSG}", 0)
                write_patch_tif(
                    lay.labels_dir(a.name, "t1") / f"{pid}.tif", l1, tr, f"EPSG:{EPSG}", 255
                )
                write_patch_tif(
                    lay.labels_dir(a.name, "t2") / f"{pid}.tif", l2, tr, f"EPSG:{EPSG}", 255
                )
                write_patch_tif(
                    lay.change_dir(a.name, "bin") / f"{pid}.tif", change, tr, f"EPSG:{EPSG}", 255
                )
                valid = change != 255
                row = {
                    "patch_id": pid,
                    "aoi": a.name,
                    "city": a.city,
                    "split": splits[k % len(splits)],
                    "t1": f"{a.months[0]}-15",
                    "t2": f"{a.months[-1]}-15",
                    "hr_crs": f"EPSG:{EPSG}",
                    "gsd_m": GSD_M,
                    "px_col0": c * patch_px,
                    "px_row0": r * patch_px,
                    "size_px": patch_px,
                    "hr_t1": str(hr1.relative_to(lay.root)),
                    "hr_t2": str(hr2.relative_to(lay.root)),
                    "fp_col0": int(c * patch_grid_px),
                    "fp_row0": int(r * patch_grid_px),
                    "fp_size_px": fp_px,
                    "patch_off_x_px": float(margin),
                    "patch_off_y_px": float(margin),
                    "patch_w_px": float(patch_grid_px),
                    "patch_h_px": float(patch_grid_px),
                    "change_fraction": float(change[valid].mean()) if valid.any() else 0.0,
                    "geometry": box(px_x, px_y - patch_px * GSD_M, px_x + patch_px * GSD_M, px_y),
                }
                if a.name == "alpha":  # beta exercises the layout's default paths
                    row["label_t1"] = f"aois/{a.name}/labels/t1/{pid}.tif"
                    row["label_t2"] = f"aois/{a.name}/labels/t2/{pid}.tif"
                    row["change_bin"] = f"aois/{a.name}/change/bin/{pid}.tif"
                for v in range(18):
                    row[f"hist_t1_{v}"] = int((l1 == v).sum())
                    row[f"hist_t2_{v}"] = int((l2 == v).sum())
                rows_all.append(row)
                k += 1
        # ---- mosaic (documented layout)
        T = len(a.months)
        xs = np.arange(width)
        s2 = np.empty((T, len(S2_BANDS), height, width), np.uint16)
        for t in range(T):
            for b in range(len(S2_BANDS)):
                s2[t, b] = s2_dn(t, b, xs)[None, :]
        s2[0, :, 0, 0] = 65535
        s1 = np.empty((T, len(S1_BANDS), height, width), np.float32)
        for t in range(T):
            for b in range(len(S1_BANDS)):
                s1[t, b] = -10.0 - b - 0.5 * t
        s1[0, :, 0, 0] = np.nan
        s2c = rng.integers(1, 6, (T, height, width)).astype(np.uint8)
        s2c[0, 0, 0] = 0
        s1c = rng.integers(1, 4, (T, height, width)).astype(np.uint8)
        s1c[0, 0, 0] = 0
        grid = AoiGrid(EPSG, RES_M, x0, y0, width, height)
        init_mosaic(lay.mosaic(a.name), grid, list(a.months), chunk_px=16, aoi=a.name)
        s2f = np.where(s2 == 65535, np.nan, s2.astype(np.float32) / 10000.0).astype(np.float32)
        for t in range(T):
            write_block(
                lay.mosaic(a.name),
                t,
                Block(0, 0, width, height),
                BlockResult(
                    s2=s2f[t],
                    s2_count=s2c[t],
                    s1=s1[t],
                    s1_count=s1c[t],
                    meta={"s2_product": "L2A"},
                ),
            )
        for i, m in enumerate(a.months):
            write_json(
                lay.month_summary(a.name, m),
                {
                    "aoi": a.name,
                    "month": m,
                    "requests": 2 + i,
                    "pixels": width * height * 2,
                    "bytes": 1000 * (i + 1),
                    "retries": i % 2,
                    "seconds": 1.5,
                    "s2_product": "L2A",
                    "n_scenes": 3,
                    "blocks_done": 1,
                    "blocks_skipped": 0,
                },
            )
    gdf = gpd.GeoDataFrame(pd.DataFrame(rows_all), geometry="geometry", crs=f"EPSG:{EPSG}")
    gdf = gdf.to_crs("EPSG:4326")  # the merged index is in lon/lat (pipeline.dataset.assemble)
    write_geoparquet(gdf, lay.index())
    write_json(
        lay.stats(),
        {
            "sentinel": {
                "bands": list(ALL_BANDS),
                "mean": [0.1 + 0.01 * b for b in range(12)] + [-10.0, -11.0],
                "std": [0.05] * 12 + [2.0, 2.0],
            },
            "hr": {
                "bands": ["R", "G", "B"],
                "mean": [127.5, 127.5, 127.5],
                "std": [51.0, 51.0, 51.0],
            },
            "class_frequencies": {"train": {str(v): 1.0 / 18 for v in range(18)}},
        },
    )
    pair = {"fp_overlap_frac": 0.0, "patch_in_fp_frac": 0.0, "n_leaking": 0}
    write_json(
        lay.splits_dir() / "leakage.json",
        {
            "definition": "fp_overlap_frac: share of the second split's footprint area ...",
            "info": {"mode": "block", "guard": True},
            "overall": {
                "guard_patches": 1,
                "train-val": pair,
                "train-test": pair,
                "val-test": pair,
            },
            "per_city": {
                "xian": {"guard_patches": 1, "train-val": {**pair, "n_patches": 1}},
                "wuhan": {"guard_patches": 0, "train-test": {**pair, "n_patches": 1}},
            },
        },
    )
    return lay
