"""Per-sample months, per (group, month) blocks and the request plan of an expansion (pure).

Months: each sample needs every calendar month from its first date's month to its last date's
month inclusive (``month_first`` .. ``month_last`` in the index; a sample shorter than a month
still gets its month). A group's mosaic time axis is the sorted union of its samples' months
(it may have gaps). In month ``m`` only the samples active in ``m`` need pixels, so the blocks
of (group, m) cover the union of *their* footprints (:func:`blocks_for_month`).

Plan numbers (per group-month, summed):

* ``requests``: one ``computePixels`` per (block, month) -- the GEE source fetches S2 and S1
  of a block in one request -- plus one scene-count query (``value:compute``) per group-month;
* ``pixels``: requested grid pixels (block areas) per month, summed = pixel-months;
* ``ee_cost_proxy``: pixel-months x 14 bands (12 S2 + VV, VH) = band-pixel-months, the
  quantity EECU time scales with for a fixed recipe; ``bytes_est``: pixel-months x
  :data:`pipeline.sentinel.blocks.REQUEST_BYTES_PER_PX`;
* ``naive``: the same numbers when every footprint is fetched on its own for each of its
  months (footprints larger than a block take ``ceil(side / block)^2`` requests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.aoi import month_range
from pipeline.bands import ALL_BANDS
from pipeline.grid import AoiGrid
from pipeline.io.mosaic import CHUNK_PX
from pipeline.sentinel.blocks import REQUEST_BYTES_PER_PX, plan_blocks
from pipeline.sentinel.model import Block


def months_of(first: str, last: str) -> list[str]:
    """``YYYY-MM`` months from ``first`` to ``last`` inclusive."""
    import datetime as dt

    return month_range(dt.date.fromisoformat(first + "-01"), dt.date.fromisoformat(last + "-01"))


def group_months(month_first: Sequence[str], month_last: Sequence[str]) -> list[str]:
    """Sorted union of the samples' month ranges (the group mosaic's time axis)."""
    out: set[str] = set()
    for a, b in {(str(a), str(b)) for a, b in zip(month_first, month_last, strict=True)}:
        out.update(months_of(a, b))
    return sorted(out)


def active(month_first: np.ndarray, month_last: np.ndarray, month: str) -> np.ndarray:
    """(N,) bool: samples whose month range contains ``month``."""
    mf = np.asarray(month_first, dtype=str)
    ml = np.asarray(month_last, dtype=str)
    return (mf <= month) & (month <= ml)


def blocks_for_month(
    grid: AoiGrid,
    col0: np.ndarray,
    row0: np.ndarray,
    size_px: np.ndarray,
    month_first: np.ndarray,
    month_last: np.ndarray,
    month: str,
    block_px: int,
    chunk_px: int = CHUNK_PX,
) -> list[Block]:
    """Blocks of (group, ``month``): :func:`pipeline.sentinel.blocks.plan_blocks` over the
    footprints of
    the samples active in ``month`` (per-sample footprint sizes allowed)."""
    act = active(month_first, month_last, month)
    if not act.any():
        return []
    sizes = np.asarray(size_px, np.int64)[act]
    size: Any = int(sizes[0]) if (sizes == sizes[0]).all() else sizes
    return plan_blocks(grid, np.asarray(col0)[act], np.asarray(row0)[act], size, block_px,
                       chunk_px)


def plan_group(
    name: str,
    grid: AoiGrid,
    table: Any,
    block_px: int,
    chunk_px: int = CHUNK_PX,
) -> dict[str, Any]:
    """Plan of one group: per month the active samples, blocks and requested pixels; totals;
    naive per-footprint numbers.

    Args:
        table: the group's rows with ``fp_col0``, ``fp_row0``, ``fp_size_px``,
            ``month_first``, ``month_last``, ``n_months``.
    """
    from pipeline.grid import union_pixel_count

    c0 = table["fp_col0"].to_numpy(np.int64)
    r0 = table["fp_row0"].to_numpy(np.int64)
    sz = table["fp_size_px"].to_numpy(np.int64)
    mf = table["month_first"].to_numpy(str)
    ml = table["month_last"].to_numpy(str)
    months = group_months(mf, ml)
    cache: dict[bytes, tuple[int, int]] = {}
    per_month: dict[str, dict[str, int]] = {}
    for m in months:
        act = active(mf, ml, m)
        key = np.packbits(act).tobytes()
        if key not in cache:
            blocks = blocks_for_month(grid, c0, r0, sz, mf, ml, m, block_px, chunk_px)
            cache[key] = (len(blocks), int(sum(b.n_pixels for b in blocks)))
        nb, px = cache[key]
        per_month[m] = {"samples": int(act.sum()), "blocks": nb, "pixels": px}
    union_px = union_pixel_count(c0, r0, sz, grid)
    n_months = table["n_months"].to_numpy(np.int64)
    per_fp_req = np.ceil(sz / block_px).astype(np.int64) ** 2
    pixel_months = sum(v["pixels"] for v in per_month.values())
    naive_pm = int((sz.astype(np.int64) ** 2 * n_months).sum())
    return {
        "group": name,
        "grid": grid.to_dict(),
        "n_samples": len(table),
        "months": months,
        "footprint_size_px": sorted({int(s) for s in sz}),
        "union_px": union_px,
        "per_month": per_month,
        **_numbers(sum(v["blocks"] for v in per_month.values()), len(months), pixel_months),
        "naive": _numbers(int((per_fp_req * n_months).sum()), 0, naive_pm),
    }


def _numbers(block_requests: int, count_queries: int, pixel_months: int) -> dict[str, int]:
    return {
        "requests": int(block_requests + count_queries),
        "pixel_requests": int(block_requests),
        "count_queries": int(count_queries),
        "pixel_months": int(pixel_months),
        "ee_cost_proxy": int(pixel_months * len(ALL_BANDS)),
        "bytes_est": int(pixel_months * REQUEST_BYTES_PER_PX),
    }


def plan_totals(groups: Sequence[dict[str, Any]], block_px: int) -> dict[str, Any]:
    """Dataset totals of :func:`plan_group` results, with the naive/blocked ratios."""
    keys = ("requests", "pixel_requests", "count_queries", "pixel_months", "ee_cost_proxy",
            "bytes_est")
    tot = {k: int(sum(g[k] for g in groups)) for k in keys}
    naive = {k: int(sum(g["naive"][k] for g in groups)) for k in keys}
    return {
        "groups": len(groups),
        "samples": int(sum(g["n_samples"] for g in groups)),
        "group_months": int(sum(len(g["months"]) for g in groups)),
        "block_px": int(block_px),
        "bands": list(ALL_BANDS),
        "ee_cost_proxy_unit": "band-pixel-months (requested 10 m pixels x months x 14 bands)",
        **tot,
        "naive": naive,
        "ratio_naive_over_blocked": {
            k: (round(naive[k] / tot[k], 3) if tot[k] else None)
            for k in ("pixel_requests", "pixel_months", "ee_cost_proxy")
        },
    }
