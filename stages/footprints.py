"""Stage `footprints` (one job per AOI): tile index -> footprints on the AOI's 10 m grid.

Outputs: ``Layout.footprints(aoi)`` (tile index + footprint columns), ``Layout.grid(aoi)``
(grid.json) and ``Layout.footprints_gpkg(aoi)`` (+ a shapefile folder when
``footprints.export_shapefile``). See :mod:`pipeline.footprints`.
"""


import logging
from pathlib import Path
from typing import Any

from pipeline.config import FootprintsConfig, parse_section
from pipeline.footprints import FootprintResult, build_footprints
from pipeline.io import read_geoparquet, write_geoparquet, write_json
from pipeline.io.vector import write_footprints_vector
from pipeline.layout import Layout

log = logging.getLogger("pipeline.stages.footprints")


def run(aoi: str, cfg: FootprintsConfig, layout: Layout) -> FootprintResult:
    """Compute and write the footprints of one AOI (reads ``Layout.patches(aoi)``).

    Raises:
        InputError: missing / empty / inconsistent tile index.
        GridError: impossible footprint size or grid settings.
    """
    index = read_geoparquet(layout.patches(aoi))
    res = build_footprints(
        index,
        aoi,
        scale=cfg.scale,
        res_m=cfg.res_m,
        origin_multiple_m=cfg.origin_multiple_m,
        size_px=cfg.size_px,
        size_m=cfg.size_m,
    )
    shp_dir = layout.footprints_shp_dir(aoi) if cfg.export_shapefile else None
    write_footprints_vector(res.polygons, layout.footprints_gpkg(aoi), shp_dir, aoi)
    write_json(layout.grid(aoi), res.grid_doc)
    write_geoparquet(res.index, layout.footprints(aoi))
    g = res.footprints.grid
    log.info(
        "%s: %d footprints of %d px on %s grid %dx%d px at %g m (origin %.0f, %.0f); union %d px "
        "vs %d px requested per footprint (%.1fx)",
        aoi, len(res.index), res.grid_doc["size_px"], g.crs, g.width, g.height, g.res_m,
        g.x0, g.y0, res.grid_doc["union_px"], res.grid_doc["requested_px"],
        res.grid_doc["requested_px"] / max(1, res.grid_doc["union_px"]),
    )
    return res


def _main(smk: Any) -> None:
    cfg = parse_section("footprints", dict(smk.params.cfg))
    run(smk.wildcards.aoi, cfg, Layout(Path(smk.params.root)))


if __name__ == "__main__":
    from stages._common import smk_main

    smk_main(snakemake, _main)  # type: ignore[name-defined]  # noqa: F821
