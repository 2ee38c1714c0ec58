"""Reading the AOI Sentinel mosaic (:mod:`pipeline.io.mosaic` builds it): footprint windows as
arrays for every month (the datasets, the expansion, the exports), the store as a lazy xarray
Dataset, its months and whole-mosaic counts. Either store can be read (the read-optimised
cube or a staging store; any chunking); on the cube the chunk files are read and
Blosc-decoded directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bands import S1_BANDS, S2_BANDS
from pipeline.errors import GridError, MissingInputError
from pipeline.io.mosaic import S2_NODATA_U16, _direct_plans, _open_arrays, _root_attrs


def _s2_reflectance(dn: np.ndarray, out: np.ndarray) -> None:
    """Stored S2 DNs -> float32 reflectance in ``out`` (DN / 10000, 65535 -> NaN), in place:
    the same values as :func:`u16_to_reflectance` without its temporaries."""
    np.divide(dn, np.float32(10000.0), out=out, dtype=np.float32)
    np.copyto(out, np.float32(np.nan), where=dn == S2_NODATA_U16)


def _read_window(a: Any, plan: Any, ys: slice, xs: slice, out: np.ndarray,
                 ts: slice = slice(None),
                 decode: Callable[[np.ndarray, np.ndarray], None] | None = None) -> None:
    """``out[...] = a[ts, ..., ys, xs]`` (``ts``: months); with a plan, reads the chunk files
    directly (Blosc decode per chunk into one chunk-sized buffer, the fill value where a chunk
    is not stored). ``decode(src, dst)`` converts each piece into ``out`` in place (e.g. the
    uint16 S2 DNs into float reflectance) so no window-sized temporary of the stored dtype is
    ever allocated."""

    def put(dst: np.ndarray, src: np.ndarray) -> None:
        if decode is None:
            dst[...] = src
        else:
            decode(src, dst)

    if plan is None:
        put(out, np.asarray(a[(ts, Ellipsis, ys, xs)]))
        return
    from numcodecs import blosc

    root, ch, dt, fill = plan
    cy, cx = ch[-2], ch[-1]
    lead = "/".join("0" for _ in ch[:-2])
    prefix = f"c/{lead}/" if lead else "c/"
    buf = np.empty(ch, dt)
    for i in range(ys.start // cy, (ys.stop - 1) // cy + 1):
        y0, y1 = max(ys.start, i * cy), min(ys.stop, (i + 1) * cy)
        for j in range(xs.start // cx, (xs.stop - 1) // cx + 1):
            x0, x1 = max(xs.start, j * cx), min(xs.stop, (j + 1) * cx)
            dst = out[..., y0 - ys.start : y1 - ys.start, x0 - xs.start : x1 - xs.start]
            try:
                data = (root / f"{prefix}{i}/{j}").read_bytes()
            except FileNotFoundError:
                put(dst, np.full(dst.shape, fill, dt))
                continue
            blosc.decompress(data, buf)
            del data
            put(dst, buf[(ts, Ellipsis, slice(y0 - i * cy, y1 - i * cy),
                          slice(x0 - j * cx, x1 - j * cx))])


def mosaic_months(path: str | Path) -> list[str]:
    """The store's time axis (``YYYY-MM`` strings)."""
    return list(_root_attrs(Path(path))["months"])


def month_span(path: str | Path, first: str, last: str) -> tuple[int, int]:
    """(start, stop) indices of the store's months within ``first..last`` (``YYYY-MM``), a
    contiguous run of its time axis; read from the per-process cache of opened stores, so a
    dataset asking once per sample opens nothing twice."""
    months = list(_open_arrays(str(Path(path)), "r")[1]["months"])
    t = [i for i, m in enumerate(months) if first <= m <= last]
    return (t[0], t[-1] + 1) if t else (0, 0)


def read_footprint_cube(
    path: str | Path, col0: int, row0: int, size: int | tuple[int, int], raw: bool = False,
    months: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Read a window of the mosaic (e.g. one footprint) for every month.

    Four window reads (on the read-optimised cube a 128 px window is 9 chunks per variable);
    on the cube the chunk files are read and Blosc-decoded directly into the output (zarr's
    async machinery cost ~2x the decode), other stores are read through zarr; s2 is decoded
    in place. The opened arrays are cached per process and path (datasets pickle only the
    path into workers).

    Args:
        path: the ``.zarr`` store (the cube or a staging store).
        col0, row0: upper-left pixel of the window in the AOI grid.
        size: side (px), or (height, width).
        months: (first, stop) month indices to read (default all): only those months are
            allocated, so a sample's cube costs about its own bytes (peak ~1.5x ``x``: ``x``,
            the uint16 S2 read buffer and the counts).
        raw: return the stored dtypes instead of ``x`` (no decoding pass): ``s2`` (T, 12, H, W)
            uint16 reflectance * 10000 with 65535 = no data and ``s1`` (T, 2, H, W) float32 dB
            with NaN = no data (``s2 / 10000`` with 65535 -> NaN, concatenated with ``s1``, is
            exactly ``x``).

    Returns:
        dict with ``x`` (T, 14, H, W) float32: 12 S2 reflectances then S1 VV, VH dB, NaN = no
        data (or ``s2`` / ``s1`` when ``raw``); ``counts`` (T, 2, H, W) uint8 (S2 clear, S1);
        ``months`` (list of ``YYYY-MM``); ``bands`` (the 14 names).

    Raises:
        GridError: the window leaves the AOI grid.
    """
    arrays, attrs = _open_arrays(str(Path(path)), "r")
    h, w = (size, size) if isinstance(size, int | np.integer) else (int(size[0]), int(size[1]))
    col0, row0 = int(col0), int(row0)
    g = attrs["grid"]
    if col0 < 0 or row0 < 0 or col0 + w > int(g["width"]) or row0 + h > int(g["height"]):
        raise GridError(
            f"{path}: window col0={col0} row0={row0} size={h}x{w} leaves the "
            f"{g['width']}x{g['height']} px AOI grid: the footprints and the mosaic disagree, "
            "rerun rule sentinel_init"
        )
    ys, xs = slice(row0, row0 + h), slice(col0, col0 + w)
    s2a, s1a = arrays["s2"], arrays["s1"]
    n_all, nb2, nb1 = s2a.shape[0], s2a.shape[1], s1a.shape[1]
    m0, m1 = (0, n_all) if months is None else (int(months[0]), int(months[1]))
    if not 0 <= m0 <= m1 <= n_all:
        raise GridError(f"{path}: months {m0}..{m1} outside the store's {n_all} months")
    ts, T = slice(m0, m1), m1 - m0
    plans = _direct_plans(str(Path(path)))
    counts = np.empty((T, 2, h, w), np.uint8)
    _read_window(arrays["s2_count"], plans["s2_count"], ys, xs, counts[:, 0], ts)
    _read_window(arrays["s1_count"], plans["s1_count"], ys, xs, counts[:, 1], ts)
    month_names, bands = list(attrs["months"])[m0:m1], list(S2_BANDS + S1_BANDS)
    if raw:
        s2 = np.empty((T, nb2, h, w), np.uint16)
        s1 = np.empty((T, nb1, h, w), np.float32)
        _read_window(s2a, plans["s2"], ys, xs, s2, ts)
        _read_window(s1a, plans["s1"], ys, xs, s1, ts)
        return {
            "s2": s2,
            "s1": s1,
            "counts": counts,
            "months": month_names,
            "bands": bands,
        }
    # zarr arrays read directly (no xarray), decoded into one preallocated array: same values
    # as u16_to_reflectance (DN / 10000 in float32, 65535 -> NaN) without temporaries
    x = np.empty((T, nb2 + nb1, h, w), np.float32)
    _read_window(s2a, plans["s2"], ys, xs, x[:, :nb2], ts, decode=_s2_reflectance)
    _read_window(s1a, plans["s1"], ys, xs, x[:, nb2:], ts)
    return {"x": x, "counts": counts, "months": month_names, "bands": bands}


def open_mosaic(path: str | Path) -> Any:
    """Open the store lazily as an :class:`xarray.Dataset` (s2 decoded to float reflectance
    with NaN; CRS available via ``ds.rio.crs`` after ``import rioxarray``)."""
    import xarray as xr

    p = Path(path)
    if not p.exists():
        raise MissingInputError(
            f"mosaic {p} does not exist: run the sentinel rules for this AOI", p
        )
    return xr.open_zarr(
        p, consolidated=False, decode_coords="all", use_zarr_fill_value_as_mask=False
    )


def read_cube(
    path: str | Path, col0: int, row0: int, size: int, raw: bool = False
) -> dict[str, Any]:
    """Footprint window of the AOI mosaic ``path`` for every month (see
    :func:`read_footprint_cube`: ``x`` (T, 14, H, W) float32 NaN = no data,
    ``counts`` (T, 2, H, W) uint8, ``months``, ``bands``; with ``raw`` the stored ``s2``
    (T, 12, H, W) uint16 DN, 65535 = no data, and ``s1`` (T, 2, H, W) float32 dB instead of ``x``).

    The store is opened once per process (``read_footprint_cube`` caches opened arrays by path),
    so a dataset holding only the path pickles into DataLoader workers without open stores.

    Raises:
        MissingInputError: the mosaic is missing (run the sentinel rules or use
            with_sentinel=False).
    """
    p = Path(path)
    if not p.exists():
        raise MissingInputError(
            f"Sentinel mosaic {p} is missing: run the sentinel rules for this AOI "
            "(snakemake --cores N) or use with_sentinel=False", p
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
    with open_mosaic(p) as ds:
        return {
            "months": [str(m) for m in ds["time"].values],
            "s2_count": np.asarray(ds["s2_count"].values, dtype=np.uint8),
            "s1_count": np.asarray(ds["s1_count"].values, dtype=np.uint8),
        }
