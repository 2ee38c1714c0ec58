"""Footprints of an AOI's patches on its 10 m Sentinel grid (from the tile index).

Pure functions on GeoDataFrames / arrays: :func:`build_footprints` turns the tile index
(``patches.parquet``, geometry = patch polygon in the HR CRS) into

* the footprint index: the same rows plus ``fp_col0``, ``fp_row0``, ``fp_size_px`` (int,
  window in the AOI grid), ``patch_off_x_px``, ``patch_off_y_px``, ``patch_w_px``,
  ``patch_h_px`` (float, the patch's bounding box inside its footprint in grid pixels) and
  ``fp_geometry_wkb`` (footprint polygon in the grid CRS, WKB);
* the grid description (``AoiGrid.to_dict()`` + ``rule``, ``size_px``, ``scale`` and a few
  facts) written to ``grid.json``;
* footprint polygons in the grid CRS (for the GeoPackage / shapefile export).

The grid CRS is the UTM zone of the AOI centroid (:func:`pipeline.grid.choose_aoi_epsg`); the
footprint side comes from the real GSD (:func:`pipeline.grid.footprint_size_px`) unless
``footprints.size_px`` / ``size_m`` override it. Math: :mod:`pipeline.grid`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.grid import (
    DEFAULT_FOOTPRINT_RULE,
    FootprintRule,
    Footprints,
    choose_aoi_epsg,
    compute_footprints,
    union_pixel_count,
)

log = logging.getLogger(__name__)

#: Footprint columns appended to the tile index, in order.
FOOTPRINT_COLUMNS: tuple[str, ...] = (
    "fp_col0",
    "fp_row0",
    "fp_size_px",
    "patch_off_x_px",
    "patch_off_y_px",
    "patch_w_px",
    "patch_h_px",
    "fp_geometry_wkb",
)


@dataclass(frozen=True)
class FootprintResult:
    """Output of :func:`build_footprints`.

    Attributes:
        index: GeoDataFrame = tile index + :data:`FOOTPRINT_COLUMNS` (geometry: HR CRS).
        polygons: GeoDataFrame of footprint polygons in the grid CRS with ``patch_id`` and the
            integer/fractional offsets.
        grid_doc: the ``grid.json`` document.
        footprints: the :class:`pipeline.grid.Footprints` arrays.
    """

    index: Any
    polygons: Any
    grid_doc: dict[str, Any]
    footprints: Footprints


def lonlat_bounds(index: Any) -> tuple[float, float, float, float]:
    """(west, south, east, north) degrees of a GeoDataFrame's geometries.

    An extent crossing the antimeridian is returned with ``west > east`` (GeoJSON / STAC
    convention), which :func:`pipeline.grid.choose_aoi_epsg` understands.
    """
    b = index.to_crs("EPSG:4326").geometry.bounds.to_numpy()
    w, s, e, n = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    if e - w > 180.0:
        # geometries on both sides of +-180: measure the extent the short way round
        minx = np.where(b[:, 0] < 0, b[:, 0] + 360.0, b[:, 0])
        maxx = np.where(b[:, 2] < 0, b[:, 2] + 360.0, b[:, 2])
        w, e = float(minx.min()), float(maxx.max())
        if e > 180.0:
            e -= 360.0
        if w > 180.0:
            w -= 360.0
    return float(w), float(s), float(e), float(n)


def patch_bounds_in(index: Any, epsg: int, segments: int = 8) -> np.ndarray:
    """(N, 4) float64 bounds of the patch polygons reprojected to ``EPSG:epsg`` (m).

    Polygons are densified (``segments`` points per side) before reprojection so that the
    bounds of a patch in another CRS follow its curved edges.
    """
    import shapely

    geoms = index.geometry
    if index.crs is not None and index.crs.to_epsg() == int(epsg):
        return np.asarray(shapely.bounds(geoms.values), dtype=np.float64)
    side = np.sqrt(geoms.area.to_numpy())
    seg_len = np.where(side > 0, side / max(1, segments), 1.0)
    dens = shapely.segmentize(geoms.values, seg_len)
    reproj = type(geoms)(dens, crs=index.crs).to_crs(f"EPSG:{int(epsg)}")
    return np.asarray(shapely.bounds(reproj.values), dtype=np.float64)


def _single(index: Any, col: str, aoi: str, what: str) -> Any:
    vals = index[col].unique()
    if len(vals) != 1:
        raise InputError(
            f"AOI {aoi!r}: the tile index has {len(vals)} different {what} values "
            f"({sorted(vals)[:5]}): re-run the tile stage (one {what} per AOI)"
        )
    return vals[0]


def build_footprints(
    index: Any, aoi: str, rule: FootprintRule = DEFAULT_FOOTPRINT_RULE
) -> FootprintResult:
    """Footprints of every patch of one AOI (see the module docstring).

    Args:
        index: tile index GeoDataFrame (``patches.parquet``; geometry in the HR CRS, columns
            ``patch_id``, ``size_px``, ``gsd_m``, ...).
        aoi: AOI name (messages, grid.json).
        rule: footprint size and grid settings (the ``footprints`` config).

    Raises:
        InputError: empty index, index without CRS, or mixed patch sizes / GSDs.
        GridError: footprint size < 1 px or inconsistent grid settings.
    """
    import geopandas as gpd
    import shapely

    if index is None or len(index) == 0:
        raise InputError(f"AOI {aoi!r}: the tile index has no patches: re-run the tile stage")
    if getattr(index, "crs", None) is None:
        raise InputError(
            f"AOI {aoi!r}: the tile index has no CRS: delete patches.parquet and re-run `tile`"
        )
    patch_px = int(_single(index, "size_px", aoi, "size_px"))
    gsd_vals = index["gsd_m"].to_numpy(dtype=np.float64)
    if np.ptp(gsd_vals) > 1e-6 * max(1.0, float(gsd_vals.max())):
        raise InputError(f"AOI {aoi!r}: the tile index mixes GSDs: re-run the tile stage")
    gsd_m = float(gsd_vals[0])
    bounds_ll = lonlat_bounds(index)
    epsg = choose_aoi_epsg(bounds_ll, aoi)
    n = rule.side_px(patch_px, gsd_m)
    pb = patch_bounds_in(index, epsg)
    fps = compute_footprints(pb, epsg, n, res_m=rule.res_m,
                             origin_multiple_m=rule.origin_multiple_m)
    fb = fps.bounds()
    fp_geoms = shapely.box(fb[:, 0], fb[:, 1], fb[:, 2], fb[:, 3])
    out = index.copy()
    out["fp_col0"] = fps.col0.astype(np.int64)
    out["fp_row0"] = fps.row0.astype(np.int64)
    out["fp_size_px"] = np.full(len(out), n, dtype=np.int64)
    out["patch_off_x_px"] = fps.patch_off_x_px
    out["patch_off_y_px"] = fps.patch_off_y_px
    out["patch_w_px"] = fps.patch_w_px
    out["patch_h_px"] = fps.patch_h_px
    out["fp_geometry_wkb"] = shapely.to_wkb(fp_geoms)
    polys = gpd.GeoDataFrame(
        {
            "patch_id": index["patch_id"].to_numpy(),
            "fp_col0": out["fp_col0"].to_numpy(),
            "fp_row0": out["fp_row0"].to_numpy(),
            "fp_size_px": out["fp_size_px"].to_numpy(),
            "patch_off_x_px": fps.patch_off_x_px,
            "patch_off_y_px": fps.patch_off_y_px,
            "patch_w_px": fps.patch_w_px,
            "patch_h_px": fps.patch_h_px,
        },
        geometry=fp_geoms,
        crs=f"EPSG:{epsg}",
    )
    union_px = union_pixel_count(fps.col0, fps.row0, n, fps.grid)
    doc: dict[str, Any] = {
        **fps.grid.to_dict(),
        "rule": rule.describe(n, patch_px, gsd_m),
        "size_px": n,
        "scale": float(rule.scale),
        "aoi": aoi,
        "crs": fps.grid.crs,
        "origin_multiple_m": float(rule.origin_multiple_m),
        "patch_size_px": patch_px,
        "gsd_m": gsd_m,
        "hr_crs": str(index["hr_crs"].iloc[0]) if "hr_crs" in index else index.crs.to_string(),
        "lonlat_bounds": list(bounds_ll),
        "n_footprints": len(out),
        "union_px": union_px,
        "requested_px": int(len(out) * n * n),
    }
    return FootprintResult(index=out, polygons=polys, grid_doc=doc, footprints=fps)

