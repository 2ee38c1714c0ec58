"""Writers for the synthetic demo inputs (RGB GeoTIFF in windows, annotation GeoPackage)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from affine import Affine

from pipeline.io import atomic_path


def write_rgb_windows(
    path: str | Path,
    *,
    width: int,
    height: int,
    transform: Affine,
    crs: str,
    windows: Iterable[tuple[tuple[int, int, int, int], np.ndarray]],
    block_px: int = 512,
) -> None:
    """Write a 3-band uint8 RGB GeoTIFF window by window, atomically.

    Tiled (``block_px``), deflate + horizontal predictor, nodata 0, BIGTIFF if needed. Only one
    window is in memory at a time, so memory does not grow with the image size.

    Args:
        windows: ((col0, row0, w, h), (3, h, w) uint8) pairs covering the image.
    """
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.windows import Window

    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 3,
        "dtype": "uint8",
        "crs": crs,
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": block_px,
        "blockysize": block_px,
        "compress": "deflate",
        "predictor": 2,
        "zlevel": 4,
        "interleave": "pixel",
        "photometric": "RGB",
        "bigtiff": "IF_SAFER",
        "num_threads": "ALL_CPUS",
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.colorinterp = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        for (c, r, w, h), arr in windows:
            dst.write(arr, window=Window(c, r, w, h))


def write_polygons_gpkg(gdf, path: str | Path, layer: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Write a GeoDataFrame to a GeoPackage atomically (layer name = file stem by default).

    The temporary keeps the ``.gpkg`` extension (GDAL's GPKG driver wants it), then is renamed.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.stem}.tmp-{os.getpid()}.gpkg"
    tmp.unlink(missing_ok=True)
    try:
        gdf.to_file(tmp, driver="GPKG", layer=layer or final.stem, engine="pyogrio")
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
