"""Drivers of the Sentinel rules (docs/sources.md): ``sentinel_init`` (per AOI),
``sentinel_month`` (per AOI x month) and ``sentinel`` (per AOI).

* :func:`init_aoi` plans the fetch blocks over the union of the AOI's footprints
  (:class:`pipeline.sentinel.blocks.BlockPlan`, ``Layout.sentinel_blocks``) and creates the
  write-optimised staging store ``Layout.mosaic_staging`` (kept across reruns when grid, months
  and chunking are unchanged; a newly created store drops the AOI's stale block ledgers).
* :func:`fetch_month` fetches one month's blocks into the staging store, resumably (block
  ledger under ``Layout.ledger_dir``), and writes ``Layout.month_summary``.
* :func:`summarize_aoi` aggregates the month summaries and consolidates the staging store into
  the read-optimised cube ``Layout.mosaic`` (chunks spanning all months and bands; atomic,
  byte-identical on rerun; root attr ``s2_product`` = {month: L2A | L1C | none}).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pipeline.aoi import AoiSpec
from pipeline.config import DaskConfig, SentinelConfig
from pipeline.errors import InputError
from pipeline.grid import AoiGrid
from pipeline.io.atomic import remove_tree
from pipeline.io.jsonfile import read_json, read_json_folder, write_json
from pipeline.io.manifest import tree_files, write_manifest
from pipeline.io.mosaic import (
    CHUNK_PX,
    StoreMismatchError,
    consolidate_mosaic,
    init_mosaic,
    remove_ledger,
    retime_mosaic,
)
from pipeline.io.parquet import read_geoparquet
from pipeline.layout import Layout
from pipeline.sentinel.blocks import BlockPlan, block_side_px, plan_blocks
from pipeline.sentinel.cost import EecuRates, eecu_estimate
from pipeline.sentinel.fetch import check_series
from pipeline.sentinel.model import FootprintCover, SentinelSource
from pipeline.sentinel.month import MonthJob, fetch_month_job
from pipeline.sentinel.sources import sensor_sources

log = logging.getLogger(__name__)

_TOTALS = ("requests", "pixels", "bytes", "retries", "seconds", "blocks_done", "blocks_skipped")


def init_aoi(aoi: AoiSpec, cfg: SentinelConfig, layout: Layout) -> dict[str, Any]:
    """Driver of rule ``sentinel_init``: block plan + staging store; returns the store marker.

    Raises:
        InputError: grid.json / footprints.parquet missing or inconsistent.
        ConfigError: ``sentinel.block_size_px`` not a multiple of the mosaic chunk.
    """
    name, months = aoi.name, aoi.months
    grid = AoiGrid.from_dict(read_json(layout.grid(name), "AOI grid",
                                       f"run rule footprints for AOI {name}"))
    fp = read_geoparquet(layout.footprints(name), what="footprint index",
                         fix=f"run rule footprints for AOI {name}")
    missing = {"fp_col0", "fp_row0", "fp_size_px"} - set(fp.columns)
    if missing or len(fp) == 0:
        raise InputError(
            f"{layout.footprints(name)} lacks footprint columns {sorted(missing)} or rows: rerun "
            f"rule footprints for AOI {name}"
        )
    size = int(fp["fp_size_px"].iloc[0])
    block_px = block_side_px(cfg)
    col0, row0 = fp["fp_col0"].to_numpy(), fp["fp_row0"].to_numpy()
    plan = BlockPlan(name, grid, block_px, CHUNK_PX, tuple(plan_blocks(
        grid, col0, row0, size, block_px, chunk_px=CHUNK_PX)),
        FootprintCover.of(col0, row0, size))
    staging = layout.mosaic_staging(name)
    _prepare_store(aoi, grid, layout)
    write_json(layout.sentinel_blocks(name), plan.to_dict())
    pixels = plan.n_pixels
    sources = sensor_sources(cfg, aoi.sentinel_archive)
    marker = {
        "aoi": name, "store": str(staging), "cube": str(layout.mosaic(name)), "months": months,
        "chunk_px": CHUNK_PX, "grid": grid.to_dict(), "n_blocks": len(plan.blocks),
        "block_pixels": pixels, "grid_pixels": grid.width * grid.height, "footprints": len(fp),
        "footprint_px": size, "sources": sources,
    }
    log.info("%s: S2 from %s; S1 from %s", name, sources["s2"], sources["s1"] or "nowhere")
    if sources["s1"] is None:
        log.warning("%s: no Sentinel-1 source is configured (sentinel.stac.s1_catalog is null "
                    "and the catalogue has no calibrated S1): VV / VH will be NaN", name)
    if cfg.source == "gee":
        est = eecu_estimate(pixels, len(months), EecuRates.from_config(cfg))
        marker["gee_eecu_estimate"] = est
        log.info("%s: Earth Engine estimate %.2f EECU-hours (%s)", name, est["eecu_hours"],
                 est["model"])
    write_json(layout.mosaic_marker(name), marker)
    log.info("%s: %d blocks (%d px, %.0f%% of the %dx%d grid) x %d months -> %s", name,
             len(plan.blocks), pixels, 100.0 * pixels / (grid.width * grid.height), grid.width,
             grid.height, len(months), staging)
    return marker


def _prepare_store(aoi: AoiSpec, grid: AoiGrid, layout: Layout) -> None:
    """The AOI's staging store for ``aoi.months`` on ``grid``, whatever an earlier run left.

    A new store drops the block ledger (its markers would make month jobs skip blocks). After
    the AOI's dates changed on the same grid, the months it already holds are kept (data and
    ledger) and only the new months are fetched; after a grid change everything is refetched.
    Month summaries of months the AOI no longer has are removed.
    """
    name, months = aoi.name, aoi.months
    staging = layout.mosaic_staging(name)
    ledger_root = layout.ledger_dir(name, months[0]).parent
    try:
        if init_mosaic(staging, grid, months, chunk_px=CHUNK_PX, aoi=name):
            remove_ledger(ledger_root)
    except StoreMismatchError as exc:
        old_months = list(exc.attrs.get("months", []))
        same_grid = (exc.attrs.get("grid") == grid.to_dict()
                     and exc.attrs.get("chunk_px") == CHUNK_PX)
        if same_grid:
            kept = retime_mosaic(staging, grid, months, CHUNK_PX, name)
            for m in old_months:
                if m not in kept:
                    remove_ledger(layout.ledger_dir(name, m))
            log.info("%s: months changed (%s..%s -> %s..%s): kept %d fetched months, %d to "
                     "fetch", name, old_months[0] if old_months else "-",
                     old_months[-1] if old_months else "-", months[0], months[-1], len(kept),
                     len(months) - len(kept))
        else:
            init_mosaic(staging, grid, months, chunk_px=CHUNK_PX, aoi=name, overwrite=True)
            remove_ledger(ledger_root)
            log.info("%s: the AOI grid changed: the staging store was rebuilt (every month is "
                     "fetched again)", name)
    for stale in set(read_json_folder(layout.month_summary(name, months[0]).parent)) - set(months):
        remove_tree(layout.month_summary(name, stale))


def fetch_month(
    aoi: AoiSpec,
    month: str,
    cfg: SentinelConfig,
    layout: Layout,
    threads: int = 1,
    source: SentinelSource | None = None,
    dask: DaskConfig | None = None,
) -> dict[str, Any]:
    """Driver of rule ``sentinel_month``: fetch one AOI-month; returns the month summary.

    Args:
        aoi: the AOI (``sentinel_archive`` for the local source or a static catalogue).
        month: ``YYYY-MM``, one of ``aoi.months``.
        cfg: the ``sentinel`` section, execution settings included.
        layout: output layout (reads the block plan, writes the staging store and summary).
        threads: the job's threads.
        source: a ready source (tests); None builds the configured one.
        dask: the ``dask`` section; the month-fetch path
            (:func:`pipeline.sentinel.month.fetch_month_job`) decides concurrency and dask.
    """
    name = aoi.name
    plan = BlockPlan.from_dict(read_json(layout.sentinel_blocks(name), "block plan",
                                         f"run rule sentinel_init for AOI {name}"))
    job = MonthJob(name, month, plan.grid, tuple(plan.blocks), layout.mosaic_staging(name),
                   layout.ledger_dir(name, month), layout.month_summary(name, month),
                   aoi.sentinel_archive, f"AOI {name}", plan.cover)
    summary = fetch_month_job(job, cfg, threads=threads, dask=dask, source=source)
    log.info("%s %s: %d blocks fetched, %d resumed, product %s, %d S2 / %d S1 scenes, %.1f s",
             name, month, summary["blocks_done"], summary["blocks_skipped"],
             summary["s2_product"], summary["n_scenes"]["s2"], summary["n_scenes"]["s1"],
             summary["seconds"])
    return summary


def summarize_aoi(aoi: AoiSpec, layout: Layout, allow_empty_series: bool = False
                  ) -> dict[str, Any]:
    """Driver of rule ``sentinel``: aggregate the month summaries and build the cube.

    Raises:
        SourceError: the S2 or S1 series is empty for a reason other than nothing acquired
            (:func:`pipeline.sentinel.fetch.check_series`; ``sentinel.allow_empty_series``).
    """
    name, months = aoi.name, aoi.months
    per = {m: read_json(layout.month_summary(name, m), "month summary",
                        f"run rule sentinel_month for AOI {name} month {m}") for m in months}
    empty_series = check_series(f"AOI {name}", per, allow_empty_series)
    totals = {k: sum(float(s.get(k, 0) or 0) for s in per.values()) for k in _TOTALS}
    products = {m: (s.get("s2_product") or "none") for m, s in per.items()}
    summary: dict[str, Any] = {
        "aoi": name,
        "store": str(layout.mosaic(name)),
        "staging": str(layout.mosaic_staging(name)),
        "months": months,
        "totals": {k: (round(v, 3) if k == "seconds" else int(v)) for k, v in totals.items()},
        "s2_product": products,
        "months_without_s2": [m for m, p in products.items() if p == "none"],
        "months_without_s1": [m for m, s in per.items() if not s.get("n_scenes", {}).get("s1")],
        # sensors without one observed pixel in any month: {sensor: {month: cause}}
        "empty_series": empty_series,
        "per_month": per,
    }
    recipes = {json.dumps(s.get("recipe"), sort_keys=True) for s in per.values()}
    if len(recipes) > 1:
        raise InputError(
            f"AOI {name}: the month summaries under {layout.month_summary(name, months[0]).parent} "
            "were fetched with different compositing recipes (config sentinel.*): rerun rule "
            f"sentinel_month for AOI {name} with the current config"
        )
    recipe = per[months[0]].get("recipe") if months else None
    summary["recipe"] = recipe
    cube = consolidate_mosaic(layout.mosaic_staging(name), layout.mosaic(name), products,
                              extra_attrs={"recipe": recipe} if recipe else None)
    summary["cube"] = {"chunks": cube["chunks"], "bytes": cube["bytes"]}
    write_manifest(layout.manifest(name, "sentinel"), layout.root, "sentinel",
                   tree_files(layout.mosaic(name)))
    write_json(layout.sentinel_summary(name), summary)
    log.info("%s: %d months, %d requests, %.1f s; no S2 in %s", name, len(months),
             summary["totals"]["requests"], summary["totals"]["seconds"],
             summary["months_without_s2"] or "none")
    return summary
