"""Drivers of the expansion rules (``expand.adapter``): monthly Sentinel-1/2 series around the
samples of another change dataset, through the same block plan, source factory, staging store
and ledger as the native AOIs.

* :func:`expand_index` (rule ``expand_index``, a checkpoint; one job per dataset): read the
  dataset, group and plan it. Writes under ``Layout.expand_dir()``: ``samples.parquet``
  (sample index, WGS84 geometry, group + footprint columns), per group
  ``aois/<group>/footprints.parquet``, ``grid.json`` and ``footprints.gpkg``, and
  ``plan.json`` (last). Nothing is fetched.
* :func:`expand_init` (per group): the group's staging store (time axis = union of its
  samples' months; a new store drops stale block ledgers) and the ready marker.
* :func:`expand_month` (per group x month): the blocks covering the footprints of the samples
  active that month (:func:`pipeline.expand.plan.blocks_for_month`) through
  :func:`pipeline.sentinel.fetch.run_month` (resumable via the ledger).
* :func:`expand_stats` (per dataset): consolidate every group's staging store into its cube
  ``expand/sentinel/<group>.zarr``; write ``expand/stats.json`` (per-band mean/std over every
  sample's footprint window in its own months, clear pixels only) and ``expand/summary.json``.
  With ``expand.copy_originals`` the original files are copied to
  ``expand/originals/<sample_id>/`` first.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from pipeline.bands import ALL_BANDS
from pipeline.config import DaskConfig, ExpandConfig, FootprintsConfig, SentinelConfig
from pipeline.dataset.stats import check_sentinel_inputs, sentinel_moments
from pipeline.errors import ConfigError
from pipeline.expand.adapters import build_sample_index
from pipeline.expand.build import FP_COLUMNS, Expansion, build_expansion
from pipeline.expand.datasets import read_samples
from pipeline.expand.plan import active, blocks_for_month, months_of
from pipeline.grid import AoiGrid, FootprintRule
from pipeline.io.files import copy_originals
from pipeline.io.jsonfile import read_json, write_json
from pipeline.io.mosaic import CHUNK_PX, consolidate_mosaic, init_mosaic, remove_ledger
from pipeline.io.mosaic_read import mosaic_months, read_footprint_cube
from pipeline.io.parquet import read_geoparquet, write_geoparquet
from pipeline.io.vector import write_footprints_vector
from pipeline.layout import Layout
from pipeline.sentinel.blocks import block_side_px
from pipeline.sentinel.fetch import check_series
from pipeline.sentinel.model import FootprintCover, SentinelSource
from pipeline.sentinel.month import MonthJob, fetch_month_job

log = logging.getLogger(__name__)

_SUM = ("requests", "pixels", "bytes", "retries", "blocks")


def expand_index(
    cfg: ExpandConfig, fp: FootprintsConfig, sentinel: SentinelConfig, layout: Layout,
    dataset: str,
) -> Expansion:
    """Driver of rule ``expand_index``: read the dataset named by ``cfg``, group and plan it,
    write the index outputs (block side from :func:`pipeline.sentinel.blocks.block_side_px`).

    Raises:
        ConfigError: no adapter / path.
        InputError: unreadable layout, missing dates, duplicate ids, no georeferencing.
    """
    if cfg.adapter is None:
        raise ConfigError("expand.adapter is not set: nothing to expand")
    index = build_sample_index(read_samples(cfg), dataset,
                               clip_to_sentinel=cfg.clip_to_sentinel)
    rule = footprint_rule(cfg, fp)
    exp = build_expansion(index, dataset, block_side_px(sentinel),
                          group_distance_m=cfg.group_distance_m,
                          max_group_extent_m=cfg.max_group_extent_m,
                          rule=rule)
    warnings_ = plan_warnings(exp.index, exp.plan["totals"], cfg)
    for w in warnings_:
        log.warning("%s: %s", dataset, w)
    xl = layout.expand_layout()
    for g, table in exp.tables.items():
        write_geoparquet(table, xl.footprints(g))
        write_json(xl.grid(g), exp.grid_docs[g])
        polys = gpd.GeoDataFrame(
            table[["patch_id", *FP_COLUMNS, "month_first", "month_last"]],
            geometry=shapely.from_wkb(table["fp_geometry_wkb"].to_numpy()),
            crs=exp.grids[g].crs,
        )
        shp = xl.footprints_shp_dir(g) if fp.export_shapefile else None
        write_footprints_vector(polys, xl.footprints_gpkg(g), shp, g)
    write_geoparquet(exp.index, layout.expand_samples())
    plan = {**exp.plan, "adapter": cfg.adapter, "path": cfg.path, "plan_only": cfg.plan_only,
            "footprint_mode": "extent" if rule.margin_m is not None else "scale",
            "warnings": warnings_}
    write_json(layout.expand_plan(), plan)
    t = exp.plan["totals"]
    log.info(
        "%s: %d samples in %d groups, %d group-months; blocked: %d requests, %d pixel-months; "
        "naive per footprint: %d requests, %d pixel-months (%.1fx)",
        dataset, t["samples"], t["groups"], t["group_months"], t["requests"], t["pixel_months"],
        t["naive"]["requests"], t["naive"]["pixel_months"],
        t["naive"]["pixel_months"] / max(1, t["pixel_months"]),
    )
    if cfg.plan_only:
        log.warning(
            "%s: plan only (expand.plan_only: true): wrote %s (samples, footprints, months, "
            "requests) and %s; nothing was fetched and no cube was built. Set "
            "expand.plan_only: false (with a Sentinel source) to build it", dataset,
            layout.expand_plan(), layout.expand_samples(),
        )
    return exp


#: Adapters whose samples are at Sentinel-like resolution or km-size (the 'auto' extent rule).
EXTENT_ADAPTERS = frozenset({"oscd", "spacenet7", "dynamicearthnet"})


def footprint_rule(cfg: Any, fp: Any) -> FootprintRule:
    """The expansion's footprint rule: the backbone's (``footprints``) scale rule, or the
    extent rule (sample + ``expand.footprint_margin_m``) per ``expand.footprint`` ('auto':
    extent for :data:`EXTENT_ADAPTERS`)."""
    import dataclasses

    rule = FootprintRule.from_config(fp)
    mode = cfg.footprint
    if mode == "auto":
        mode = "extent" if cfg.adapter in EXTENT_ADAPTERS else "scale"
    return dataclasses.replace(rule, margin_m=float(cfg.footprint_margin_m)) \
        if mode == "extent" else rule


def plan_warnings(index: Any, totals: dict[str, Any], cfg: Any) -> list[str]:
    """What the plan should say before any fetch: footprints much larger than their samples
    (area ratio above ``expand.max_footprint_area_ratio``), cubes above ``expand.max_cube_gb``."""
    import numpy as np

    out = []
    area = index["patch_w_px"].to_numpy(float) * index["patch_h_px"].to_numpy(float)
    ratio = index["fp_size_px"].to_numpy(float) ** 2 / np.maximum(area, 1e-9)
    big = ratio > cfg.max_footprint_area_ratio
    if big.any():
        worst = int(np.argmax(ratio))
        out.append(
            f"{int(big.sum())} of {len(index)} footprints exceed "
            f"{cfg.max_footprint_area_ratio:g}x their sample's area (largest: sample "
            f"{index['sample_id'].iloc[worst]!r}, {ratio[worst]:.0f}x, "
            f"{int(index['fp_size_px'].iloc[worst])} px): set expand.footprint: extent "
            "(sample + expand.footprint_margin_m) or footprints.size_m"
        )
    gb = float(totals.get("bytes_est", 0)) / 1e9
    if gb > cfg.max_cube_gb:
        out.append(f"the Sentinel cubes would hold about {gb:.1f} GB (more than "
                   f"expand.max_cube_gb = {cfg.max_cube_gb:g}): shrink the footprints or raise "
                   "the budget")
    return out


def _group_grid(layout: Layout, group: str) -> tuple[AoiGrid, list[str]]:
    doc = read_json(layout.expand_layout().grid(group), f"expansion group {group} grid",
                    "run rule expand_index")
    return AoiGrid.from_dict(doc), list(doc["months"])


def expand_init(group: str, layout: Layout) -> Path:
    """Driver of rule ``expand_sentinel_init``: create (or keep, when it matches) the group's
    staging store; write the ready marker."""
    grid, months = _group_grid(layout, group)
    xl = layout.expand_layout()
    store = xl.mosaic_staging(group)
    if init_mosaic(store, grid, months, chunk_px=CHUNK_PX, aoi=group):
        remove_ledger(xl.ledger_dir(group, months[0]).parent)
    marker = layout.expand_mosaic_ready(group)
    write_json(marker, {"group": group, "store": str(store), "grid": grid.to_dict(),
                        "months": months, "chunk_px": CHUNK_PX})
    return marker


def expand_month(
    group: str,
    month: str,
    sentinel: SentinelConfig,
    expand: ExpandConfig,
    layout: Layout,
    source: SentinelSource | None = None,
    threads: int = 1,
    dask: DaskConfig | None = None,
) -> dict[str, Any]:
    """Driver of rule ``expand_sentinel_month``: fetch one (group, month) into the group
    store through the same month-fetch path as the native AOIs
    (:func:`pipeline.sentinel.month.fetch_month_job`: the same concurrency and dask
    decisions); returns the month summary.

    Raises:
        ConfigError: source misconfigured. SourceError / QuotaExhaustedError: from the fetch
            (finished blocks are kept; a rerun resumes).
    """
    xl = layout.expand_layout()
    grid, _ = _group_grid(layout, group)
    if not layout.expand_mosaic_ready(group).exists():
        expand_init(group, layout)
    t = read_geoparquet(xl.footprints(group))
    col0, row0 = t["fp_col0"].to_numpy(np.int64), t["fp_row0"].to_numpy(np.int64)
    size, first, last = (t["fp_size_px"].to_numpy(np.int64), t["month_first"].to_numpy(str),
                         t["month_last"].to_numpy(str))
    blocks = blocks_for_month(grid, col0, row0, size, first, last, month,
                              block_side_px(sentinel, CHUNK_PX), CHUNK_PX)
    act = active(first, last, month)  # the samples whose series holds this month
    job = MonthJob(group, month, grid, tuple(blocks), xl.mosaic_staging(group),
                   xl.ledger_dir(group, month), xl.month_summary(group, month),
                   expand.sentinel_archive, "expand",
                   FootprintCover.of(col0[act], row0[act], size[act]))
    summary = fetch_month_job(job, sentinel, threads=threads, dask=dask, source=source,
                              progress=False)
    log.info("%s %s: %d blocks (%d fetched, %d resumed), %d requests, %d px", group, month,
             summary["blocks"], summary["blocks_done"], summary["blocks_skipped"],
             summary["requests"], summary["pixels"])
    return summary


def _windows(index: Any, layout: Layout, tile_px: int = 256) -> Iterator[dict[str, Any]]:
    """Footprint windows of every sample over its own months, read in tiles of at most
    ``tile_px`` px (memory stays flat for large footprints, e.g. 1536 px)."""
    xl = layout.expand_layout()
    for row in index.itertuples(index=False):
        want = set(months_of(row.month_first, row.month_last))
        c0, r0, n = int(row.fp_col0), int(row.fp_row0), int(row.fp_size_px)
        for dr in range(0, n, tile_px):
            for dc in range(0, n, tile_px):
                h, w = min(tile_px, n - dr), min(tile_px, n - dc)
                cube = read_footprint_cube(xl.mosaic(row.aoi), c0 + dc, r0 + dr, (h, w))
                t = [i for i, m in enumerate(cube["months"]) if m in want]
                yield {"x": cube["x"][t], "counts": cube["counts"][t]}


def expand_stats(cfg: ExpandConfig, layout: Layout, dataset: str,
                 allow_empty_series: bool = False) -> dict[str, Any]:
    """Driver of rule ``expand_stats``: stats.json and summary.json of the expansion; returns
    the summary.

    Raises:
        DatasetError: a group mosaic or month is missing (run the expand_sentinel jobs).
        SourceError: a group's S2 or S1 series is empty for a reason other than nothing
            acquired (:func:`pipeline.sentinel.fetch.check_series`,
            ``sentinel.allow_empty_series``).
    """
    xl = layout.expand_layout()
    index = read_geoparquet(layout.expand_samples())
    plan = read_json(layout.expand_plan())
    groups = {g["group"]: g for g in plan["groups"]}
    available = {}
    for g in groups:
        store = xl.mosaic_staging(g)
        available[g] = mosaic_months(store) if store.exists() else None
    check_sentinel_inputs({g: p["months"] for g, p in groups.items()}, available)
    gsum: dict[str, Any] = {}
    for g, p in groups.items():
        tot = dict.fromkeys(_SUM, 0)
        products = {}
        per = {m: read_json(xl.month_summary(g, m)) for m in p["months"]}
        for m, s in per.items():
            for k in _SUM:
                tot[k] += int(s.get(k, 0) or 0)
            products[m] = s.get("s2_product") or "none"
        empty = check_series(f"expansion {dataset} group {g}", per, allow_empty_series)
        consolidate_mosaic(xl.mosaic_staging(g), xl.mosaic(g), products)
        gsum[g] = {"samples": p["n_samples"], "months": p["months"], "grid": p["grid"],
                   "s2_product": products, "empty_series": empty, **tot}
    acc = sentinel_moments(_windows(index, layout), ALL_BANDS)
    stats = {"dataset": dataset, "samples": len(index), "sentinel": acc.as_dict(ALL_BANDS),
             "note": "clear pixels of every sample's footprint window over its own months"}
    write_json(xl.stats(), stats)
    copied = 0
    if cfg.copy_originals:
        copied = copy_originals(dict(zip(index["sample_id"], index["files"], strict=True)),
                                layout.expand_originals_dir())
    summary = {
        "dataset": dataset,
        "adapter": cfg.adapter,
        "path": cfg.path,
        "samples": len(index),
        "groups": gsum,
        "totals": {k: int(sum(v[k] for v in gsum.values())) for k in _SUM},
        "plan_totals": plan["totals"],
        "months_per_sample": {
            "min": int(index["n_months"].min()), "max": int(index["n_months"].max()),
        },
        "label_encodings": dict(Counter(x for x in index["label_encoding"] if x)),
        "originals": "copied" if cfg.copy_originals else "referenced",
        "originals_dir": str(layout.expand_originals_dir()) if cfg.copy_originals else None,
        "originals_copied_now": copied,
        "files_example": json.loads(index["files"].iloc[0]),
    }
    write_json(layout.expand_summary(), summary)
    log.info("%s: %d samples, %d groups, %d requests", dataset, len(index), len(gsum),
             summary["totals"]["requests"])
    return summary
