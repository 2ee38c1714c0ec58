"""Sample index -> groups, footprints, per-group tables and the request plan (pure).

:func:`build_expansion` is what the ``expand_index`` stage runs between reading a foreign
layout (:mod:`pipeline.expand.datasets`) and writing the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.expand.grouping import assign_groups, group_footprints
from pipeline.expand.plan import group_months, plan_group, plan_totals
from pipeline.grid import DEFAULT_FOOTPRINT_RULE, AoiGrid, FootprintRule

#: Footprint columns added to the sample index (same names as the native footprints.parquet).
FP_COLUMNS = ("fp_col0", "fp_row0", "fp_size_px", "patch_off_x_px", "patch_off_y_px",
              "patch_w_px", "patch_h_px")


@dataclass(frozen=True)
class Expansion:
    """Result of :func:`build_expansion`.

    Attributes:
        index: sample index (WGS84 geometry) + ``aoi`` (group name), ``grid_epsg``,
            :data:`FP_COLUMNS` and ``fp_geometry_wkb`` (footprint polygon in the grid CRS).
        tables: {group: its rows as a GeoDataFrame with geometry = sample box in the grid CRS}.
        grids: {group: :class:`AoiGrid`}.
        grid_docs: {group: grid.json document (grid + rule + months + counts)}.
        plan: the request plan (``groups`` list of per-group plans + ``totals``).
    """

    index: Any
    tables: dict[str, Any]
    grids: dict[str, AoiGrid]
    grid_docs: dict[str, dict[str, Any]]
    plan: dict[str, Any]


def build_expansion(
    index: Any,
    dataset: str,
    block_px: int,
    group_distance_m: float = 20000.0,
    max_group_extent_m: float = 50000.0,
    rule: FootprintRule = DEFAULT_FOOTPRINT_RULE,
) -> Expansion:
    """Group the samples, place their footprints and plan the requests (module docstring)."""
    import geopandas as gpd
    import shapely

    groups, epsg = assign_groups(index, dataset, group_distance_m, max_group_extent_m)
    out = index.copy()
    out["aoi"] = groups.astype(str)
    out["grid_epsg"] = epsg
    for c in FP_COLUMNS:
        out[c] = np.zeros(len(out), np.int64 if c.startswith("fp_") else np.float64)
    out["fp_geometry_wkb"] = [b""] * len(out)
    tables, grids, docs, plans = {}, {}, {}, []
    rule_text = rule.describe_per_sample()
    for name in sorted(set(groups)):
        sel = np.flatnonzero(groups == name)
        sub = out.iloc[sel]
        z = int(epsg[sel[0]])
        cols, grid = group_footprints(sub, z, rule)
        fb = cols.pop("fp_bounds")
        fp_geoms = shapely.box(fb[:, 0], fb[:, 1], fb[:, 2], fb[:, 3])
        for c in FP_COLUMNS:
            out.iloc[sel, out.columns.get_loc(c)] = cols[c]
        wkb = shapely.to_wkb(fp_geoms)
        out.iloc[sel, out.columns.get_loc("fp_geometry_wkb")] = list(wkb)
        table = gpd.GeoDataFrame(out.iloc[sel].drop(columns="geometry"),
                                 geometry=sub.geometry.to_crs(f"EPSG:{z}").values,
                                 crs=f"EPSG:{z}")
        tables[name], grids[name] = table.reset_index(drop=True), grid
        months = group_months(table["month_first"], table["month_last"])
        sizes = sorted({int(s) for s in cols["fp_size_px"]})
        docs[name] = {
            **grid.to_dict(),
            "aoi": name,
            "crs": grid.crs,
            "rule": rule_text,
            "size_px": sizes[0] if len(sizes) == 1 else sizes,
            "scale": float(rule.scale),
            "origin_multiple_m": float(rule.origin_multiple_m),
            "months": months,
            "n_footprints": len(sel),
        }
        plans.append(plan_group(name, grid, table, block_px))
    plan = {"dataset": dataset, "footprint_rule": rule_text, "groups": plans,
            "totals": plan_totals(plans, block_px)}
    return Expansion(out, tables, grids, docs, plan)
