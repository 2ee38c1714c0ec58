"""A source raster seen on a target grid, and windows read with their validity: the one
warp-onto-grid of the project (:func:`open_on_grid`: a lazy ``WarpedVRT``, or a
:class:`ShiftedView` for a whole-pixel shift of the grid), GDAL's nodata mask derived from the
pixels read (:func:`nodata_valid`, :func:`read_with_valid`) and :func:`read_window`. Used for
HR scenes (tiling) and Sentinel scene files (local or COG URLs); :mod:`pipeline.io.raster`
inspects rasters and reads whole ones.

Conventions: arrays are ``(band, y, x)``; windows are ``rasterio.windows.Window`` in pixel
units of the dataset read; CRS strings are what ``rasterio.crs.CRS.to_string()`` gives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from pipeline.errors import InputError


@contextlib.contextmanager
def open_on_grid(
    path: str | Path,
    crs: CRS | str,
    transform: Affine,
    width: int,
    height: int,
    resampling: str = "bilinear",
    reproject: bool = True,
    nodata: float | None = None,
    tolerance: float | None = None,
    dtype: str | None = None,
) -> Iterator[Any]:
    """Open a raster, lazily warped onto a target grid when ``reproject`` is True: the one
    warp-onto-grid of the project (HR scenes, Sentinel scene files, local or COG URLs).

    The returned dataset behaves like a rasterio reader on the target grid (``read(window=...)``,
    ``read_masks(window=...)``); with ``reproject`` it is a :class:`rasterio.vrt.WarpedVRT`
    that resamples only the windows that are read (memory stays bounded by the window; a COG
    is read with range requests for the tiles the window needs). Pixels outside the source and
    nodata pixels are masked (mask 0): the file's nodata value, else ``nodata``, else its
    alpha band or dataset mask, else an alpha band the warper adds.

    Args:
        path: the raster (a path or a URL GDAL reads).
        crs, transform, width, height: the target grid (e.g. the T1 image's, an AOI block).
        resampling: rasterio resampling name (``nearest``, ``bilinear``, ``cubic``).
        reproject: False opens the file directly (it must already be on the target grid).
        nodata: the file's nodata value when it declares none.
        tolerance: the warper's approximation error in px (None: GDAL's 0.125; 1e-6 makes
            values independent of the window, as the Sentinel blocks need).
        dtype: the warp's working and output type (None: the file's; ``float32`` keeps
            interpolated values unrounded where the file holds integers).
    """
    with rasterio.open(path) as src:
        if not reproject:
            yield src
            return
        offset = whole_pixel_offset(src.crs, src.transform, crs, transform)
        if offset is not None:
            # the same grid but for a whole-pixel shift (same CRS and pixel size, e.g. two
            # dates cut from one orthomosaic with different extents): every resampling of a
            # whole-pixel shift returns the source pixels, so they are read, not warped
            yield ShiftedView(src, offset, width, height, nodata)
            return
        vrt_kwargs: dict[str, Any] = {
            "crs": crs,
            "transform": transform,
            "width": width,
            "height": height,
            "resampling": Resampling[resampling],
        }
        src_nodata = src.nodata if src.nodata is not None else nodata
        if src_nodata is not None:
            vrt_kwargs.update(src_nodata=src_nodata, nodata=src_nodata)
        elif not any(MaskFlags.per_dataset in f or MaskFlags.alpha in f
                     for f in src.mask_flag_enums):
            # ask the warper for an alpha band so areas outside the source are masked
            vrt_kwargs["add_alpha"] = True
        if tolerance is not None:
            vrt_kwargs["tolerance"] = tolerance
        if dtype is not None:
            vrt_kwargs["dtype"] = dtype
        with WarpedVRT(src, **vrt_kwargs) as vrt:
            yield vrt


#: A whole-pixel shift: origins this close (in px) to a whole number of pixels apart count as
#: whole (float noise of coordinates written in decimal); pixel sizes must agree to 1e-3 of
#: this, relatively (1e-9: a 100,000 px image then drifts by at most 1e-4 px).
SHIFT_TOLERANCE_PX = 1e-6


def whole_pixel_offset(src_crs: CRS | None, src_transform: Affine, crs: CRS | str,
                       transform: Affine) -> tuple[int, int] | None:
    """``(col, row)`` of the target grid's upper-left pixel in the source's pixels, when both
    grids are north-up with the same CRS and pixel size and their origins lie a whole number of
    pixels apart (within :data:`SHIFT_TOLERANCE_PX`); None otherwise (the source must be
    warped)."""
    if src_crs is None or CRS.from_user_input(crs) != src_crs:
        return None
    a, b = src_transform, transform
    if a.b != 0 or a.d != 0 or b.b != 0 or b.d != 0 or a.a == 0 or a.e == 0:
        return None
    if abs(a.a - b.a) > SHIFT_TOLERANCE_PX * abs(a.a) / 1e3 or \
            abs(a.e - b.e) > SHIFT_TOLERANCE_PX * abs(a.e) / 1e3:
        return None
    col, row = (b.c - a.c) / a.a, (b.f - a.f) / a.e
    if abs(col - round(col)) > SHIFT_TOLERANCE_PX or abs(row - round(row)) > SHIFT_TOLERANCE_PX:
        return None
    return round(col), round(row)


class ShiftedView:
    """A raster read on a target grid that is its own grid shifted by whole pixels
    (:func:`open_on_grid` hands it out instead of a warped VRT: the same values, no warp).

    Reads behave as the warped VRT's: ``read`` / ``read_masks`` take windows of the target grid;
    pixels outside the source hold the nodata value (0 without one) and mask 0; inside, the mask
    is the source's own (nodata value, alpha band or dataset mask; pixels under a 0 alpha or
    mask read 0, as the warper leaves them), or ``data != nodata`` when the file declares no
    nodata value and ``nodata`` is given.

    Args:
        src: the open source dataset.
        offset: ``(col, row)`` of the target's pixel (0, 0) in the source's pixels.
        width, height: the target grid's size.
        nodata: the file's nodata value when it declares none.
    """

    def __init__(self, src: Any, offset: tuple[int, int], width: int, height: int,
                 nodata: float | None = None) -> None:
        self.src = src
        self.col_off, self.row_off = offset
        self.width, self.height = width, height
        self.fallback_nodata = nodata if src.nodata is None else None

    @property
    def name(self) -> str:
        return str(self.src.name)

    @property
    def nodata(self) -> float | None:
        return self.src.nodata if self.src.nodata is not None else self.fallback_nodata

    @property
    def count(self) -> int:
        return int(self.src.count)

    @property
    def colorinterp(self) -> Any:
        return self.src.colorinterp

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(self.src.dtypes)

    @property
    def mask_flag_enums(self) -> Any:
        """The source's mask flags; ``[MaskFlags.nodata]`` per band when the fallback nodata
        value applies (as the warped VRT made with it as ``src_nodata`` reports)."""
        if self.fallback_nodata is not None:
            return tuple([MaskFlags.nodata] for _ in range(self.count))
        return self.src.mask_flag_enums

    def _bands(self, indexes: int | Sequence[int] | None) -> tuple[bool, list[int]]:
        """(one band asked as an int, the 1-based bands)."""
        if isinstance(indexes, int):
            return True, [indexes]
        return False, list(indexes) if indexes is not None else list(range(1, self.count + 1))

    def _parts(self, window: Window | None) -> tuple[int, int, int, int, Window | None]:
        """Target window size and where the source's part lands: ``(h, w, y0, x0, src_win)``."""
        if window is None:
            window = Window(0, 0, self.width, self.height)
        c0, r0 = int(window.col_off), int(window.row_off)
        w, h = int(window.width), int(window.height)
        sc0, sr0 = c0 + self.col_off, r0 + self.row_off
        x0, y0 = max(0, -sc0), max(0, -sr0)
        x1, y1 = min(w, self.src.width - sc0), min(h, self.src.height - sr0)
        if x1 <= x0 or y1 <= y0:
            return h, w, 0, 0, None
        return h, w, y0, x0, Window(sc0 + x0, sr0 + y0, x1 - x0, y1 - y0)

    def read(self, indexes: int | Sequence[int] | None = None, window: Window | None = None,
             out_dtype: Any = None, boundless: bool = False) -> np.ndarray:
        """Pixels of ``window`` (target grid): ``(h, w)`` for one int index, else
        ``(bands, h, w)``; in ``out_dtype`` (default: the file's). ``boundless`` is accepted
        for rasterio's signature: a window's part outside the source always reads as no
        data."""
        one, idx = self._bands(indexes)
        h, w, y0, x0, sw = self._parts(window)
        dtype = np.dtype(out_dtype or self.src.dtypes[idx[0] - 1])
        fill = self.nodata if self.nodata is not None else 0
        try:
            out = np.full((len(idx), h, w), fill, dtype=dtype)
        except (OverflowError, ValueError):  # a nodata value the type cannot hold
            fill = 0
            out = np.zeros((len(idx), h, w), dtype=dtype)
        if sw is not None:
            part = self.src.read(idx, window=sw, out_dtype=out_dtype)
            if any(MaskFlags.alpha in f or MaskFlags.per_dataset in f
                   for f in (self.src.mask_flag_enums[i - 1] for i in idx)):
                # as the warper: no pixel is written where the alpha band or mask is 0
                part[self.src.read_masks(idx, window=sw) == 0] = fill
            out[:, y0 : y0 + int(sw.height), x0 : x0 + int(sw.width)] = part
        return out[0] if one else out

    def read_masks(self, indexes: int | Sequence[int] | None = None,
                   window: Window | None = None) -> np.ndarray:
        """uint8 masks of ``window`` (255 valid, 0 no data or outside the source)."""
        one, idx = self._bands(indexes)
        h, w, y0, x0, sw = self._parts(window)
        out = np.zeros((len(idx), h, w), dtype=np.uint8)
        if sw is not None:
            if self.fallback_nodata is not None:
                part = self.src.read(idx, window=sw)
                fb = self.fallback_nodata
                valid = nodata_valid(part, fb, self.src.dtypes[idx[0] - 1])
                if valid is None:
                    valid = ~np.isnan(part) if np.isnan(fb) else part != fb
                m = np.where(valid, 255, 0).astype(np.uint8)
            else:
                m = self.src.read_masks(idx, window=sw)
            out[:, y0 : y0 + int(sw.height), x0 : x0 + int(sw.width)] = m
        return out[0] if one else out


#: GDAL's ``ARE_REAL_EQUAL`` tolerance: ``FLT_EPSILON`` times 2 ULP, for float32 and float64
#: bands alike (gcore/gdal_priv.h).
_GDAL_EPS = np.float32(np.finfo(np.float32).eps)


def nodata_valid(data: np.ndarray, nodata: float, band_dtype: Any) -> np.ndarray | None:
    """bool ``data`` valid where GDAL's nodata mask band says so, derived from pixels already
    read (``read_masks`` would read, and for a warped view warp, the window a second time).

    GDAL's rule (gcore/gdalnodatamaskband.cpp): integer bands compare with the nodata value cast
    to the band's 32-bit work type; float bands use ``ARE_REAL_EQUAL`` (equal within
    ``FLT_EPSILON * |a + b| * 2``, in the band's precision); a NaN nodata masks NaN pixels only,
    and a NaN pixel is valid under a finite nodata value.

    Args:
        data: pixels read from a band of type ``band_dtype`` (any shape), in that type or
            converted to float32 / float64 without loss.
        nodata: the band's nodata value (GDAL reports the mask as ``MaskFlags.nodata`` only).
        band_dtype: the band's own data type (``ds.dtypes[i]``).

    Returns:
        bool array of ``data``'s shape (True = valid), or None where the mask cannot be derived
        exactly from ``data`` (32-bit integers read as float32, a float64 band read as float32,
        a nodata value ``data``'s type cannot hold): read the masks then.
    """
    band = np.dtype(band_dtype)
    nd = float(nodata)
    if band.kind in "iu":
        if band.itemsize > 2 and data.dtype != band:
            return None  # a float32 copy of 32-bit integers may have merged values
        if np.isnan(nd):
            return None
        target = int(nd)  # the C cast truncates toward zero
        if data.dtype.kind in "iu":
            info = np.iinfo(data.dtype)
            if not info.min <= target <= info.max:
                # no pixel can equal it, but a view's fill outside its source could not hold it
                # either (ShiftedView fills 0 there, masked): the masks say which
                return None
        return np.asarray(data != target)
    if band.kind != "f" or data.dtype.kind != "f" or data.dtype.itemsize < band.itemsize:
        return None
    work = band.type
    a = data if data.dtype == band else data.astype(band)
    if np.isnan(nd):
        return ~np.isnan(a)
    with np.errstate(over="ignore", invalid="ignore"):
        f = work(nd)
        if not np.isfinite(f) and np.isfinite(nd):
            return None  # nodata beyond the band type's range
        equal = (a == f) | (np.abs(a - f) < _GDAL_EPS * np.abs(a + f) * work(2))
    return ~equal


def read_with_valid(ds: Any, bands: Sequence[int], window: Window | None = None,
                    out_dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``(data, valid)`` of ``bands`` (1-based) in one read where the bands' only mask is
    their nodata value (:func:`nodata_valid`); otherwise the masks are read too (alpha band,
    dataset mask, a warper's alpha).

    Args:
        ds: an open rasterio dataset, WarpedVRT or :class:`ShiftedView`.
        bands: 1-based band indexes.
        window: pixel window of ``ds`` (None: all of it).
        out_dtype: type of ``data`` (default: the file's).

    Returns:
        data ``(len(bands), h, w)``; valid ``(len(bands), h, w)`` bool, as ``read_masks > 0``.
    """
    idx = [int(b) for b in bands]
    data = ds.read(idx, window=window, out_dtype=out_dtype)
    flags = [list(ds.mask_flag_enums[b - 1]) for b in idx]
    nodata = ds.nodata
    if nodata is not None and all(f == [MaskFlags.nodata] for f in flags):
        valid = nodata_valid(data, nodata, ds.dtypes[idx[0] - 1])
        if valid is not None and len({ds.dtypes[b - 1] for b in idx}) == 1:
            return data, valid
    alpha = [i + 1 for i, ci in enumerate(ds.colorinterp) if ci == ColorInterp.alpha]
    if alpha and all(f == [MaskFlags.all_valid] for f in flags):
        # an alpha band GDAL does not take as the mask: a warped VRT made with add_alpha and a
        # float32 working type has a float32 alpha band, and GDAL only uses Byte / UInt16 ones
        # (its masks then call every pixel valid, those outside the source too)
        a = ds.read(alpha[0], window=window) > 0
        return data, np.broadcast_to(a, data.shape).copy()
    return data, ds.read_masks(idx, window=window) > 0


def read_window(
    ds: Any, window: Window, bands: Sequence[int] | None = None, what: str = "image"
) -> tuple[np.ndarray, np.ndarray]:
    """Read one window and its validity mask.

    Args:
        ds: an open rasterio dataset or WarpedVRT.
        window: pixel window of ``ds``.
        bands: 1-based band indexes to read (default: all non-alpha bands).

    Returns:
        ``(data, valid)``: data ``(len(bands), h, w)`` in the file's dtype; valid ``(h, w)``
        bool, False where every band is no data (nodata value, alpha = 0, dataset mask = 0,
        or outside the source for a warped view). "Every band" follows the usual RGB reading
        of a per-band nodata value: a dark pixel with one channel equal to nodata stays valid.
        A mask that is only the nodata value is derived from the pixels read
        (:func:`read_with_valid`), not read again.
    """
    if bands is None:
        bands = [i + 1 for i, ci in enumerate(ds.colorinterp) if ci != ColorInterp.alpha]
    try:
        data, valid = read_with_valid(ds, list(bands), window)
    except RasterioIOError as exc:
        raise InputError(
            f"{what} {ds.name} cannot be read at rows {int(window.row_off)}.."
            f"{int(window.row_off + window.height)} ({exc}): the file is truncated or corrupt; "
            "re-export or re-download it (`gdalinfo -checksum` finds bad blocks)"
        ) from None
    return data, np.any(valid, axis=0)
