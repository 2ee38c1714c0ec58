"""File I/O of the dataset-level stages: HR/label reads, FUSU-layout PNG / GeoTIFF writes, STAC.

* :func:`read_rgb` -> ``(3, h, w)`` uint8 + ``(h, w)`` bool valid mask (GDAL dataset mask:
  the file's nodata / alpha / mask band).
* :func:`read_band` -> ``(h, w)`` first band in its stored dtype.
* :func:`write_png` -> 8-bit PNG (RGB, or single band with an optional palette), via Pillow,
  atomically; no georeferencing side files.
* :func:`write_times_tif` -> the per-month Sentinel GeoTIFF of the FUSU layout: 14 float32
  bands (S2 reflectance, S1 dB), NaN nodata, band descriptions, CRS + transform of the
  footprint window of the AOI grid.
* :func:`save_stac` -> write a pystac catalog self-contained under a folder (atomic swap).
"""

from __future__ import annotations

import io as _io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.io import atomic_path, write_bytes_atomic


def read_rgb(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an HR patch: ``(3, h, w)`` uint8 and its ``(h, w)`` valid mask.

    Raises:
        InputError: the file is missing or unreadable.
    """
    import rasterio

    p = Path(path)
    if not p.is_file():
        raise InputError(f"HR patch {p} does not exist: rerun the tile stage of its AOI")
    try:
        with rasterio.open(p) as ds:
            arr = ds.read(indexes=[1, 2, 3] if ds.count >= 3 else [1, 1, 1])
            valid = ds.dataset_mask() > 0
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"HR patch {p} cannot be read ({exc}): rerun the tile stage") from None
    return arr.astype(np.uint8, copy=False), valid


def read_band(path: str | Path, what: str = "raster") -> np.ndarray:
    """First band of a small GeoTIFF as ``(h, w)`` in its stored dtype.

    Raises:
        InputError: missing or unreadable (names the file and the stage to rerun).
    """
    import rasterio

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {p} does not exist: rerun the stage that writes it")
    try:
        with rasterio.open(p) as ds:
            return ds.read(1)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"{what} {p} cannot be read ({exc})") from None


def write_png(
    path: str | Path,
    array: np.ndarray,
    palette: Mapping[int, Sequence[int]] | None = None,
) -> None:
    """Write an 8-bit PNG atomically.

    Args:
        array: ``(3, h, w)`` / ``(h, w, 3)`` uint8 RGB, or ``(h, w)`` uint8 single band.
        palette: for single-band images, ``{value: (r, g, b[, a])}`` written as the PNG palette
            (mode ``P``); pixel values are kept as they are (class ids).
    """
    from PIL import Image

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4):
        a = np.moveaxis(a, 0, -1)
    a = np.ascontiguousarray(a.astype(np.uint8, copy=False))
    if a.ndim == 3:
        img = Image.fromarray(a[..., :3], mode="RGB")
    elif palette is not None:
        img = Image.fromarray(a, mode="L").convert("P")
        img.putdata(a.ravel().tolist())  # keep the raw values as palette indices
        pal = np.zeros((256, 3), np.uint8)
        for v, rgb in palette.items():
            pal[int(v)] = [int(c) for c in list(rgb)[:3]]
        img.putpalette(pal.ravel().tolist())
    else:
        img = Image.fromarray(a, mode="L")
    buf = _io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    write_bytes_atomic(path, buf.getvalue())


def write_times_tif(
    path: str | Path,
    array: np.ndarray,
    transform: Any,
    crs: str,
    band_names: Sequence[str],
    tags: Mapping[str, str] | None = None,
) -> None:
    """One month of a footprint cube as a ``(14, H, W)`` float32 GeoTIFF, NaN = no data.

    Args:
        array: (bands, H, W) float32 (S2 reflectance 0..1, S1 dB).
        transform: affine of the window's upper-left corner in ``crs``.
        band_names: band descriptions (``B1`` .. ``B12``, ``VV``, ``VH``).
        tags: dataset-level metadata tags (month, wavelengths, units).
    """
    import rasterio

    a = np.asarray(array, np.float32)
    with atomic_path(path) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", width=a.shape[2], height=a.shape[1], count=a.shape[0],
        dtype="float32", crs=crs, transform=transform, nodata=float("nan"),
        compress="deflate", predictor=3, tiled=False,
    ) as ds:
        ds.write(a)
        for i, name in enumerate(band_names, start=1):
            ds.set_band_description(i, name)
        if tags:
            ds.update_tags(**{k: str(v) for k, v in tags.items()})


def dir_is_nonempty(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and any(p.iterdir())


def save_stac(catalog: Any, dest: str | Path) -> Path:
    """Save a pystac Catalog/Collection self-contained (relative links) under ``dest``.

    Written into a temporary folder and swapped into place, so a crash leaves the previous
    catalogue intact. Returns the path of the root ``collection.json`` / ``catalog.json``.
    """
    import pystac

    final = Path(dest)
    with atomic_path(final) as tmp:
        catalog.normalize_hrefs(str(tmp))
        catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED, dest_href=str(tmp))
    name = "collection.json" if isinstance(catalog, pystac.Collection) else "catalog.json"
    return final / name
