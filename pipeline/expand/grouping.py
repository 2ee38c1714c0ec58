"""Samples -> AOI groups (UTM zone + proximity) and footprints on each group's 10 m grid.

Grouping
--------
Each sample belongs to the UTM zone of its centroid (:func:`pipeline.grid.utm_epsg`; a sample
straddling a zone boundary goes wholly to its centroid's zone and its footprint is computed in
that zone's CRS). Within a zone, samples whose centroids are closer than
``expand.group_distance_m`` are linked (single linkage: connected components of the
"closer than d" graph, via a KD-tree, O(N log N)); a component wider or taller than
``expand.max_group_extent_m`` is cut into square cells of that size so that no AOI grid grows
unbounded. Groups are ordered by (EPSG, smallest sample id) and named ``<dataset>-g000``,
``<dataset>-g001``, ... -- deterministic for a given sample set.

Footprints (any GSD)
--------------------
The backbone's rule (:meth:`pipeline.grid.FootprintRule.side_px`): side = ``round(scale x
patch_px x gsd / res)`` with the patch's side measured in metres in the group's UTM CRS (so
Web-Mercator or geographic originals get true metres), unless ``footprints.size_px`` or
``footprints.size_m`` override it (e.g. DynamicEarthNet's 1024 px x 3 m patches or tiny chips).
Samples of one group may have different footprint sizes; each size class is snapped with
:func:`pipeline.grid.compute_footprints` (same lattice, same 60 m origin rule) and the group's
grid is the union of the classes' grids, so every footprint is an integer window of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.grid import (
    DEFAULT_FOOTPRINT_RULE,
    AoiGrid,
    FootprintRule,
    compute_footprints,
    utm_epsg,
)


def sample_centroids_lonlat(index: Any) -> np.ndarray:
    """(N, 2) float64 lon/lat of the centre of each sample's native bounds (degrees)."""
    import json

    from pyproj import Transformer

    out = np.empty((len(index), 2), np.float64)
    b = np.array([json.loads(v) for v in index["hr_bounds"]], dtype=np.float64)
    cx, cy = (b[:, 0] + b[:, 2]) / 2.0, (b[:, 1] + b[:, 3]) / 2.0
    crs = index["hr_crs"].to_numpy()
    for c in np.unique(crs):
        sel = crs == c
        t = Transformer.from_crs(c, "EPSG:4326", always_xy=True)
        lon, lat = t.transform(cx[sel], cy[sel])
        out[sel, 0], out[sel, 1] = lon, lat
    return out


def _components(xy: np.ndarray, distance_m: float) -> np.ndarray:
    """Single-linkage cluster label per point (connected components of d <= distance_m).

    Exact and O(N log N): the Euclidean minimum spanning tree is a subgraph of the Delaunay
    triangulation, so the components of its edges no longer than ``distance_m`` are the
    single-linkage clusters. Duplicate points share a label; tiny or degenerate (collinear)
    sets fall back to a KD-tree pair search.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import Delaunay, QhullError, cKDTree

    uniq, inv = np.unique(xy, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    n = len(uniq)
    if n == 1:
        return np.zeros(len(xy), np.int64)
    pairs = None
    if n > 3:
        try:
            tri = Delaunay(uniq)
            s = tri.simplices
            e = np.concatenate([s[:, [0, 1]], s[:, [1, 2]], s[:, [0, 2]]])
            pairs = np.unique(np.sort(e, axis=1), axis=0)
            length = np.hypot(*(uniq[pairs[:, 0]] - uniq[pairs[:, 1]]).T)
            pairs = pairs[length <= distance_m]
        except QhullError:
            pairs = None
    if pairs is None:
        pairs = cKDTree(uniq).query_pairs(r=distance_m, output_type="ndarray")
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1].astype(np.int64)[inv]


def assign_groups(
    index: Any, dataset: str, distance_m: float, max_extent_m: float = 50000.0
) -> tuple[np.ndarray, np.ndarray]:
    """Group name and grid EPSG of every sample (module docstring).

    Args:
        index: sample index (:func:`pipeline.expand.adapters.build_sample_index`).
        dataset: dataset slug used in the group names.
        distance_m: single-linkage distance between sample centroids (m, in the UTM zone).
        max_extent_m: maximum group width / height (m).

    Returns:
        (groups, epsg): (N,) object array of names ``<dataset>-gNNN`` and (N,) int64 EPSG codes.
    """
    from pyproj import Transformer

    ll = sample_centroids_lonlat(index)
    epsg = np.array([utm_epsg(lon, lat) for lon, lat in ll], dtype=np.int64)
    ids = index["sample_id"].astype(str).to_numpy()
    clusters: list[np.ndarray] = []
    for z in np.unique(epsg):
        sel = np.flatnonzero(epsg == z)
        x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{z}", always_xy=True).transform(
            ll[sel, 0], ll[sel, 1])
        xy = np.column_stack([x, y])
        lab = _components(xy, distance_m)
        for k in np.unique(lab):
            members = sel[lab == k]
            mxy = xy[lab == k]
            lo, hi = mxy.min(axis=0), mxy.max(axis=0)
            if (hi - lo).max() <= max_extent_m:
                clusters.append(members)
                continue
            cell = np.floor((mxy - lo) / max_extent_m).astype(np.int64)
            key = cell[:, 0] * 1_000_003 + cell[:, 1]
            for kk in np.unique(key):
                clusters.append(members[key == kk])
    clusters.sort(key=lambda m: (int(epsg[m[0]]), min(ids[m])))
    groups = np.empty(len(index), dtype=object)
    for i, m in enumerate(clusters):
        groups[m] = f"{dataset}-g{i:03d}"
    return groups, epsg


def patch_bounds_utm(index: Any, epsg: int, segments: int = 8) -> np.ndarray:
    """(N, 4) bounds of each sample's native bounding box reprojected (densified) to
    ``EPSG:epsg`` (m)."""
    import json

    from pyproj import Transformer

    from pipeline.expand.adapters import _ring

    b = np.array([json.loads(v) for v in index["hr_bounds"]], dtype=np.float64)
    out = np.empty_like(b)
    crs = index["hr_crs"].to_numpy()
    for c in np.unique(crs):
        sel = np.flatnonzero(crs == c)
        tr = Transformer.from_crs(c, f"EPSG:{int(epsg)}", always_xy=True)
        xs, ys = _ring(b[sel], segments)
        x, y = tr.transform(xs.ravel(), ys.ravel())
        x = np.asarray(x).reshape(xs.shape)
        y = np.asarray(y).reshape(ys.shape)
        out[sel] = np.column_stack([x.min(axis=1), y.min(axis=1), x.max(axis=1), y.max(axis=1)])
    if not np.isfinite(out).all():
        bad = index["sample_id"].to_numpy()[~np.isfinite(out).all(axis=1)][:5]
        raise InputError(f"samples {list(bad)} cannot be projected to EPSG:{epsg}: check their "
                         "CRS and bounds")
    return out


def footprint_sizes(index: Any, pb_utm: np.ndarray, rule: FootprintRule) -> np.ndarray:
    """(N,) int64 footprint side per sample (px): the backbone's rule with the patch side
    measured in the grid CRS (``gsd = side_m / size_px``), or the explicit overrides."""
    side_m = np.maximum(pb_utm[:, 2] - pb_utm[:, 0], pb_utm[:, 3] - pb_utm[:, 1])
    if rule.margin_m is not None and rule.size_px is None and rule.size_m is None:
        # extent rule: the sample itself plus a margin (Sentinel-like or large samples)
        return np.ceil((side_m + 2.0 * rule.margin_m) / rule.res_m - 1e-9).astype(np.int64)
    patch_px = index["size_px"].to_numpy(dtype=np.int64)
    out = np.empty(len(index), np.int64)
    for i in range(len(index)):
        n = int(patch_px[i]) if patch_px[i] > 0 else 1
        out[i] = rule.side_px(n, float(side_m[i]) / n)
    return out


def group_footprints(
    index: Any, epsg: int, rule: FootprintRule = DEFAULT_FOOTPRINT_RULE
) -> tuple[dict[str, np.ndarray], AoiGrid]:
    """Footprints of one group's samples on the group grid.

    Returns:
        (columns, grid): columns ``fp_col0``, ``fp_row0``, ``fp_size_px`` (int64),
        ``patch_off_x_px``, ``patch_off_y_px``, ``patch_w_px``, ``patch_h_px`` (float64, the
        patch box inside its footprint in grid px), ``fp_bounds`` ((N, 4) footprint bounds in
        the grid CRS, m), and the :class:`AoiGrid` covering every footprint.
    """
    pb = patch_bounds_utm(index, epsg)
    sizes = footprint_sizes(index, pb, rule)
    res_m = rule.res_m
    n = len(index)
    parts = {}
    for s in np.unique(sizes):
        sel = np.flatnonzero(sizes == s)
        parts[int(s)] = (sel, compute_footprints(pb[sel], epsg, int(s), res_m,
                                                 rule.origin_multiple_m))
    x0 = min(f.grid.x0 for _, f in parts.values())
    y0 = max(f.grid.y0 for _, f in parts.values())
    x1 = max(f.grid.bounds[2] for _, f in parts.values())
    y1 = min(f.grid.bounds[1] for _, f in parts.values())
    grid = AoiGrid(epsg=int(epsg), res_m=float(res_m), x0=x0, y0=y0,
                   width=round((x1 - x0) / res_m), height=round((y0 - y1) / res_m))
    cols: dict[str, np.ndarray] = {
        "fp_col0": np.zeros(n, np.int64), "fp_row0": np.zeros(n, np.int64),
        "fp_size_px": sizes.astype(np.int64),
        "patch_off_x_px": np.zeros(n), "patch_off_y_px": np.zeros(n),
        "patch_w_px": np.zeros(n), "patch_h_px": np.zeros(n),
    }
    for sel, f in parts.values():
        dc = round((f.grid.x0 - x0) / res_m)
        dr = round((y0 - f.grid.y0) / res_m)
        cols["fp_col0"][sel] = f.col0 + dc
        cols["fp_row0"][sel] = f.row0 + dr
        cols["patch_off_x_px"][sel] = f.patch_off_x_px
        cols["patch_off_y_px"][sel] = f.patch_off_y_px
        cols["patch_w_px"][sel] = f.patch_w_px
        cols["patch_h_px"][sel] = f.patch_h_px
    minx = grid.x0 + cols["fp_col0"] * res_m
    maxy = grid.y0 - cols["fp_row0"] * res_m
    side = sizes * res_m
    cols["fp_bounds"] = np.column_stack([minx, maxy - side, minx + side, maxy])
    return cols, grid
