"""Stage `expand_index` (one job per dataset): foreign change dataset -> sample index, groups,
footprints and the request plan (expansion paradigm, ``expand.adapter``).

Outputs (under ``Layout.expand_dir()``): ``samples.parquet`` (sample index, WGS84 geometry,
group + footprint columns), per group ``aois/<group>/footprints.parquet`` (rows of the group,
geometry = sample box in the grid CRS), ``aois/<group>/grid.json`` and
``aois/<group>/footprints.gpkg`` (footprint polygons, grid CRS), and ``plan.json``
(written last: the declared output of the Snakemake checkpoint). Nothing is fetched.
"""


import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely

from pipeline.config import ExpandConfig, FootprintsConfig, parse_section
from pipeline.errors import ConfigError
from pipeline.expand.adapters import build_sample_index
from pipeline.expand.build import FP_COLUMNS, Expansion, build_expansion
from pipeline.io import write_geoparquet, write_json
from pipeline.io.expand_io import read_samples
from pipeline.io.vector import write_footprints_vector
from pipeline.layout import Layout

log = logging.getLogger("pipeline.stages.expand_index")


def run(
    cfg: ExpandConfig, fp: FootprintsConfig, block_px: int, layout: Layout, dataset: str
) -> Expansion:
    """Read the dataset named by ``cfg``, group and plan it, write the index outputs.

    Raises:
        ConfigError: no adapter / path.
        InputError: unreadable layout, missing dates, duplicate ids, no georeferencing.
    """
    if cfg.adapter is None:
        raise ConfigError("expand.adapter is not set: nothing to expand")
    records = read_samples(cfg)
    index = build_sample_index(records, dataset)
    exp = build_expansion(
        index, dataset, block_px,
        group_distance_m=cfg.group_distance_m, max_group_extent_m=cfg.max_group_extent_m,
        scale=fp.scale, res_m=fp.res_m, origin_multiple_m=fp.origin_multiple_m,
        size_px=fp.size_px, size_m=fp.size_m,
    )
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
    plan = {**exp.plan, "adapter": cfg.adapter, "path": cfg.path, "plan_only": cfg.plan_only}
    write_json(layout.expand_plan(), plan)
    t = exp.plan["totals"]
    log.info(
        "%s: %d samples in %d groups, %d group-months; blocked: %d requests, %d pixel-months; "
        "naive per footprint: %d requests, %d pixel-months (%.1fx)",
        dataset, t["samples"], t["groups"], t["group_months"], t["requests"], t["pixel_months"],
        t["naive"]["requests"], t["naive"]["pixel_months"],
        t["naive"]["pixel_months"] / max(1, t["pixel_months"]),
    )
    return exp


def _main(smk: Any) -> None:
    run(
        parse_section("expand", dict(smk.params.cfg)),
        parse_section("footprints", dict(smk.params.fp)),
        int(smk.params.block_px),
        Layout(Path(smk.params.root)),
        str(smk.params.dataset),
    )


if __name__ == "__main__":
    from stages._common import smk_main

    smk_main(snakemake, _main)  # type: ignore[name-defined]  # noqa: F821
