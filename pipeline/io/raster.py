"""Source rasters (HR scenes and foreign datasets in any GDAL format): inspect and validate
them, and read whole ones (bands, label values, percentiles).

Tiling reads scenes window by window on T1's grid through :mod:`pipeline.io.ongrid`; patch
GeoTIFFs (the pipeline's own outputs) are written and read by :mod:`pipeline.io.geotiff`.

Conventions: arrays are ``(band, y, x)``; windows are ``rasterio.windows.Window`` in pixel
units of the file read; CRS strings are what ``rasterio.crs.CRS.to_string()`` gives (e.g.
``"EPSG:32649"``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from pipeline.errors import InputError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- scene reading

#: GDAL block cache (MiB) while streaming a scene: GDAL's default (5 % of RAM) would let the
#: cache, not the data, set the memory of a tile job.
SCENE_CACHE_MB = 64


def bounded_gdal_cache(cache_mb: int = SCENE_CACHE_MB) -> Any:
    """Context manager capping GDAL's block cache, so memory stays flat as scenes grow.

    Note: rasterio passes ``GDAL_CACHEMAX`` to ``GDALSetCacheMax64``, i.e. in **bytes**
    (a bare 128 would be a 128-byte cache and make warped reads ~5x slower).
    """
    return rasterio.Env(GDAL_CACHEMAX=int(cache_mb) * 1024 * 1024)


@dataclass(frozen=True)
class RasterInfo:
    """Metadata of a raster (:func:`inspect_raster`, the one metadata reader).

    Attributes:
        path: the file.
        crs: its CRS (never None for an HR scene, which is validated; None for a foreign
            dataset's file that is not georeferenced).
        transform: pixel -> CRS affine (the identity when not georeferenced).
        width, height: size in pixels.
        count: number of bands.
        dtype: numpy dtype name of band 1.
        nodata: nodata value or None.
        has_alpha: True if a band is an alpha band or the file has an internal/dataset mask.
        res: (x, y) pixel size in CRS units (positive numbers).
        block_shape: (rows, cols) of band 1's storage blocks (a striped GeoTIFF's blocks
            span the whole width; (1, 1) when unknown).
    """

    path: Path
    crs: CRS | None
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    has_alpha: bool
    res: tuple[float, float]
    block_shape: tuple[int, int] = (1, 1)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in CRS units."""
        return tuple(rasterio.transform.array_bounds(self.height, self.width, self.transform))

    @property
    def georeferenced(self) -> bool:
        """True when the raster has a CRS and a geotransform."""
        return self.crs is not None and not self.transform.is_identity

    @property
    def crs_id(self) -> str | None:
        """``EPSG:xxxx`` (WKT when the CRS has no EPSG code); None when not georeferenced."""
        if not self.georeferenced or self.crs is None:
            return None
        epsg = self.crs.to_epsg()
        return f"EPSG:{epsg}" if epsg else str(self.crs.to_wkt())

    @property
    def gsd_xy_m(self) -> tuple[float | None, float | None]:
        """(x, y) ground size of a pixel in metres: the nominal pixel size in a metric
        projection (UTM, national grids: as users quote it), the centre pixel's size on the
        ground (:func:`ground_pixel_size`) in degrees or Web Mercator; (None, None) when not
        georeferenced."""
        crs = self.crs
        if not self.georeferenced or crs is None or self.crs_id is None:
            return None, None
        metric = crs.is_projected and (crs.linear_units or "").lower() in ("metre", "meter", "m")
        if metric and crs.to_epsg() not in (3857, 900913):
            return self.res
        return ground_pixel_size(self.crs_id, self.transform, self.width, self.height)

    @property
    def gsd_m(self) -> float | None:
        """Geometric mean of :attr:`gsd_xy_m`; None when unknown."""
        gx, gy = self.gsd_xy_m
        return float(np.sqrt(gx * gy)) if gx and gy else None

    def same_grid(self, other: RasterInfo) -> bool:
        """True when both rasters share CRS, transform (to 1e-9 px) and shape."""
        return (
            self.crs == other.crs
            and self.width == other.width
            and self.height == other.height
            and self.transform.almost_equals(other.transform, precision=1e-9 * max(self.res))
        )


def inspect_raster(path: str | Path, what: str = "image",
                   georeferenced: bool = True) -> RasterInfo:
    """Open ``path`` once and return its metadata; with ``georeferenced`` (HR scenes) check it
    is a north-up georeferenced raster.

    Args:
        path: the GeoTIFF (any GDAL-readable raster).
        what: description used in error messages (e.g. ``"AOI 'demo' T1 image"``).
        georeferenced: refuse rasters without CRS / geotransform or with a rotated grid
            (False: a foreign dataset's file, e.g. a PNG, whose placement comes from elsewhere).

    Raises:
        InputError: missing / unreadable file or a bandless raster; with ``georeferenced``
            also no CRS, no geotransform or a rotated/skewed grid. The message names the file
            and the fix.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"{what} {p} does not exist: fix the path in the AOI definition or the dataset "
            "(paths are relative to the directory snakemake runs in) or generate the inputs "
            "first"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(p) as ds:
                crs = ds.crs
                transform = ds.transform
                width, height, count = ds.width, ds.height, ds.count
                dtype = ds.dtypes[0] if count else ""
                nodata = ds.nodata
                has_alpha = ColorInterp.alpha in ds.colorinterp or any(
                    MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in ds.mask_flag_enums
                )
                block = ((int(ds.block_shapes[0][0]), int(ds.block_shapes[0][1])) if count
                         else (1, 1))
    except RasterioIOError as exc:
        raise InputError(
            f"{what} {p} cannot be read as a raster ({exc}): re-export it as GeoTIFF"
        ) from None
    if count < 1:
        raise InputError(f"{what} {p} has no bands: re-export it as an RGB GeoTIFF")
    if not georeferenced:
        return RasterInfo(path=p, crs=crs or None, transform=transform, width=width,
                          height=height, count=count, dtype=dtype,
                          nodata=None if nodata is None else float(nodata),
                          has_alpha=bool(has_alpha),
                          res=(abs(transform.a), abs(transform.e)), block_shape=block)
    if crs is None or not crs:
        raise InputError(
            f"{what} {p} has no CRS: assign one, e.g. `gdal_edit.py -a_srs EPSG:32649 {p}` "
            "(use the image's real projection)"
        )
    if transform.is_identity or transform == Affine(1, 0, 0, 0, 1, 0):
        raise InputError(
            f"{what} {p} has no geotransform (pixel grid is not georeferenced): georeference "
            "it (e.g. gdal_translate -a_ullr ... or gdalwarp with GCPs) before tiling"
        )
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
        raise InputError(
            f"{what} {p} is rotated or not north-up (transform {tuple(transform)[:6]}): warp it "
            "to a north-up grid first, e.g. `gdalwarp in.tif out.tif`"
        )
    return RasterInfo(
        path=p,
        crs=crs,
        transform=transform,
        width=width,
        height=height,
        count=count,
        dtype=dtype,
        nodata=None if nodata is None else float(nodata),
        has_alpha=bool(has_alpha),
        res=(abs(transform.a), abs(transform.e)),
        block_shape=block,
    )


def grid_difference(a: RasterInfo, b: RasterInfo) -> str:
    """What differs between two rasters' grids, e.g. ``origin (649000.0, 3795000.0) vs
    (649000.5, 3795000.0)``; "" when :meth:`RasterInfo.same_grid`."""
    parts = []
    if a.crs != b.crs:
        parts.append(f"CRS {a.crs_id} vs {b.crs_id}")
    if (a.width, a.height) != (b.width, b.height):
        parts.append(f"size {a.width}x{a.height} vs {b.width}x{b.height} px")
    if a.res != b.res:
        parts.append(f"pixel size {a.res} vs {b.res}")
    oa, ob = (a.transform.c, a.transform.f), (b.transform.c, b.transform.f)
    if oa != ob:
        parts.append(f"origin {oa} vs {ob}")
    if not parts and not a.same_grid(b):
        parts.append(f"transform {tuple(a.transform)[:6]} vs {tuple(b.transform)[:6]}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- foreign datasets


def read_bands(path: str | Path, indexes: Sequence[int] | None = None,
               fallback: Sequence[int] | None = None) -> np.ndarray:
    """(bands, H, W) pixels of a whole raster in its own dtype: every band, or the 1-based
    ``indexes``; a raster with fewer bands than ``max(indexes)`` is read with ``fallback``
    instead when given (e.g. [1, 1, 1]: a grey image as RGB).

    Raises:
        InputError: the file cannot be read, or lacks a requested band.
    """
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(p) as src:
                idx = list(indexes) if indexes is not None else list(range(1, src.count + 1))
                if max(idx) > src.count:
                    if fallback is None:
                        raise InputError(f"{p}: has {src.count} bands, band {max(idx)} was "
                                         "asked for: check the file")
                    idx = list(fallback)
                return np.asarray(src.read(idx))
    except RasterioIOError as exc:
        raise InputError(f"{p}: cannot be read ({exc}): check the file") from None


def ground_pixel_size(crs: str, transform: Any, width: int, height: int
                      ) -> tuple[float | None, float | None]:
    """(x, y) size in metres on the ground of the raster's centre pixel, in any CRS: geodesic
    distances (WGS84 ellipsoid, pyproj ``Geod``) across the pixel, so a geographic CRS (OSCD's
    EPSG:4326: about 8.7 x 13 m) or Web Mercator gets its true size. (None, None) when the CRS
    cannot be transformed to WGS84."""
    from pyproj import CRS as PCRS
    from pyproj import Geod, Transformer

    try:
        to_ll = Transformer.from_crs(PCRS.from_user_input(crs), "EPSG:4326", always_xy=True)
    except Exception:  # an exotic WKT pyproj cannot use
        return None, None
    cx, cy = width / 2.0, height / 2.0
    pts = [transform * (cx, cy), transform * (cx + 1, cy), transform * (cx, cy + 1)]
    lon, lat = to_ll.transform([p[0] for p in pts], [p[1] for p in pts])
    geod = Geod(ellps="WGS84")
    _, _, dx = geod.inv(lon[0], lat[0], lon[1], lat[1])
    _, _, dy = geod.inv(lon[0], lat[0], lon[2], lat[2])
    ok = all(np.isfinite(v) and v > 0 for v in (dx, dy))
    return (float(dx), float(dy)) if ok else (None, None)


def label_values(path: str | Path) -> list[int]:
    """Distinct values of a (small) single-band label raster (GeoTIFF or PNG)."""
    return sorted(label_counts(path))


def label_counts(path: str | Path) -> dict[int, int]:
    """{value: pixel count} of a (small) single-band label raster (GeoTIFF or PNG)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            vals, counts = np.unique(src.read(1), return_counts=True)
    return {int(v): int(c) for v, c in zip(vals, counts, strict=True)}


def band_percentiles(
    path: str | Path, bands: Sequence[int], q: tuple[float, float], max_side_px: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (low, high) percentiles of a raster's valid pixels, read decimated (overviews
    when the file has them) to at most ``max_side_px`` per side: the scaling rule of non-8-bit
    HR imagery. Returns two (len(bands),) float64 arrays.

    Raises:
        InputError: the file cannot be read, or has no valid pixel.
    """
    p = Path(path)
    try:
        with rasterio.open(p) as ds:
            f = max(1, int(np.ceil(max(ds.width, ds.height) / max_side_px)))
            shape = (len(bands), max(1, ds.height // f), max(1, ds.width // f))
            data = ds.read(list(bands), out_shape=shape, resampling=Resampling.nearest)
            masks = ds.read_masks(list(bands), out_shape=shape, resampling=Resampling.nearest)
    except RasterioIOError as exc:
        raise InputError(f"image {p} cannot be read ({exc}): re-export it") from None
    lo, hi = np.empty(len(bands)), np.empty(len(bands))
    for i in range(len(bands)):
        v = data[i][masks[i] > 0]
        if v.size == 0:
            raise InputError(f"image {p} band {bands[i]} has no valid pixel: check its nodata")
        lo[i], hi[i] = np.percentile(v, q)
    return lo, hi
