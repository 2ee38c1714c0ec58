"""Patch-raster reads and resume bookkeeping for the labels and change stages.

Writing goes through :func:`pipeline.io.raster.write_patch_tif` (one writer for every patch
GeoTIFF); this module reads the HR patch grid + validity mask (labels) and label / change
rasters (change, QA, dataset code), and keeps the input fingerprints that let a rerun reuse
patch rasters of an interrupted run and discard stale ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from pipeline.errors import InputError
from pipeline.io import write_json
from pipeline.io.raster import read_window


@dataclass(frozen=True)
class PatchGrid:
    """Pixel grid of one HR patch and where it has imagery.

    Attributes:
        transform: pixel -> CRS affine of the patch's upper-left corner.
        crs: CRS string (e.g. ``"EPSG:32649"``).
        valid: ``(h, w)`` bool, True where the HR patch has data in every band.
    """

    transform: Affine
    crs: str
    valid: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.valid.shape[0]), int(self.valid.shape[1]))


def _open_error(p: Path, what: str, exc: Exception | None) -> InputError:
    if not p.is_file():
        return InputError(
            f"{what} {p} does not exist: rerun the stage that writes it (delete its index "
            "parquet to force that)"
        )
    return InputError(f"{what} {p} cannot be read ({exc}): delete it and rerun its stage")


def read_patch_grid(path: str | Path, what: str = "HR patch") -> PatchGrid:
    """Read an HR patch GeoTIFF's grid and validity mask (nodata / alpha / mask aware).

    Raises:
        InputError: missing or unreadable file, or no CRS.
    """
    p = Path(path)
    try:
        with rasterio.open(p) as ds:
            _, valid = read_window(ds, Window(0, 0, ds.width, ds.height))
            transform, crs = ds.transform, ds.crs
    except RasterioIOError as exc:
        raise _open_error(p, what, exc) from None
    if crs is None:
        raise InputError(f"{what} {p} has no CRS: delete it and rerun the tile stage")
    return PatchGrid(transform=transform, crs=crs.to_string(), valid=valid)


def read_patch_band(path: str | Path, what: str = "label raster") -> tuple[np.ndarray, Affine, str]:
    """Read band 1 of a single-band patch raster (labels, change masks).

    Returns:
        ``(array (h, w) in the file's dtype, transform, crs string)``.

    Raises:
        InputError: missing or unreadable file.
    """
    p = Path(path)
    try:
        with rasterio.open(p) as ds:
            arr = ds.read(1)
            return arr, ds.transform, ds.crs.to_string() if ds.crs else ""
    except RasterioIOError as exc:
        raise _open_error(p, what, exc) from None


def input_fingerprint(paths: Sequence[str | Path | None], extra: Any = None) -> str:
    """Hash of ``extra`` (JSON-able settings) and each path's name, size and mtime.

    Used to tell whether patch rasters left on disk by an earlier (possibly interrupted) run
    were made from the same inputs and settings, so a rerun can reuse them.
    """
    items: list[Any] = [extra]
    for p in paths:
        if p is None:
            items.append(None)
            continue
        q = Path(p)
        try:
            st = q.stat()
            items.append([str(q.resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            items.append([str(q), None, None])
    blob = json.dumps(items, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def read_fingerprint(path: str | Path) -> str | None:
    """The fingerprint stored by :func:`write_fingerprint`, or None (missing / corrupt)."""
    try:
        return str(json.loads(Path(path).read_text())["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_fingerprint(path: str | Path, fingerprint: str) -> None:
    """Store a fingerprint atomically."""
    write_json(path, {"fingerprint": fingerprint})


def clear_patch_tifs(folders: Sequence[str | Path]) -> int:
    """Delete ``*.tif`` files directly inside ``folders`` (stale outputs); returns the count."""
    n = 0
    for d in folders:
        folder = Path(d)
        if folder.is_dir():
            for f in folder.glob("*.tif"):
                f.unlink(missing_ok=True)
                n += 1
    return n
