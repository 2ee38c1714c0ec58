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
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from pipeline.aoi import AoiSpec
from pipeline.config import TileConfig
from pipeline.errors import InputError
from pipeline.hr.windows import (
    STRIP_MAX_PATCHES,
    StripSegment,
    TilingError,
    band_selection,
    bounds_overlap_area,
    dropped_edge_windows,
    edge_lattice_shape,
    gsd_from_crs,
    nodata_fraction,
    patch_id,
    scale_to_uint8,
    strip_plan,
    window_polygon,
)
from pipeline.layout import Layout
from pipeline.parallel import ordered_map, read_ahead

log = logging.getLogger(__name__)



#: 1-based band indexes read as R, G, B (an alpha band, if any, is band 4 or a mask).
RGB_BANDS = [1, 2, 3]





# --------------------------------------------------------------------------- pure helpers


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



@dataclass(frozen=True)
class _PatchPair:
    """One kept window, ready to write: (bands, h, w) uint8 T1 / T2 pixels, their transform
    and, for sources without a nodata value, their (h, w) bool validity masks."""

    pid: str
    transform: Affine
    p1: np.ndarray
    p2: np.ndarray
    mask1: np.ndarray | None
    mask2: np.ndarray | None


#: Relative tolerance of the GSD bounds: a 5 m image whose pixel size is measured as 5.000002 m
#: (a geographic CRS converted at the image centre, float noise of a reprojected grid) passes.
GSD_TOLERANCE = 1e-3


def gsd_in_range(gsd_m: float, lo: float, hi: float) -> bool:
    """``lo <= gsd_m <= hi`` within :data:`GSD_TOLERANCE` (relative)."""
    return lo * (1.0 - GSD_TOLERANCE) <= gsd_m <= hi * (1.0 + GSD_TOLERANCE)

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
    threads: int = 1,
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
        strip_max_patches: patches per strip segment (memory bound); a striped input (GDAL's
            default GeoTIFF layout, blocks spanning the width) is read in whole rows instead.
        threads: patches compressed and written at once (GDAL releases the GIL); the next
            segment is read on one more thread meanwhile. Outputs do not depend on it.

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
    from pipeline.io.digest import read_fingerprint, stat_digest, write_fingerprint
    from pipeline.io.geotiff import quiet_rasterio_geotransform_warning, write_patch_tif
    from pipeline.io.ongrid import open_on_grid, read_window, whole_pixel_offset
    from pipeline.io.raster import (
        band_percentiles,
        bounded_gdal_cache,
        grid_difference,
        inspect_raster,
    )

    size = int(patch_size_px)
    stride = int(stride_px or size)
    info1 = inspect_raster(image_t1, f"AOI {name!r} T1 image")
    info2 = inspect_raster(image_t2, f"AOI {name!r} T2 image")
    for info, date in ((info1, "T1"), (info2, "T2")):
        n_px = info.width * info.height
        if n_px > cfg.max_input_pixels:
            raise TilingError(
                f"AOI {name!r} {date} image {info.path} declares {info.width} x {info.height} = "
                f"{n_px:,} pixels, more than tile.max_input_pixels = {cfg.max_input_pixels:,}: "
                "check the file (a wrong header?) or raise tile.max_input_pixels"
            )
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
    grey = {d: len(set(b)) == 1 for d, b in sel.items()}
    if cfg.bands is None and grey["t1"] != grey["t2"]:
        kinds = {d: "single-band" if g else "colour" for d, g in grey.items()}
        raise TilingError(
            f"AOI {name!r}: T1 image {info1.path} is {kinds['t1']} ({info1.count} bands) but T2 "
            f"image {info2.path} is {kinds['t2']} ({info2.count} bands): one date would be "
            "grey and the other in colour; export both dates with the same bands, or set "
            "tile.bands (e.g. [1] for both as panchromatic)"
        )
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
    shift = whole_pixel_offset(info2.crs, info2.transform, info1.crs, info1.transform)
    if coregister and shift is not None:
        log.info("%s: T2 grid differs from T1 (%s) by a whole-pixel shift (T1's origin is T2's "
                 "pixel %s): T2's windows are read shifted, not resampled", name,
                 grid_difference(info1, info2), shift)
    elif coregister:
        log.info(
            "%s: T2 grid differs from T1 (%s): warping T2 onto T1's grid with %s resampling, "
            "window by window", name, grid_difference(info1, info2), resampling,
        )
    if info1.crs is None:  # inspect_raster refuses rasters without a CRS
        raise TilingError(f"AOI {name!r}: {info1.path} has no CRS")
    hr_crs = info1.crs.to_string()
    cx, cy = info1.transform @ (info1.width / 2, info1.height / 2)
    from rasterio.warp import transform as warp_transform

    lon, lat = warp_transform(info1.crs, "EPSG:4326", [cx], [cy])
    gsd_m = gsd_from_crs(info1.res, info1.crs, (lon[0], lat[0]))
    if not gsd_in_range(gsd_m, cfg.min_gsd_m, cfg.max_gsd_m):
        raise TilingError(
            f"AOI {name!r} T1 image {info1.path} has {gsd_m:.9g} m pixels (measured at the "
            f"image centre), outside tile.min_gsd_m..tile.max_gsd_m = {cfg.min_gsd_m:g}.."
            f"{cfg.max_gsd_m:g} m (+-{GSD_TOLERANCE:.1%}): the HR "
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
    fp = stat_digest([image_t1, image_t2], extra={"cfg": cfg.model_dump(mode="json"),
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
        # a striped file (blocks spanning its width: GDAL's default GeoTIFF layout) decodes a
        # whole row of strips for any window of it; segments narrower than the row would
        # decode those rows again for each segment once the block cache (SCENE_CACHE_MB) no
        # longer holds them, so such files are read in whole rows (memory then grows with
        # the width)
        striped = [i for i in (info1, info2) if i.block_shape[1] >= i.width]
        per_segment = strip_max_patches
        if striped and cols > strip_max_patches:
            per_segment = cols
            log.info("%s: %s %s stored in strips (blocks spanning the width): read in whole "
                     "rows of %d patches (about %d MB per row of patches, two rows held at "
                     "once); a tiled copy (`gdal_translate -co TILED=YES`) keeps the tile "
                     "job's memory flat", name, " and ".join(str(i.path) for i in striped),
                     "is" if len(striped) == 1 else "are", cols,
                     -(-2 * 4 * size * W // 2**20))
        segments = list(strip_plan(rows, cols, size, stride, per_segment))

        def read_segment(seg: StripSegment) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
            return (_read_padded(read_window, src1, seg, W, H, sel["t1"],
                                 f"AOI {name!r} T1 image"),
                    _read_padded(read_window, src2, seg, W, H, sel["t2"],
                                 f"AOI {name!r} T2 image"))

        def write_pair(job: _PatchPair) -> bool:
            """Write one patch pair (True: an interrupted run's identical files were kept)."""
            f1, f2 = tmp1 / f"{job.pid}.tif", tmp2 / f"{job.pid}.tif"
            if resumed and _intact(f1, job.p1) and _intact(f2, job.p2):
                return True
            write_patch_tif(f1, job.p1, job.transform, info1.crs, nodata1, mask=job.mask1)
            write_patch_tif(f2, job.p2, job.transform, info1.crs, nodata2, mask=job.mask2)
            return False

        quiet_rasterio_geotransform_warning()  # before the threads (see pipeline.io.geotiff)
        # the next segment is read (one reader thread: each dataset is used by one thread at
        # a time) while this one's patches are compressed and written on ``threads`` threads;
        # records and files do not depend on the threads
        for seg, ((a1, v1), (a2, v2)) in zip(segments, read_ahead(read_segment, segments),
                                             strict=True):
            jobs: list[_PatchPair] = []
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
                jobs.append(_PatchPair(pid, tr, p1, p2, m1 if nodata1 is None else None,
                                       m2 if nodata2 is None else None))
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
                        # the patch GeoTIFFs' affine (a, b, c, d, e, f; exact: JSON floats
                        # round-trip): rule labels needs no open for a patch's grid
                        "hr_transform": json.dumps(list(tr)[:6]),
                        "hr_bands": json.dumps(sel["t1"]),
                        "hr_scale": json.dumps(scale_rule) if scale_rule else "none",
                        "geometry": window_polygon(info1.transform, px_col0, px_row0,
                                                   size),
                    }
                )
            n_reused += sum(ordered_map(write_pair, jobs, threads))
        remove_tree(tmp1 / RESUME_FILE)
        remove_tree(tmp2 / RESUME_FILE)
        if n_reused:
            log.info("%s: kept %d patch pairs of an interrupted run", name, n_reused)
        if n_padded:
            log.info("%s: %d edge windows padded with no data (tile.edge_windows: pad)", name,
                     n_padded)
        dropped = dropped_edge_windows(W, H, size, stride, rows, cols)
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
    index = gpd.GeoDataFrame(records, geometry="geometry", crs=info1.crs_id)
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

