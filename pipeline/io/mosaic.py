"""The AOI Sentinel mosaic: one Zarr (v3) store per AOI, written block by block.

Store ``sentinel/<aoi>.zarr`` (created once by :func:`init_mosaic`, rule ``sentinel_init``)::

    s2         (time, band_s2, y, x) uint16  reflectance * 10000, nodata (fill) 65535;
                                             CF ``scale_factor`` 1e-4 so xarray decodes to
                                             float reflectance with NaN
    s1         (time, band_s1, y, x) float32 backscatter dB, NaN = no observation
    s2_count   (time, y, x)          uint8   clear S2 observations in the month (0 = none)
    s1_count   (time, y, x)          uint8   S1 observations in the month (0 = none)
    s2_product (time,)               uint8   0 = none, 1 = L1C, 2 = L2A (per month)
    coords     time ("YYYY-MM" str), band_s2 / band_s1 (names), x / y (cell centres, m),
               wavelength_s2_nm (band_s2), spatial_ref (CRS + GeoTransform, rioxarray style)
    attrs      grid (AoiGrid dict), chunk_px, wavelengths, s2_product {month: L2A|L1C|none}
               (set by :func:`finalize_mosaic` once every month is done)

Chunks are ``(1, all bands, chunk_px, chunk_px)``: one month, one spatial tile. Blocks written by
:func:`write_block` must start on a chunk boundary and span whole chunks (or end at the grid
edge), so two blocks -- in two threads or two month jobs -- never write the same chunk file:
no locks are needed. Unwritten chunks read as their fill value (no data, count 0).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.composite import S2_NODATA_U16, reflectance_to_u16, u16_to_reflectance
from pipeline.errors import GridError, InputError
from pipeline.grid import AoiGrid
from pipeline.sources.base import (
    S1_BANDS,
    S1_WAVELENGTH_NM,
    S2_BANDS,
    S2_WAVELENGTHS_NM,
    Block,
    BlockResult,
)

DEFAULT_CHUNK_PX: int = 64
PRODUCT_CODES: dict[str | None, int] = {None: 0, "none": 0, "L1C": 1, "L2A": 2}
PRODUCT_NAMES: dict[int, str] = {0: "none", 1: "L1C", 2: "L2A"}


def _coords(grid: AoiGrid) -> tuple[np.ndarray, np.ndarray]:
    x = grid.x0 + (np.arange(grid.width) + 0.5) * grid.res_m
    y = grid.y0 - (np.arange(grid.height) + 0.5) * grid.res_m
    return x, y


def init_mosaic(
    path: str | Path,
    grid: AoiGrid,
    months: Sequence[str],
    chunk_px: int = DEFAULT_CHUNK_PX,
    aoi: str = "",
    overwrite: bool = False,
) -> None:
    """Create the (empty) mosaic store for ``grid`` x ``months``; metadata only, no data chunks.

    Args:
        path: the ``.zarr`` directory (written atomically: temp dir + rename).
        grid: the AOI grid (CRS ``grid.crs``, 10 m pixels).
        months: ``YYYY-MM`` strings, in order (the time axis).
        chunk_px: spatial chunk side (px); blocks must align to it.
        aoi: AOI name (attrs, messages).
        overwrite: replace an existing store (default: keep it if it matches, else error).

    Raises:
        InputError: an existing store was made for another grid / months / chunking.
    """
    import dask.array as da
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr

    from pipeline.io import atomic_path

    p = Path(path)
    if p.exists() and not overwrite:
        attrs = _root_attrs(p)
        if (
            attrs.get("grid") == grid.to_dict()
            and attrs.get("months") == list(months)
            and attrs.get("chunk_px") == chunk_px
        ):
            return
        raise InputError(
            f"mosaic {p} exists but was made for another grid/months/chunking: delete it "
            "(and the sentinel/<aoi>/ ledger) to rebuild"
        )
    T, H, W = len(months), grid.height, grid.width
    c = chunk_px
    x, y = _coords(grid)
    nb2, nb1 = len(S2_BANDS), len(S1_BANDS)
    ds = xr.Dataset(
        {
            "s2": (
                ("time", "band_s2", "y", "x"),
                da.full((T, nb2, H, W), S2_NODATA_U16, dtype=np.uint16, chunks=(1, nb2, c, c)),
            ),
            "s1": (
                ("time", "band_s1", "y", "x"),
                da.full((T, nb1, H, W), np.nan, dtype=np.float32, chunks=(1, nb1, c, c)),
            ),
            "s2_count": (("time", "y", "x"), da.zeros((T, H, W), dtype=np.uint8, chunks=(1, c, c))),
            "s1_count": (("time", "y", "x"), da.zeros((T, H, W), dtype=np.uint8, chunks=(1, c, c))),
            "s2_product": (("time",), da.zeros((T,), dtype=np.uint8, chunks=(1,))),
        },
        coords={
            "time": np.array(list(months), dtype=object),
            "band_s2": np.array(S2_BANDS, dtype=object),
            "band_s1": np.array(S1_BANDS, dtype=object),
            "wavelength_s2_nm": ("band_s2", np.array(S2_WAVELENGTHS_NM, np.float64)),
            "x": x,
            "y": y,
        },
        attrs={
            "title": f"Monthly Sentinel-2/Sentinel-1 composites of AOI {aoi}".strip(),
            "aoi": aoi,
            "grid": grid.to_dict(),
            "crs": grid.crs,
            "months": list(months),
            "chunk_px": chunk_px,
            "wavelengths_s2_nm": list(S2_WAVELENGTHS_NM),
            "wavelength_s1_nm": S1_WAVELENGTH_NM,
            "s2_product": {},
            "conventions": "CF-1.8; s2 = reflectance*10000 (uint16, 65535 = no data); s1 dB",
        },
    )
    ds["s2"].attrs.update(
        long_name="Sentinel-2 monthly mean of clear observations", units="1"
    )
    ds["s1"].attrs.update(long_name="Sentinel-1 monthly mean backscatter", units="dB")
    ds["s2_count"].attrs.update(long_name="clear Sentinel-2 observations in the month")
    ds["s1_count"].attrs.update(long_name="Sentinel-1 observations in the month")
    ds["s2_product"].attrs.update(
        long_name="Sentinel-2 product level of the month",
        flag_values=[0, 1, 2],
        flag_meanings="none L1C L2A",
    )
    ds["x"].attrs.update(units="m", standard_name="projection_x_coordinate")
    ds["y"].attrs.update(units="m", standard_name="projection_y_coordinate")
    ds = ds.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    for v in ("s2", "s1", "s2_count", "s1_count"):
        ds[v].attrs["grid_mapping"] = "spatial_ref"
    encoding: dict[str, dict[str, Any]] = {
        "s2": {
            "_FillValue": S2_NODATA_U16,
            "fill_value": S2_NODATA_U16,
            "scale_factor": np.float32(1e-4),
            "dtype": "uint16",
        },
        "s1": {"_FillValue": np.float32(np.nan), "fill_value": np.float32(np.nan)},
        # counts / product codes: 0 is a value, not no data -> no CF masking
        "s2_count": {"_FillValue": None, "fill_value": 0},
        "s1_count": {"_FillValue": None, "fill_value": 0},
        "s2_product": {"_FillValue": None, "fill_value": 0},
    }
    with atomic_path(p) as tmp:
        ds.to_zarr(tmp, mode="w", compute=False, zarr_format=3, consolidated=False,
                   encoding=encoding)
    _open_arrays.cache_clear()  # a re-created store must not be served from stale handles


def _root_attrs(path: Path) -> dict[str, Any]:
    import zarr

    try:
        return dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception as exc:  # zarr raises several types for a broken store
        raise InputError(
            f"mosaic {path} cannot be opened ({exc}): delete it and rerun rule sentinel_init"
        ) from None


@functools.lru_cache(maxsize=8)
def _open_arrays(path: str, mode: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import zarr

    try:
        g = zarr.open_group(path, mode=mode)
    except Exception as exc:
        raise InputError(
            f"mosaic {path} cannot be opened ({exc}): run rule sentinel_init for this AOI"
        ) from None
    arrays = {k: g[k] for k in ("s2", "s1", "s2_count", "s1_count", "s2_product")}
    return arrays, dict(g.attrs)


def write_block(
    path: str | Path, month_index: int, block: Block, result: BlockResult
) -> None:
    """Write one block's monthly composites into time slice ``month_index`` of the store.

    The block must be chunk-aligned (see module doc). Values: ``result.s2`` float reflectance
    (NaN -> 65535), ``result.s1`` dB (NaN kept), counts uint8; ``meta["s2_product"]`` is
    recorded in the ``s2_product`` array.

    Raises:
        GridError: a block that is not chunk-aligned or lies outside the grid.
    """
    arrays, attrs = _open_arrays(str(Path(path)), "r+")
    g = attrs["grid"]
    W, H, c = int(g["width"]), int(g["height"]), int(attrs["chunk_px"])
    b = block
    if not (0 <= month_index < arrays["s2"].shape[0]):
        raise GridError(f"{path}: month index {month_index} outside the store's time axis")
    if b.col0 < 0 or b.row0 < 0 or b.col0 + b.width > W or b.row0 + b.height > H:
        raise GridError(f"{path}: block {b.id} lies outside the {W}x{H} px AOI grid")
    aligned = (
        b.col0 % c == 0
        and b.row0 % c == 0
        and (b.width % c == 0 or b.col0 + b.width == W)
        and (b.height % c == 0 or b.row0 + b.height == H)
    )
    if not aligned:
        raise GridError(
            f"{path}: block {b.id} is not aligned to the {c} px mosaic chunks; plan blocks with "
            f"pipeline.blocks using chunk_px={c}"
        )
    shape = (b.height, b.width)
    if result.s2.shape[1:] != shape or result.s1.shape[1:] != shape:
        raise GridError(
            f"block {b.id}: result arrays {result.s2.shape}/{result.s1.shape} do not match the "
            f"block size {shape}"
        )
    ys, xs = slice(b.row0, b.row0 + b.height), slice(b.col0, b.col0 + b.width)
    t = month_index
    arrays["s2"][t, :, ys, xs] = reflectance_to_u16(result.s2)
    arrays["s1"][t, :, ys, xs] = np.asarray(result.s1, np.float32)
    arrays["s2_count"][t, ys, xs] = np.asarray(result.s2_count, np.uint8)
    arrays["s1_count"][t, ys, xs] = np.asarray(result.s1_count, np.uint8)


def write_month_product(path: str | Path, month_index: int, product: str | None) -> None:
    """Record the S2 product level (``L2A`` / ``L1C`` / None) of one month (own chunk)."""
    arrays, _ = _open_arrays(str(Path(path)), "r+")
    arrays["s2_product"][month_index] = PRODUCT_CODES.get(product, 0)


def finalize_mosaic(path: str | Path, s2_product: dict[str, str]) -> None:
    """Store the per-month product levels as the root attr ``s2_product`` (single writer)."""
    import zarr

    g = zarr.open_group(str(Path(path)), mode="r+")
    g.attrs["s2_product"] = dict(s2_product)
    _open_arrays.cache_clear()


def mosaic_months(path: str | Path) -> list[str]:
    """The store's time axis (``YYYY-MM`` strings)."""
    return list(_root_attrs(Path(path))["months"])


def read_footprint_cube(
    path: str | Path, col0: int, row0: int, size: int | tuple[int, int]
) -> dict[str, Any]:
    """Read a window of the mosaic (e.g. one footprint) for every month.

    Args:
        path: the ``.zarr`` store.
        col0, row0: upper-left pixel of the window in the AOI grid.
        size: side (px), or (height, width).

    Returns:
        dict with ``x`` (T, 14, H, W) float32: 12 S2 reflectances then S1 VV, VH dB, NaN = no
        data; ``counts`` (T, 2, H, W) uint8 (S2 clear, S1); ``months`` (list of ``YYYY-MM``);
        ``bands`` (the 14 names).

    Raises:
        GridError: the window leaves the AOI grid.
    """
    arrays, attrs = _open_arrays(str(Path(path)), "r")
    h, w = (size, size) if isinstance(size, int | np.integer) else (int(size[0]), int(size[1]))
    g = attrs["grid"]
    if col0 < 0 or row0 < 0 or col0 + w > int(g["width"]) or row0 + h > int(g["height"]):
        raise GridError(
            f"{path}: window col0={col0} row0={row0} size={h}x{w} leaves the "
            f"{g['width']}x{g['height']} px AOI grid: the footprints and the mosaic disagree, "
            "rerun rule sentinel_init"
        )
    ys, xs = slice(row0, row0 + h), slice(col0, col0 + w)
    s2 = u16_to_reflectance(arrays["s2"][:, :, ys, xs])
    s1 = np.asarray(arrays["s1"][:, :, ys, xs], np.float32)
    counts = np.stack(
        [arrays["s2_count"][:, ys, xs], arrays["s1_count"][:, ys, xs]], axis=1
    ).astype(np.uint8)
    return {
        "x": np.concatenate([s2, s1], axis=1),
        "counts": counts,
        "months": list(attrs["months"]),
        "bands": list(S2_BANDS + S1_BANDS),
    }


def open_mosaic(path: str | Path) -> Any:
    """Open the store lazily as an :class:`xarray.Dataset` (s2 decoded to float reflectance
    with NaN; CRS available via ``ds.rio.crs`` after ``import rioxarray``)."""
    import xarray as xr

    p = Path(path)
    if not p.exists():
        raise InputError(f"mosaic {p} does not exist: run the sentinel rules for this AOI")
    return xr.open_zarr(
        p, consolidated=False, decode_coords="all", use_zarr_fill_value_as_mask=False
    )
