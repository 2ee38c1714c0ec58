"""Pure geometry of tiling: the window lattice (full and padded edge windows), strip reads,
patch ids, band selection and 8-bit scaling, GSD measurement. Arrays only, no files: the
driver that streams scenes through these is :func:`pipeline.hr.tiling.tile_pair`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from pipeline.errors import InputError

#: Patches per strip segment read at once (memory ~ 2 dates x 3 bands x size^2 x this bytes:
#: 24 MiB for 512 px patches, two segments held: the one written and the one read ahead). 16
#: rather than 64: a 5 km city's tile job then peaks within 1.1x of a 2.5 km city's
#: (``benchmarks.hr_stages``, 2026-12-07), at the same speed. Striped scenes are read in whole
#: rows instead (:func:`pipeline.hr.tiling.tile_pair`).
STRIP_MAX_PATCHES = 16


class TilingError(InputError):
    """The HR image pair of an AOI cannot be tiled as configured."""


def patch_id(aoi: str, row: int, col: int) -> str:
    """Deterministic patch id ``<aoi>_r<row:03d>_c<col:03d>`` of lattice cell (row, col)."""
    return f"{aoi}_r{row:03d}_c{col:03d}"


def lattice_shape(width: int, height: int, size_px: int, stride_px: int) -> tuple[int, int]:
    """(n_rows, n_cols) of full windows of ``size_px`` at ``stride_px`` inside a raster.

    Raises:
        TilingError: if the patch is larger than the raster or the stride is < 1.
    """
    if stride_px < 1:
        raise TilingError(f"tile.stride_px must be >= 1, got {stride_px}")
    if size_px > width or size_px > height:
        raise TilingError(
            f"patch size {size_px} px is larger than the image ({width} x {height} px): lower "
            "tile.patch_size_px"
        )
    return (height - size_px) // stride_px + 1, (width - size_px) // stride_px + 1


def edge_lattice_shape(
    width: int, height: int, size_px: int, stride_px: int, edge: str = "pad",
    min_edge_fraction: float = 0.25,
) -> tuple[int, int]:
    """(n_rows, n_cols) of windows: the full ones, plus (``edge="pad"``) the windows at the right
    / bottom edge whose part inside the raster is at least ``min_edge_fraction`` of the side.

    Raises:
        TilingError: the stride is < 1, or not one window fits.
    """
    if stride_px < 1:
        raise TilingError(f"tile.stride_px must be >= 1, got {stride_px}")

    def count(extent: int) -> int:
        n = (extent - size_px) // stride_px + 1 if extent >= size_px else 0
        if edge == "pad":
            while n * stride_px < extent and extent - n * stride_px >= min_edge_fraction * size_px:
                n += 1
        return n

    rows, cols = count(height), count(width)
    if rows < 1 or cols < 1:
        raise TilingError(
            f"patch size {size_px} px is larger than the image ({width} x {height} px): lower "
            "tile.patch_size_px (or tile.min_edge_fraction with tile.edge_windows: pad)"
        )
    return rows, cols


def band_selection(count: int, has_alpha: bool, bands: list[int] | None) -> list[int]:
    """The 1-based bands read as R, G, B (a single band is repeated: panchromatic).

    Raises:
        TilingError: a requested band does not exist, or the image has 2 colour bands and no
            ``tile.bands``.
    """
    n_color = count - (1 if has_alpha and count in (2, 4) else 0)
    if bands is not None:
        bad = [b for b in bands if b > count]
        if bad:
            raise TilingError(f"tile.bands {bands}: the image has only {count} band(s)")
        return list(bands) * 3 if len(bands) == 1 else list(bands)
    if n_color >= 3:
        return [1, 2, 3]
    if n_color == 1:
        return [1, 1, 1]
    raise TilingError(f"the image has {n_color} colour bands: set tile.bands (3 bands, or 1)")


def scale_to_uint8(data: np.ndarray, valid: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray) -> np.ndarray:
    """Linear map of ``data`` (bands, h, w) from per-band ``lo``..``hi`` to 1..255 (clipped);
    0 where not ``valid`` (no data)."""
    a = np.asarray(data, np.float64)
    lo_, hi_ = np.asarray(lo, np.float64)[:, None, None], np.asarray(hi, np.float64)[:, None, None]
    span = np.where(hi_ > lo_, hi_ - lo_, 1.0)
    out = np.clip(np.rint(1.0 + 254.0 * (a - lo_) / span), 1, 255).astype(np.uint8)
    out[:, ~np.asarray(valid, bool)] = 0
    return out


@dataclass(frozen=True)
class StripSegment:
    """A run of lattice cells in one lattice row, read as one window.

    Attributes:
        row: lattice row.
        col_first, col_last: first and last lattice column (inclusive).
        px_col0, px_row0: upper-left pixel of the segment window in T1.
        width, height: window size in pixels.
    """

    row: int
    col_first: int
    col_last: int
    px_col0: int
    px_row0: int
    width: int
    height: int


def strip_plan(
    n_rows: int, n_cols: int, size_px: int, stride_px: int, max_patches: int = STRIP_MAX_PATCHES
) -> Iterator[StripSegment]:
    """Yield the strip segments covering the lattice, row by row, left to right."""
    step = max(1, int(max_patches))
    for r in range(n_rows):
        for c0 in range(0, n_cols, step):
            c1 = min(n_cols, c0 + step) - 1
            x0 = c0 * stride_px
            yield StripSegment(
                row=r,
                col_first=c0,
                col_last=c1,
                px_col0=x0,
                px_row0=r * stride_px,
                width=c1 * stride_px + size_px - x0,
                height=size_px,
            )


def nodata_fraction(valid: np.ndarray) -> float:
    """Fraction of pixels that are no data in a ``(h, w)`` bool validity mask (True = valid).

    Counts instead of ``mean()``, which converts a (strided) patch slice of the strip to
    float64 first (0.014 against 0.095 ms for 512 x 512 px); the same value, as the count is
    exact.
    """
    v = np.asarray(valid, dtype=bool)
    return float(1.0 - np.count_nonzero(v) / v.size) if v.size else 1.0


def gsd_from_crs(
    res: tuple[float, float], crs: Any, center_lonlat: tuple[float, float], span_px: int = 100
) -> float:
    """Pixel size (m) as measured on the AOI's Sentinel grid: WGS84 / UTM of the scene centre.

    This is the GSD the footprint rule needs (patch side in grid metres). An image already in
    that UTM zone gives its pixel size exactly; any other CRS (another UTM zone, Web Mercator,
    US feet, geographic degrees) is measured by projecting a ``span_px`` pixel cross at the
    scene centre into that zone (Web Mercator 0.5 m at 34 deg N -> 0.41 m; 1e-5 deg at the
    equator -> 1.11 m). Non-square pixels give the geometric mean of the two sides.

    Args:
        res: (x, y) pixel size in CRS units (positive).
        crs: a rasterio / pyproj CRS.
        center_lonlat: scene centre (lon, lat) in degrees.
        span_px: length of the measured cross (pixels), to average out rounding.
    """
    from pyproj import CRS as PCRS
    from pyproj import Transformer

    from pipeline.errors import GridError
    from pipeline.grid import utm_epsg

    pcrs = PCRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    rx, ry = float(res[0]), float(res[1])
    lon, lat = center_lonlat
    try:
        epsg = utm_epsg(lon, lat)
    except GridError:  # polar scene: fall back to the CRS's own linear unit
        factor = 1.0 if pcrs.is_geographic else float(pcrs.axis_info[0].unit_conversion_factor)
        return float(math.sqrt(rx * ry) * factor)
    if pcrs.to_epsg() == epsg:
        return float(math.sqrt(rx * ry))
    cx, cy = Transformer.from_crs("EPSG:4326", pcrs, always_xy=True).transform(lon, lat)
    h = span_px / 2.0
    xs = [cx - h * rx, cx + h * rx, cx, cx]
    ys = [cy, cy, cy - h * ry, cy + h * ry]
    ux, uy = Transformer.from_crs(pcrs, f"EPSG:{epsg}", always_xy=True).transform(xs, ys)
    dx = math.hypot(ux[1] - ux[0], uy[1] - uy[0]) / span_px
    dy = math.hypot(ux[3] - ux[2], uy[3] - uy[2]) / span_px
    return float(math.sqrt(dx * dy))


def window_polygon(transform: Affine, col0: int, row0: int, size_px: int) -> Any:
    """Shapely polygon of a square pixel window in the raster's CRS."""
    from shapely.geometry import box

    x0, y0 = transform @ (col0, row0)
    x1, y1 = transform @ (col0 + size_px, row0 + size_px)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def bounds_overlap_area(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> float:
    """Area of the intersection of two (minx, miny, maxx, maxy) boxes (0 when disjoint)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return float(w * h) if (w > 0 and h > 0) else 0.0


# --------------------------------------------------------------------------- driver


def dropped_edge_windows(width: int, height: int, size: int, stride: int, rows: int,
                          cols: int) -> int:
    """Windows of the image's edge strips that the lattice leaves out."""
    last_x, last_y = (cols - 1) * stride + size, (rows - 1) * stride + size
    extra_c = -(-(width - last_x) // stride) if width > last_x else 0
    extra_r = -(-(height - last_y) // stride) if height > last_y else 0
    return (rows + extra_r) * (cols + extra_c) - rows * cols
