"""Stage ``sentinel_init`` (one job per AOI): plan the fetch blocks and create the mosaic store.

Inputs: ``Layout.grid(aoi)`` (grid.json) and ``Layout.footprints(aoi)`` (fp_col0 / fp_row0 /
fp_size_px). Block side: ``sentinel.block_size_px`` if set, else derived from
``sentinel.gee.max_block_bytes`` (gee) or 256 px (local). Outputs:
``Layout.sentinel_blocks(aoi)`` (the block plan every month job uses) and
``Layout.mosaic_marker(aoi)`` (store summary); the store itself is the write-optimised
``Layout.mosaic_staging(aoi)`` (created once, kept across reruns when grid, months and
chunking are unchanged; a newly created store drops the AOI's stale block ledgers). Rule
``sentinel`` consolidates it into the read-optimised cube ``Layout.mosaic(aoi)``.
"""

import logging
from pathlib import Path
from typing import Any

from pipeline.blocks import CHUNK_PX, REQUEST_BYTES_PER_PX, block_size_px, plan_blocks
from pipeline.config import SentinelConfig, parse_section
from pipeline.errors import ConfigError, InputError
from pipeline.grid import AoiGrid
from pipeline.io import read_geoparquet, read_json, write_json
from pipeline.io.mosaic import init_mosaic, remove_ledger
from pipeline.layout import Layout

log = logging.getLogger("pipeline.stages.sentinel_init")

#: Default block side (px) of the local source (``sentinel.block_size_px`` overrides it).
LOCAL_BLOCK_PX: int = 4 * CHUNK_PX


def run(aoi: str, months: list[str], cfg: SentinelConfig, layout: Layout) -> dict[str, Any]:
    """Plan blocks over the union of the AOI's footprints and initialise its mosaic.

    Raises:
        InputError: grid.json / footprints.parquet missing or inconsistent.
        ConfigError: ``sentinel.block_size_px`` not a multiple of the mosaic chunk.
    """
    grid = AoiGrid.from_dict(read_json(layout.grid(aoi)))
    fp = read_geoparquet(layout.footprints(aoi))
    missing = {"fp_col0", "fp_row0", "fp_size_px"} - set(fp.columns)
    if missing or len(fp) == 0:
        raise InputError(
            f"{layout.footprints(aoi)} lacks footprint columns {sorted(missing)} or rows: rerun "
            f"rule footprints for AOI {aoi}"
        )
    size = int(fp["fp_size_px"].iloc[0])
    if cfg.block_size_px is not None:
        block_px = int(cfg.block_size_px)
        if block_px % CHUNK_PX:
            raise ConfigError(
                f"sentinel.block_size_px = {block_px} must be a multiple of the mosaic chunk "
                f"({CHUNK_PX} px), e.g. {max(CHUNK_PX, block_px // CHUNK_PX * CHUNK_PX)}"
            )
    elif cfg.source == "local":
        # no response-size limit offline: smaller blocks let the month job's threads share
        # the work (and bound memory); one block = 4 x 4 chunks
        block_px = LOCAL_BLOCK_PX
    else:
        block_px = block_size_px(REQUEST_BYTES_PER_PX, cfg.gee.max_block_bytes, CHUNK_PX)
    blocks = plan_blocks(grid, fp["fp_col0"].to_numpy(), fp["fp_row0"].to_numpy(), size, block_px,
                         chunk_px=CHUNK_PX)
    staging = layout.mosaic_staging(aoi)
    if init_mosaic(staging, grid, months, chunk_px=CHUNK_PX, aoi=aoi):
        # a new (empty) store: markers of an earlier store would make month jobs skip blocks
        remove_ledger(layout.ledger_dir(aoi, months[0]).parent)
    plan = {
        "aoi": aoi,
        "grid": grid.to_dict(),
        "block_px": block_px,
        "chunk_px": CHUNK_PX,
        "blocks": [
            {"id": b.id, "col0": b.col0, "row0": b.row0, "width": b.width, "height": b.height}
            for b in blocks
        ],
    }
    write_json(layout.sentinel_blocks(aoi), plan)
    pixels = sum(b.n_pixels for b in blocks)
    marker = {
        "aoi": aoi, "store": str(staging), "cube": str(layout.mosaic(aoi)), "months": months,
        "chunk_px": CHUNK_PX,
        "grid": grid.to_dict(), "n_blocks": len(blocks), "block_pixels": pixels,
        "grid_pixels": grid.width * grid.height, "footprints": len(fp), "footprint_px": size,
    }
    write_json(layout.mosaic_marker(aoi), marker)
    log.info("%s: %d blocks (%d px, %.0f%% of the %dx%d grid) x %d months -> %s", aoi,
             len(blocks), pixels, 100.0 * pixels / (grid.width * grid.height), grid.width,
             grid.height, len(months), staging)
    return marker


def _main(smk: Any) -> None:
    cfg = parse_section("sentinel", dict(smk.params.cfg))
    run(smk.wildcards.aoi, list(smk.params.months), cfg, Layout(Path(smk.params.root)))


if __name__ == "__main__":
    from stages._common import smk_main

    smk_main(snakemake, _main)  # type: ignore[name-defined]  # noqa: F821
