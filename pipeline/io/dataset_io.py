"""Readers used by the PyTorch dataset (:mod:`pipeline.dataset`) and the QA report.

Nothing here keeps a file handle open between calls (mosaic arrays are cached per process by
:mod:`pipeline.io.mosaic`, keyed by path).

Conventions: arrays are ``(band, y, x)``; HR patches uint8 RGB, labels uint8 (0..17, 255 = no
data), binary change uint8 (0/1, 255 = ignored). Sentinel windows come from the AOI mosaic
``sentinel/<aoi>.zarr`` through :func:`pipeline.io.mosaic.read_footprint_cube`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DatasetError


def read_index_table(path: str | Path) -> Any:
    """Read the merged dataset index (``patches.parquet``) as a plain pandas DataFrame.

    The geometry column (if any) is dropped: the dataset only needs the scalar columns, and a
    plain frame pickles cheaply into DataLoader workers.

    Raises:
        DatasetError: the index is missing (run the ``dataset`` rule first).
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DatasetError(
            f"dataset index {p} does not exist: build the dataset first "
            "(snakemake --cores N, rule 'dataset') or pass the right dataset root"
        )
    import pyarrow.parquet as pq

    schema = pq.read_schema(p)
    drop = {"geometry", "fp_geometry_wkb", "hr_geometry_wkb"}
    cols = [c for c in schema.names if c not in drop]
    return pd.read_parquet(p, columns=cols)


def read_index_geo(path: str | Path) -> Any:
    """Read the merged dataset index with its geometry (GeoDataFrame if it has one)."""
    from pipeline.io import read_geoparquet

    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"dataset index {p} does not exist: build the dataset first")
    return read_geoparquet(p)


def read_tif(path: str | Path, what: str = "raster") -> np.ndarray:
    """Read a whole (small) GeoTIFF as ``(bands, h, w)`` in its stored dtype; file closed after.

    Raises:
        DatasetError: the file is missing or unreadable (message names it and the fix).
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    p = Path(path)
    try:
        # many small files: skip GDAL's sibling-file directory listing (patch GeoTIFFs carry
        # no sidecars) and the process-wide dataset sharing cache (~20 % of the open cost)
        with (
            rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
            rasterio.open(p, sharing=False) as src,
        ):
            return src.read()
    except RasterioIOError as exc:
        if not p.exists():
            raise DatasetError(
                f"{what} {p} is missing: rerun the rule that writes it (snakemake --cores N)"
            ) from None
        raise DatasetError(
            f"{what} {p} is unreadable ({exc}); delete it and rerun its rule"
        ) from None


def read_json_if_exists(path: str | Path) -> Any | None:
    """JSON content of ``path`` or None if it does not exist."""
    from pipeline.io import read_json

    p = Path(path)
    return read_json(p) if p.is_file() else None


def read_cube(
    path: str | Path, col0: int, row0: int, size: int, raw: bool = False
) -> dict[str, Any]:
    """Footprint window of the AOI mosaic ``path`` for every month (see
    :func:`pipeline.io.mosaic.read_footprint_cube`: ``x`` (T, 14, H, W) float32 NaN = no data,
    ``counts`` (T, 2, H, W) uint8, ``months``, ``bands``; with ``raw`` the stored ``s2``
    (T, 12, H, W) uint16 DN, 65535 = no data, and ``s1`` (T, 2, H, W) float32 dB instead of ``x``).

    The store is opened once per process (``read_footprint_cube`` caches opened arrays by path),
    so a dataset holding only the path pickles into DataLoader workers without open stores.

    Raises:
        DatasetError: the mosaic is missing (run the sentinel rules or use with_sentinel=False).
    """
    from pipeline.io.mosaic import read_footprint_cube

    p = Path(path)
    if not p.exists():
        raise DatasetError(
            f"Sentinel mosaic {p} is missing: run the sentinel rules for this AOI "
            "(snakemake --cores N) or use with_sentinel=False"
        )
    return read_footprint_cube(p, col0, row0, size, raw=raw)


def read_mosaic_counts(path: str | Path) -> dict[str, Any] | None:
    """Whole-mosaic clear-observation counts for the QA report.

    Returns:
        ``dict(months=[YYYY-MM], s2_count=(T,H,W) uint8, s1_count=(T,H,W) uint8)`` or None if
        the mosaic does not exist.
    """
    p = Path(path)
    if not p.exists():
        return None
    from pipeline.io.mosaic import open_mosaic

    with open_mosaic(p) as ds:
        return {
            "months": [str(m) for m in ds["time"].values],
            "s2_count": np.asarray(ds["s2_count"].values, dtype=np.uint8),
            "s1_count": np.asarray(ds["s1_count"].values, dtype=np.uint8),
        }
