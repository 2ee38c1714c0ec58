"""Tiny synthetic HR rasters for the tile / footprints tests (seeded, written with rasterio)."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from pipeline.aoi import AoiSpec

#: Demo-like CRS and origin (UTM 49N, Xi'an).
EPSG = 32649
X0, Y0 = 650000.0, 3795000.0


def ground_pattern(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth RGB pattern (3, ...) uint8 in 1..255 as a function of ground coordinates (m)."""
    r = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)
    g = 128 + 100 * np.cos(x / 13.0 + y / 9.0)
    b = 40 + ((x - X0) * 1.3 + (Y0 - y) * 0.7) % 200
    return np.clip(np.stack([r, g, b]), 1, 255).astype(np.uint8)


def render(transform: Affine, width: int, height: int) -> np.ndarray:
    """Pattern sampled at pixel centres of a north-up grid: (3, height, width) uint8."""
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x = transform.c + cols * transform.a
    y = transform.f + rows * transform.e
    return ground_pattern(x, y)


def write_rgb(
    path: Path,
    data: np.ndarray | None = None,
    transform: Affine | None = None,
    crs: str | None = f"EPSG:{EPSG}",
    nodata: float | None = 0,
    width: int = 64,
    height: int = 64,
    dtype: str = "uint8",
    count: int = 3,
    tiled: int | None = None,
) -> Path:
    """Write a small RGB GeoTIFF (rendered pattern unless ``data`` is given); striped (GDAL's
    default layout) unless ``tiled`` gives a tile side (a multiple of 16)."""
    if transform is None:
        transform = Affine(1.0, 0.0, X0, 0.0, -1.0, Y0)
    if data is None:
        data = render(transform, width, height)
    data = np.asarray(data)
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": count,
        "dtype": dtype,
        "nodata": nodata,
    }
    if tiled:
        profile.update(tiled=True, blockxsize=tiled, blockysize=tiled)
    if crs is not None:
        profile["crs"] = crs
    if transform is not None and transform != Affine.identity():
        profile["transform"] = transform
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the no-geotransform case
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data[:count].astype(dtype))
    return path


def aoi_spec(t1: Path, t2: Path, name: str = "tst", template: bool = False) -> AoiSpec:
    """An AoiSpec for a test pair (annotation paths are placeholders)."""
    kw: dict = {
        "name": name,
        "city": "testcity",
        "t1": dt.date(2019, 8, 14),
        "t2": dt.date(2020, 8, 18),
    }
    if template:
        kw["template"] = True
    else:
        kw["images"] = {"t1": str(t1), "t2": str(t2)}
        kw["annotations"] = {"t1": "none.gpkg", "t2": "none.gpkg"}
    return AoiSpec.model_validate(kw)


def named_aoi(name: str) -> AoiSpec:
    """A minimal AoiSpec for drivers that only need the AOI's name (footprints, change)."""
    paths = {"t1": f"{name}_t1", "t2": f"{name}_t2"}
    return AoiSpec(name=name, city=name, t1="2019-01-01", t2="2020-01-01", images=paths,
                   annotations=paths)
