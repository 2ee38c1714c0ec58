"""Decoding of computePixels NPY responses into a :class:`BlockResult` (no ``ee``)."""

from __future__ import annotations

import io

import numpy as np

from pipeline.bands import S1_BANDS, S2_BANDS
from pipeline.sentinel.model import BlockResult
from pipeline.sentinel.sources.gee.recipe import NODATA_FILL, S1_COUNT, S2_COUNT


def decode_npy(data: bytes, bands: list[str], height: int, width: int) -> dict[str, np.ndarray]:
    """Decode a computePixels NPY body into {band: (height, width) float64 array}.

    Tolerant of: structured arrays (one field per band) of any numeric dtypes; numpy masked
    fields (``<band>_mask`` fields or a mask encoded as NaN); plain (h, w, nbands) or
    (nbands, h, w) arrays in ``bands`` order. Masked values become NaN.

    Raises:
        ValueError: truncated or undecodable body, or wrong shape / missing band.
    """
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    out: dict[str, np.ndarray] = {}
    if arr.dtype.names:
        if arr.shape != (height, width):
            raise ValueError(f"response shape {arr.shape} != {(height, width)}")
        names = set(arr.dtype.names)
        for b in bands:
            if b not in names:
                raise ValueError(f"band {b!r} missing from response fields {sorted(names)}")
            v = np.asarray(arr[b], dtype=np.float64)
            if f"{b}_mask" in names:
                v = np.where(np.asarray(arr[f"{b}_mask"]) != 0, v, np.nan)
            out[b] = v
        return out
    if arr.ndim == 3 and arr.shape == (height, width, len(bands)):
        return {b: arr[..., i].astype(np.float64) for i, b in enumerate(bands)}
    if arr.ndim == 3 and arr.shape == (len(bands), height, width):
        return {b: arr[i].astype(np.float64) for i, b in enumerate(bands)}
    raise ValueError(f"unexpected response array dtype {arr.dtype} shape {arr.shape}")


def to_block_result(
    fields: dict[str, np.ndarray], height: int, width: int
) -> BlockResult:
    """Turn decoded fields into a BlockResult. A value is data only where its own band is not
    :data:`~pipeline.sentinel.sources.gee.recipe.NODATA_FILL` (per-band validity: a band masked
    in every observation of the month, such as B1 at a granule edge or VH of a VV-only pass, is
    NaN while the other bands keep their values) and the count is > 0."""
    res = BlockResult.empty(height, width)
    if S2_COUNT in fields:
        res.s2, res.s2_count = _counted(fields, S2_COUNT, S2_BANDS)
    if S1_COUNT in fields:
        res.s1, res.s1_count = _counted(fields, S1_COUNT, S1_BANDS)
    return res


def _counted(fields: dict[str, np.ndarray], count_band: str, bands: tuple[str, ...]
             ) -> tuple[np.ndarray, np.ndarray]:
    """(values float32 (len(bands), h, w), NaN where the count is 0 or the band is
    :data:`NODATA_FILL`; count uint8 (h, w))."""
    count = np.clip(np.nan_to_num(fields[count_band], nan=0.0), 0, 255).astype(np.uint8)
    ok = count > 0
    values = np.stack([np.where(ok & np.isfinite(fields[b]) & (fields[b] != NODATA_FILL),
                                fields[b], np.nan)
                       for b in bands]).astype(np.float32)
    return values, count


