"""Stage `expand_sentinel` (one job per group for ``init``, per group x month for ``month``):
monthly Sentinel-1/2 composites of an expansion group, through the backbone's driver.

``init`` creates the group's write-optimised staging store ``expand/sentinel/<group>/staging.zarr``
(time axis = union of its samples' months; a new store drops stale block ledgers) and writes the
marker ``Layout.expand_mosaic_ready``; ``expand_stats`` consolidates it into the read-optimised
cube ``expand/sentinel/<group>.zarr``. ``month``
plans the blocks covering the footprints of the samples active that month
(:func:`pipeline.expand.plan.blocks_for_month`) and runs
:func:`pipeline.sentinel.run_month` with the configured source (resumable via the ledger).
"""


import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import ExpandConfig, SentinelConfig, parse_section
from pipeline.errors import ConfigError
from pipeline.expand.plan import blocks_for_month
from pipeline.grid import AoiGrid
from pipeline.io import read_geoparquet, read_json, write_json
from pipeline.io.mosaic import DEFAULT_CHUNK_PX, init_mosaic, remove_ledger
from pipeline.layout import Layout
from pipeline.sentinel import run_month as drive_month
from pipeline.sources.base import Recipe, SentinelSource

log = logging.getLogger("pipeline.stages.expand_sentinel")


def make_source(sentinel: SentinelConfig, expand: ExpandConfig) -> SentinelSource:
    """The configured source: ``local`` (``expand.sentinel_archive``) or ``gee``.

    Raises:
        ConfigError: local without an archive, or an unsupported source.
    """
    if sentinel.source == "local":
        if not expand.sentinel_archive:
            raise ConfigError(
                "sentinel.source is 'local' but expand.sentinel_archive is not set: point it at "
                "a scene archive (layout in pipeline/sources/local.py) or use sentinel.source: gee"
            )
        from pipeline.sources.local import LocalSource

        return LocalSource(expand.sentinel_archive)
    if sentinel.source == "gee":
        from pipeline.sources.gee import GeeSource

        return GeeSource.from_config(sentinel)
    raise ConfigError(f"sentinel.source {sentinel.source!r} is not supported for expansions: "
                      "use 'local' or 'gee'")


def _grid(layout: Layout, group: str) -> tuple[AoiGrid, list[str]]:
    doc = read_json(layout.expand_layout().grid(group))
    return AoiGrid.from_dict(doc), list(doc["months"])


def run_init(group: str, layout: Layout, chunk_px: int = DEFAULT_CHUNK_PX) -> Path:
    """Create (or keep, when it matches) the group's mosaic store; write the ready marker."""
    grid, months = _grid(layout, group)
    xl = layout.expand_layout()
    store = xl.mosaic_staging(group)
    if init_mosaic(store, grid, months, chunk_px=chunk_px, aoi=group):
        remove_ledger(xl.ledger_dir(group, months[0]).parent)
    marker = layout.expand_mosaic_ready(group)
    write_json(marker, {"group": group, "store": str(store), "grid": grid.to_dict(),
                        "months": months, "chunk_px": chunk_px})
    return marker


def run_month(
    group: str,
    month: str,
    sentinel: SentinelConfig,
    expand: ExpandConfig,
    block_px: int,
    layout: Layout,
    source: SentinelSource | None = None,
    chunk_px: int = DEFAULT_CHUNK_PX,
    threads: int = 1,
) -> dict[str, Any]:
    """Fetch one (group, month) into the group mosaic; returns the month summary.

    Raises:
        ConfigError: source misconfigured. SourceError / QuotaExhaustedError: from the driver
            (finished blocks are kept; a rerun resumes).
    """
    xl = layout.expand_layout()
    grid, _ = _grid(layout, group)
    if not layout.expand_mosaic_ready(group).exists():
        run_init(group, layout, chunk_px)
    t = read_geoparquet(xl.footprints(group))
    blocks = blocks_for_month(
        grid, t["fp_col0"].to_numpy(np.int64), t["fp_row0"].to_numpy(np.int64),
        t["fp_size_px"].to_numpy(np.int64), t["month_first"].to_numpy(str),
        t["month_last"].to_numpy(str), month, block_px, chunk_px,
    )
    own = source is None
    src = make_source(sentinel, expand) if own else source
    try:
        summary = drive_month(
            src, group, grid, blocks, month, Recipe.from_config(sentinel), xl.mosaic_staging(group),
            xl.ledger_dir(group, month),
            concurrency=sentinel.gee.concurrency if sentinel.source == "gee" else max(1, threads),
            summary_path=xl.month_summary(group, month),
        )
    finally:
        if own:
            src.close()
    log.info("%s %s: %d blocks (%d fetched, %d resumed), %d requests, %d px", group, month,
             summary["blocks"], summary["blocks_done"], summary["blocks_skipped"],
             summary["requests"], summary["pixels"])
    return summary


def _main(smk: Any) -> None:
    layout = Layout(Path(smk.params.root))
    if smk.params.mode == "init":
        run_init(smk.wildcards.aoi, layout)
    else:
        run_month(
            smk.wildcards.aoi, smk.wildcards.month,
            parse_section("sentinel", dict(smk.params.sentinel)),
            parse_section("expand", dict(smk.params.cfg)),
            int(smk.params.block_px), layout, threads=int(smk.threads),
        )


if __name__ == "__main__":
    from stages._common import smk_main

    smk_main(snakemake, _main)  # type: ignore[name-defined]  # noqa: F821
