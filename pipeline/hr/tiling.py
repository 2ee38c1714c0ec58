"""Tiling of a co-registered bi-temporal HR image pair into square patches.

Pure parts (lattice, ids, strip plan, GSD, overlap test) are plain functions on numbers and
arrays; :func:`tile_pair` streams the two scenes window by window through
:mod:`pipeline.io.raster` (the only place that opens rasters) and writes the patch GeoTIFFs
and the tile index.

Conventions
-----------
* The tiling lattice lives on the **T1 image's pixel grid**. Lattice cell ``(row, col)`` is
  the window ``px_col0 = col * stride_px``, ``px_row0 = row * stride_px``, side
  ``patch_size_px``; only windows entirely inside T1 are considered. Its id is
  ``<aoi>_r<row:03d>_c<col:03d>`` whether or not it is kept, so ids are stable when the
  no-data threshold changes.
* T2 is read on T1's grid: when its CRS, transform or shape differ it is warped lazily
  (``WarpedVRT``, resampling ``tile.coregister_resampling``), one window at a time.
* No data = the file's nodata value, alpha band or mask, or (for warped T2) outside T2. A
  pixel is no data when every band is; a window is skipped when its no-data fraction exceeds
  ``max_nodata_fraction`` in either date.
* Memory is bounded by one strip segment: ``patch_size_px`` rows x at most
  ``STRIP_MAX_PATCHES`` patches, whatever the scene size.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from pipeline.config import AoiSpec, TileConfig
from pipeline.errors import InputError
from pipeline.layout import Layout

log = logging.getLogger(__name__)

#: Patches per strip segment read at once (memory ~ 2 dates x 3 bands x size^2 x this bytes:
#: 96 MiB for 512 px patches).
STRIP_MAX_PATCHES = 64


#: 1-based band indexes read as R, G, B (an alpha band, if any, is band 4 or a mask).
RGB_BANDS = [1, 2, 3]


class TilingError(InputError):
    """The HR image pair of an AOI cannot be tiled as configured."""


# --------------------------------------------------------------------------- pure helpers


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
    """Fraction of pixels that are no data in a ``(h, w)`` bool validity mask (True = valid)."""
    v = np.asarray(valid, dtype=bool)
    return float(1.0 - v.mean()) if v.size else 1.0


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


@dataclass(frozen=True)
class TileResult:
    """What :func:`tile_aoi` did: the index (GeoDataFrame) plus counts and grid facts."""

    index: Any
    n_windows: int
    n_kept: int
    n_skipped: int
    coregistered: bool
    hr_crs: str
    gsd_m: float


def _output_nodata(nodata: float | None) -> int | None:
    if nodata is None:
        return None
    if float(nodata).is_integer() and 0 <= nodata <= 255:
        return int(nodata)
    return 0


def tile_pair(
    aoi: AoiSpec,
    cfg: TileConfig,
    layout: Layout,
    progress: bool = True,
    strip_max_patches: int = STRIP_MAX_PATCHES,
) -> TileResult:
    """Tile one AOI's T1/T2 pair into patch GeoTIFFs and return the tile index.

    Patches go to ``layout.hr_dir(aoi, "t1"|"t2")``, written into temporary sibling folders
    that replace the final folders only when every patch is written; on any error nothing under
    the final names changes and the temporaries are removed. The caller writes the index (last).

    Args:
        aoi: the AOI (name, city, dates, ``images.t1`` / ``images.t2``: HR GeoTIFFs in any
            CRS, >= 3 bands uint8 RGB, optional alpha/mask).
        cfg: ``tile`` settings: patch side and stride in T1 pixels, the largest no-data
            fraction a kept window may have, the warp resampling of T2 when its grid differs.
        layout: output layout; ``hr_t1`` / ``hr_t2`` index paths are relative to its root.
        progress: show a tqdm progress bar.
        strip_max_patches: patches per strip segment (memory bound).

    Returns:
        :class:`TileResult` whose ``index`` is a GeoDataFrame with the tile-index columns
        (geometry = patch polygon in the T1 CRS), ordered by lattice row then column.

    Raises:
        TilingError / InputError: missing or unreadable image, no CRS / geotransform, non-uint8
            or < 3 band images, T1 and T2 that do not overlap, patch larger than the image, or
            no window passing the no-data filter.
    """
    assert aoi.images is not None  # the driver refuses templates
    name, city = aoi.name, aoi.city
    t1_date, t2_date = aoi.t1.isoformat(), aoi.t2.isoformat()
    image_t1, image_t2 = aoi.images.t1, aoi.images.t2
    root = layout.root
    hr_dir_t1, hr_dir_t2 = layout.hr_dir(name, "t1"), layout.hr_dir(name, "t2")
    patch_size_px, stride_px = cfg.patch_size_px, cfg.stride_px
    max_nodata_fraction, resampling = cfg.max_nodata_fraction, cfg.coregister_resampling
    import geopandas as gpd
    from rasterio.warp import transform_bounds
    from tqdm import tqdm

    from pipeline.io.atomic import adopt_temporary, atomic_path, ensure_dir, remove_tree
    from pipeline.io.geotiff import write_patch_tif
    from pipeline.io.jsonfile import input_fingerprint, read_fingerprint, write_fingerprint
    from pipeline.io.raster import (
        band_percentiles,
        bounded_gdal_cache,
        inspect_raster,
        open_on_grid,
        read_window,
    )

    size = int(patch_size_px)
    stride = int(stride_px or size)
    info1 = inspect_raster(image_t1, f"AOI {name!r} T1 image")
    info2 = inspect_raster(image_t2, f"AOI {name!r} T2 image")
    sel: dict[str, list[int]] = {}
    for info, date in ((info1, "t1"), (info2, "t2")):
        try:
            sel[date] = band_selection(info.count, info.has_alpha, cfg.bands)
        except TilingError as exc:
            raise TilingError(f"AOI {name!r} {date.upper()} image {info.path}: {exc}") from None
        n_color = info.count - (1 if info.has_alpha and info.count in (2, 4) else 0)
        unused = sorted(set(range(1, n_color + 1)) - set(sel[date]))
        if unused:
            log.warning("AOI %r %s image %s: bands %s are not tiled (the patches hold bands "
                        "%s); set tile.bands to choose", name, date.upper(), info.path, unused,
                        sel[date])
    if info1.dtype != info2.dtype:
        raise TilingError(f"AOI {name!r}: T1 is {info1.dtype} but T2 is {info2.dtype}: export "
                          "both dates with the same data type")
    try:
        rows, cols = edge_lattice_shape(info1.width, info1.height, size, stride,
                                        cfg.edge_windows, cfg.min_edge_fraction)
    except TilingError as exc:
        raise TilingError(f"AOI {name!r} T1 image {info1.path}: {exc}") from None
    scale_rule: dict[str, Any] | None = None
    if info1.dtype != "uint8":
        if cfg.scale == "range":
            assert cfg.scale_range is not None
            lo = np.full(3, cfg.scale_range[0])
            hi = np.full(3, cfg.scale_range[1])
        else:
            lo, hi = band_percentiles(image_t1, sel["t1"], cfg.scale_percentiles)
        scale_rule = {"mode": cfg.scale, "dtype": info1.dtype, "low": [float(v) for v in lo],
                      "high": [float(v) for v in hi], "to": "1..255 (0 = no data)"}
        log.info("%s: %s imagery scaled to 8 bits with %s", name, info1.dtype, scale_rule)
    b2_in_1 = transform_bounds(info2.crs, info1.crs, *info2.bounds, densify_pts=21)
    if bounds_overlap_area(info1.bounds, b2_in_1) <= 0.0:
        raise TilingError(
            f"AOI {name!r}: T1 image {info1.path} and T2 image {info2.path} do not overlap "
            f"(T1 bounds {tuple(round(v, 2) for v in info1.bounds)} in {info1.crs}, T2 bounds "
            f"{tuple(round(v, 2) for v in b2_in_1)} reprojected): check the image paths and "
            "their CRS"
        )
    coregister = not info1.same_grid(info2)
    if coregister:
        log.info(
            "%s: T2 grid differs from T1 (T1 %s %dx%d res %s, T2 %s %dx%d res %s): warping T2 "
            "onto T1's grid with %s resampling, window by window",
            name, info1.crs, info1.width, info1.height, info1.res,
            info2.crs, info2.width, info2.height, info2.res, resampling,
        )
    hr_crs = info1.crs.to_string()
    cx, cy = info1.transform @ (info1.width / 2, info1.height / 2)
    from rasterio.warp import transform as warp_transform

    lon, lat = warp_transform(info1.crs, "EPSG:4326", [cx], [cy])
    gsd_m = gsd_from_crs(info1.res, info1.crs, (lon[0], lat[0]))
    if not cfg.min_gsd_m <= gsd_m <= cfg.max_gsd_m:
        raise TilingError(
            f"AOI {name!r} T1 image {info1.path} has {gsd_m:.3g} m pixels, outside "
            f"tile.min_gsd_m..tile.max_gsd_m = {cfg.min_gsd_m:g}..{cfg.max_gsd_m:g} m: the HR "
            "stages are for 0.2-5 m imagery (check the image's CRS units); add Sentinel series "
            "to coarser change datasets with the expansion path (expand.adapter), or widen the "
            "range"
        )
    if abs(info1.res[0] - info1.res[1]) > 0.01 * max(info1.res):
        warnings.warn(
            f"AOI {name!r}: T1 pixels are not square ({info1.res}); gsd_m uses their geometric "
            "mean",
            stacklevel=2,
        )
    nodata1 = _output_nodata(info1.nodata) if scale_rule is None else _scaled_nodata(info1)
    nodata2 = _output_nodata(info2.nodata) if scale_rule is None else _scaled_nodata(info2)
    root = Path(root)
    d1, d2 = Path(hr_dir_t1), Path(hr_dir_t2)
    records: list[dict[str, Any]] = []
    n_windows = rows * cols
    skipped = 0
    # a run killed mid-way left its patches in temporary folders: resume in them when they
    # were made from the same images and settings
    fp = input_fingerprint([image_t1, image_t2], extra={"cfg": cfg.model_dump(mode="json"),
                                                        "v": 1})

    def same_inputs(folder: Path) -> bool:
        return read_fingerprint(folder / RESUME_FILE) == fp

    resumed = adopt_temporary(d1, same_inputs) & adopt_temporary(d2, same_inputs)
    n_reused = n_padded = 0
    with (
        bounded_gdal_cache(),
        atomic_path(d1, keep=resumed) as tmp1,
        atomic_path(d2, keep=resumed) as tmp2,
        open_on_grid(image_t1, info1.crs, info1.transform, info1.width, info1.height,
                     reproject=False) as src1,
        open_on_grid(image_t2, info1.crs, info1.transform, info1.width, info1.height,
                     resampling=resampling, reproject=coregister) as src2,
        tqdm(total=n_windows, desc=f"tile {name}", unit="win", disable=not progress,
             mininterval=2.0) as bar,
    ):
        for tmp in (tmp1, tmp2):
            ensure_dir(tmp)
            write_fingerprint(tmp / RESUME_FILE, fp)

        W, H = info1.width, info1.height
        for seg in strip_plan(rows, cols, size, stride, strip_max_patches):
            a1, v1 = _read_padded(read_window, src1, seg, W, H, sel["t1"],
                                  f"AOI {name!r} T1 image")
            a2, v2 = _read_padded(read_window, src2, seg, W, H, sel["t2"],
                                  f"AOI {name!r} T2 image")
            for c in range(seg.col_first, seg.col_last + 1):
                x = c * stride - seg.px_col0
                px_col0, px_row0 = c * stride, seg.row * stride
                m1 = v1[:, x : x + size]
                m2 = v2[:, x : x + size]
                f1, f2 = nodata_fraction(m1), nodata_fraction(m2)
                # the no-data filter looks at the image part (edge padding is not no data)
                iw, ih = min(size, W - px_col0), min(size, H - px_row0)
                g1 = nodata_fraction(m1[:ih, :iw]) if (iw, ih) != (size, size) else f1
                g2 = nodata_fraction(m2[:ih, :iw]) if (iw, ih) != (size, size) else f2
                bar.update(1)
                if g1 > max_nodata_fraction or g2 > max_nodata_fraction:
                    skipped += 1
                    continue
                pid = patch_id(name, seg.row, c)
                tr = info1.transform @ Affine.translation(px_col0, px_row0)
                if scale_rule is None:
                    p1 = _fill(a1[:, :, x : x + size], m1, nodata1)
                    p2 = _fill(a2[:, :, x : x + size], m2, nodata2)
                else:
                    p1 = scale_to_uint8(a1[:, :, x : x + size], m1, lo, hi)
                    p2 = scale_to_uint8(a2[:, :, x : x + size], m2, lo, hi)
                n_padded += (iw, ih) != (size, size)
                # no nodata value (alpha / mask source): keep the validity as a mask band
                mk1 = m1 if nodata1 is None else None
                mk2 = m2 if nodata2 is None else None
                if resumed and _intact(tmp1 / f"{pid}.tif", p1) and _intact(tmp2 / f"{pid}.tif",
                                                                              p2):
                    n_reused += 1
                else:
                    write_patch_tif(tmp1 / f"{pid}.tif", p1, tr, info1.crs, nodata1, mask=mk1)
                    write_patch_tif(tmp2 / f"{pid}.tif", p2, tr, info1.crs, nodata2, mask=mk2)
                records.append(
                    {
                        "patch_id": pid,
                        "aoi": name,
                        "city": city,
                        "t1": str(t1_date),
                        "t2": str(t2_date),
                        "hr_crs": hr_crs,
                        "gsd_m": gsd_m,
                        "px_col0": int(px_col0),
                        "px_row0": int(px_row0),
                        "size_px": size,
                        "hr_t1": _rel(d1 / f"{pid}.tif", root),
                        "hr_t2": _rel(d2 / f"{pid}.tif", root),
                        "nodata_frac_t1": f1,
                        "nodata_frac_t2": f2,
                        "edge_pad_frac": 1.0 - (iw * ih) / (size * size),
                        "hr_bands": json.dumps(sel["t1"]),
                        "hr_scale": json.dumps(scale_rule) if scale_rule else "none",
                        "geometry": window_polygon(info1.transform, px_col0, px_row0, size),
                    }
                )
        remove_tree(tmp1 / RESUME_FILE)
        remove_tree(tmp2 / RESUME_FILE)
        if n_reused:
            log.info("%s: kept %d patch pairs of an interrupted run", name, n_reused)
        if n_padded:
            log.info("%s: %d edge windows padded with no data (tile.edge_windows: pad)", name,
                     n_padded)
        dropped = _dropped_edge_windows(W, H, size, stride, rows, cols)
        if dropped:
            log.info("%s: %d edge windows not tiled (less than %.0f%% inside the image, or "
                     "tile.edge_windows: drop)", name, dropped,
                     100 * (cfg.min_edge_fraction if cfg.edge_windows == "pad" else 1.0))
        if not records:
            raise TilingError(
                f"AOI {name!r}: none of the {n_windows} windows of {size} px has at most "
                f"{max_nodata_fraction:.0%} no data in both {info1.path} and {info2.path}: check "
                "the images' nodata value / overlap, or raise tile.max_nodata_fraction"
            )
    epsg = info1.crs.to_epsg()
    index = gpd.GeoDataFrame(
        records, geometry="geometry", crs=f"EPSG:{epsg}" if epsg else info1.crs.to_wkt()
    )
    log.info(
        "%s: %d windows of %d px (stride %d): kept %d, skipped %d (no data > %.0f%%)",
        name, n_windows, size, stride, len(records), skipped, max_nodata_fraction * 100,
    )
    return TileResult(
        index=index,
        n_windows=n_windows,
        n_kept=len(records),
        n_skipped=skipped,
        coregistered=coregister,
        hr_crs=hr_crs,
        gsd_m=gsd_m,
    )


#: Fingerprint of the inputs inside the temporary patch folders (removed before they become the
#: final folders).
RESUME_FILE = "_inputs.json"


def _intact(path: Path, expected: np.ndarray) -> bool:
    """True when an interrupted run's patch file holds exactly ``expected`` pixels."""
    from pipeline.errors import InputError
    from pipeline.io.geotiff import read_patch

    if not path.is_file():
        return False
    try:
        data = read_patch(path).data
    except InputError:
        return False
    return data is not None and np.array_equal(data, expected)


def _scaled_nodata(info: Any) -> int | None:
    """Output nodata of scaled imagery: 0 where the source has a nodata value or a mask."""
    return 0 if (info.nodata is not None or info.has_alpha) else None


def _read_padded(read_window: Any, ds: Any, seg: StripSegment, width: int, height: int,
                 bands: list[int], what: str) -> tuple[np.ndarray, np.ndarray]:
    """The segment's window, the part outside the raster padded (zeros, not valid)."""
    from rasterio.windows import Window

    w = min(seg.width, width - seg.px_col0)
    h = min(seg.height, height - seg.px_row0)
    data, valid = read_window(ds, Window(seg.px_col0, seg.px_row0, w, h), bands, what)
    if (w, h) == (seg.width, seg.height):
        return data, valid
    full = np.zeros((data.shape[0], seg.height, seg.width), dtype=data.dtype)
    full[:, :h, :w] = data
    fv = np.zeros((seg.height, seg.width), dtype=bool)
    fv[:h, :w] = valid
    return full, fv


def _dropped_edge_windows(width: int, height: int, size: int, stride: int, rows: int,
                          cols: int) -> int:
    """Windows of the image's edge strips that the lattice leaves out."""
    last_x, last_y = (cols - 1) * stride + size, (rows - 1) * stride + size
    extra_c = -(-(width - last_x) // stride) if width > last_x else 0
    extra_r = -(-(height - last_y) // stride) if height > last_y else 0
    return (rows + extra_r) * (cols + extra_c) - rows * cols


def _fill(data: np.ndarray, valid: np.ndarray, nodata: int | None) -> np.ndarray:
    """Copy of a (3, h, w) uint8 patch with no-data pixels set to ``nodata`` (0 if None)."""
    out = np.ascontiguousarray(data, dtype=np.uint8)
    if not valid.all():
        out = out.copy()
        out[:, ~valid] = 0 if nodata is None else nodata
    return out


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # different drives (Windows)
        return Path(path).as_posix()

