"""Tiny generated AOIs for the labels / change tests (seeded, a few 16x16 px patches)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine

from pipeline.aoi import AoiSpec
from pipeline.io.geotiff import write_patch_tif
from pipeline.io.parquet import write_geoparquet
from pipeline.layout import Layout

EPSG = "EPSG:32649"
X0, Y0 = 650000.0, 3795000.0  # upper-left of patch r000_c000
GSD = 1.0
SIZE = 16


def patch_transform(row: int, col: int, size: int = SIZE, gsd: float = GSD) -> Affine:
    return Affine(gsd, 0.0, X0 + col * size * gsd, 0.0, -gsd, Y0 - row * size * gsd)


def make_tiny_aoi(
    tmp_path: Path,
    t1_features: list[tuple[Any, Any]],
    t2_features: list[tuple[Any, Any]],
    *,
    name: str = "tiny",
    patches: tuple[tuple[int, int], ...] = ((0, 0), (0, 1)),
    t2_nodata_cols: int = 0,
    ann_crs: str = EPSG,
    class_attribute: str = "class",
    class_mapping: str | None = None,
    seed: int = 0,
) -> tuple[AoiSpec, Layout]:
    """Write a tile index + HR patch tifs + T1/T2 annotation GeoPackages; return (AoiSpec, Layout).

    Args:
        t1_features, t2_features: ``[(shapely geometry in EPSG:32649, class value), ...]``;
            geometries are reprojected to ``ann_crs`` before writing.
        patches: ``(row, col)`` of the lattice patches to create (16x16 px at 1 m).
        t2_nodata_cols: the first N pixel columns of every T2 HR patch are no data.
    """
    rng = np.random.default_rng(seed)
    layout = Layout(tmp_path / "results" / "ds")
    rows = []
    for r, c in patches:
        pid = f"{name}_r{r:03d}_c{c:03d}"
        tr = patch_transform(r, c)
        rel = {}
        for date in ("t1", "t2"):
            img = rng.integers(1, 256, size=(3, SIZE, SIZE), dtype=np.uint8)
            if date == "t2" and t2_nodata_cols:
                img[:, :, :t2_nodata_cols] = 0
            path = layout.hr_dir(name, date) / f"{pid}.tif"
            write_patch_tif(path, img, tr, EPSG, 0)
            rel[date] = path.relative_to(layout.root).as_posix()
        minx, maxy = tr.c, tr.f
        rows.append(
            {
                "patch_id": pid,
                "aoi": name,
                "city": "testcity",
                "t1": "2019-08-14",
                "t2": "2020-08-18",
                "hr_crs": EPSG,
                "gsd_m": GSD,
                "px_col0": c * SIZE,
                "px_row0": r * SIZE,
                "size_px": SIZE,
                "hr_transform": json.dumps(list(tr)[:6]),  # as the tile stage records it
                "hr_t1": rel["t1"],
                "hr_t2": rel["t2"],
                "nodata_frac_t1": 0.0,
                "nodata_frac_t2": t2_nodata_cols / SIZE,
                "geometry": shapely.box(minx, maxy - SIZE * GSD, minx + SIZE * GSD, maxy),
            }
        )
    write_geoparquet(gpd.GeoDataFrame(rows, geometry="geometry", crs=EPSG), layout.patches(name))
    ann = {}
    for date, feats in (("t1", t1_features), ("t2", t2_features)):
        gdf = gpd.GeoDataFrame(
            {class_attribute: [v for _, v in feats]},
            geometry=[g for g, _ in feats],
            crs=EPSG,
        ).to_crs(ann_crs)
        path = tmp_path / "inputs" / f"labels_{date}.gpkg"
        path.parent.mkdir(parents=True, exist_ok=True)
        gdf.to_file(path, driver="GPKG", engine="pyogrio")
        ann[date] = str(path)
    aoi = AoiSpec(
        name=name,
        city="testcity",
        t1=dt.date(2019, 8, 14),
        t2=dt.date(2020, 8, 18),
        images={"t1": "unused_t1.tif", "t2": "unused_t2.tif"},
        annotations=ann,
        class_attribute=class_attribute,
        class_mapping=class_mapping,
    )
    return aoi, layout


def px_box(row: int, col: int, c0: float, r0: float, c1: float, r1: float) -> Any:
    """Polygon covering pixel columns c0..c1 and rows r0..r1 (edges) of patch (row, col)."""
    tr = patch_transform(row, col)
    x0, y0 = tr @ (c0, r0)
    x1, y1 = tr @ (c1, r1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
