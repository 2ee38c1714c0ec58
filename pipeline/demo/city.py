"""The synthetic demo city: T1/T2 land-use polygons and procedurally rendered 0.5 m RGB images.

Everything here is SYNTHETIC and deterministic (``demo.seed``); nothing is downloaded. The
functions are pure (no file I/O); the ``demo_inputs`` stage writes their results through
:mod:`pipeline.io.demo_io`.

Geometry
--------
* The city is a square of side ``size_m`` metres whose upper-left corner is ``origin`` (x, y)
  in ``EPSG:<epsg>`` (default UTM 49N). All polygons and images use that CRS, units metres.
* Structure: a jittered grid of major roads (wider arterials, narrow country roads outside
  the city), minor roads and lanes inside the city, a ring road, a meandering river (inland
  water) with wetland banks outside the city and riverside parks/grass inside; city blocks
  split into parcels: commercial / residential / public in the core, an industrial + storage
  sector, residential rings, and crop, orchard, forest, grass, greenhouse fields and villages
  at the periphery. All 17 FUSU classes occur (enforced). Slivers below 150 m² are dropped and
  a few small gaps stay unlabelled: class 0 (background).
* T2 = T1 with realistic land-use change on whole parcels (cropland -> residential / blank /
  construction, blank -> commercial / residential, grass -> park, ...), preferring the urban
  fringe, until ``change_fraction`` of the square's area changed.

Annotation defects (in the GeoPackages, on purpose, so the labels stage's repair and overlap
rules are exercised; :func:`annotation_polygons`, column ``defect``):

* ``bowtie`` (self-intersecting, invalid): T1 has a grass (17) bow-tie, T2 a blank (6) bow-tie,
  each inside an unchanged field (cropland preferred). ``shapely.make_valid`` repairs each
  into two triangles (a MultiPolygon). Note an unrepaired bow-tie has signed area ~0.
* ``overlap``: (a) a pond (inland water, 2) lying on top of an un-holed park polygon (or grass
  / forest), (b) a 30 m pocket park (9) on top of an un-holed residential parcel (or
  commercial / public), (c) one urban parcel grown by 6 m into its non-road neighbours. Both
  dates carry (a)-(c). With the default overlap rule (smallest area wins) the pond, the pocket
  park and, inside the grown band, the smaller of the two parcels win.

The rendering truth applies the labels stage's default rules: make_valid, then where polygons
overlap the smallest (repaired) area wins, ties to the later feature
(:func:`rasterize_classes`). So the labels built from the GeoPackages match the imagery.

Imagery
-------
T1 lies on the grid ``Affine(gsd, 0, x0, 0, -gsd, y0)`` with ``(x0, y0) = origin``, size
``ceil(size_m / gsd_m)`` square. T2 has the same size on a grid shifted by ``t2_shift_px``
= (dx, dy) pixels: ``t2.transform = t1.transform @ Affine.translation(dx, dy)`` (T2's pixel
(0, 0) is T1's pixel (dx, dy)). Pixels: uint8 RGB (band, y, x), 0 = no data (outside the
square, and a triangular no-data corner in the south-east of T2 like a scene edge); valid
pixels are >= 1. Texture is a function of map coordinates, so both dates show the same
ground; T2 differs by land-use change, illumination (gain/offset/haze), shadow length and
crop phenology.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity
from affine import Affine
from shapely.geometry import MultiPolygon, Point, Polygon, box

from pipeline.config import DemoConfig
from pipeline.demo.city_plan import build_city, change_parcels

# --------------------------------------------------------------------------- grids


@dataclass(frozen=True)
class DemoGrid:
    """One demo image grid (north-up, square pixels).

    Attributes:
        crs: ``"EPSG:<epsg>"``.
        width, height: Size in pixels.
        transform: Pixel -> CRS affine (upper-left corner convention), metres.
    """

    crs: str
    width: int
    height: int
    transform: Affine

    def window_transform(self, col0: int, row0: int) -> Affine:
        return self.transform @ Affine.translation(col0, row0)

    def windows(self, size_px: int) -> Iterator[tuple[int, int, int, int]]:
        """(col0, row0, width, height) windows of ``size_px`` in row-major order."""
        for r in range(0, self.height, size_px):
            for c in range(0, self.width, size_px):
                yield c, r, min(size_px, self.width - c), min(size_px, self.height - r)


def demo_grids(cfg: DemoConfig) -> tuple[DemoGrid, DemoGrid]:
    """The T1 and T2 image grids (T2 shifted by ``cfg.t2_shift_px`` pixels, see module doc)."""
    n = math.ceil(cfg.size_m / cfg.gsd_m - 1e-9)
    x0, y0 = cfg.origin
    t1 = Affine(cfg.gsd_m, 0.0, x0, 0.0, -cfg.gsd_m, y0)
    dx, dy = cfg.t2_shift_px
    t2 = t1 @ Affine.translation(dx, dy)
    crs = f"EPSG:{cfg.epsg}"
    return DemoGrid(crs, n, n, t1), DemoGrid(crs, n, n, t2)



def _to_map(geoms: list[shapely.Geometry], cfg: DemoConfig) -> np.ndarray:
    x0, y0 = cfg.origin
    off = np.array([x0, y0 - cfg.size_m])
    return shapely.transform(np.asarray(geoms, dtype=object), lambda c: c + off)


def city_polygons(cfg: DemoConfig) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The clean T1 and T2 land-use partitions of the demo city (ground truth polygons).

    Returns:
        (t1, t2) GeoDataFrames in ``EPSG:<cfg.epsg>`` (metres), valid, non-overlapping
        polygons, columns ``parcel`` (int, same id for the same ground in both dates),
        ``class`` (int FUSU value 1..17) and geometry. Background (0) parcels are omitted.
        Rows are in the same order in both frames.
    """
    parcels, info = build_city(cfg)
    t2cls = change_parcels(parcels, cfg, info)
    geoms = _to_map([p.geom for p in parcels], cfg)
    ids = np.arange(len(parcels))
    crs = f"EPSG:{cfg.epsg}"
    out = []
    for cls in ([p.cls for p in parcels], t2cls):
        cls_a = np.asarray(cls, dtype=np.int64)
        keep = cls_a > 0
        out.append(
            gpd.GeoDataFrame(
                {"parcel": ids[keep], "class": cls_a[keep]}, geometry=geoms[keep], crs=crs
            ).reset_index(drop=True)
        )
    return out[0], out[1]


def _bowtie(cx: float, cy: float, w: float, h: float) -> Polygon:
    """A self-intersecting (invalid) bow-tie quadrilateral centred on (cx, cy)."""
    return Polygon(
        [
            (cx - w / 2, cy - h / 2),
            (cx + w / 2, cy + h / 2),
            (cx + w / 2, cy - h / 2),
            (cx - w / 2, cy + h / 2),
        ]
    )


def annotation_polygons(cfg: DemoConfig) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """T1 and T2 annotation layers as written to the GeoPackages (with deliberate defects).

    The clean partitions of :func:`city_polygons` plus the defects listed in the module
    docstring (column ``defect``: ``""``, ``"bowtie"`` or ``"overlap"``; parcel ids of added
    features start at 1,000,000). CRS ``EPSG:<cfg.epsg>``; column ``class`` int 1..17.
    """
    t1, t2 = city_polygons(cfg)
    rng = np.random.default_rng([cfg.seed, 3])
    same = t1["class"].to_numpy() == t2["class"].to_numpy()
    areas = t1.geometry.area.to_numpy()

    cls_arr = t1["class"].to_numpy()

    def pick(
        classes: tuple[int, ...], min_area: float, ok: Callable[[int], bool] | None = None
    ) -> int | None:
        """A random unchanged, unused parcel of the first class in ``classes`` that has one."""
        for cls in classes:
            idx = np.flatnonzero(same & (cls_arr == cls) & (areas >= min_area))
            for i in rng.permutation(idx).tolist():
                if i not in used and (ok is None or ok(i)):
                    used.add(i)
                    return int(i)
        return None

    def inner_point(i: int, margin: float) -> Point:
        g = t1.geometry.iloc[i]
        inner = g.buffer(-margin)
        return (inner if not inner.is_empty else g).representative_point()

    def neighbours(i: int) -> gpd.GeoDataFrame:
        g = t1.geometry.iloc[i]
        nb = t1[t1.geometry.intersects(g.buffer(1.0)) & (t1["class"] != 1)]
        return nb[nb.index != t1.index[i]]

    used: set[int] = set()
    extra1: list[tuple[shapely.Geometry, int, str]] = []
    extra2: list[tuple[shapely.Geometry, int, str]] = []
    replace: dict[int, shapely.Geometry] = {}
    # bow-ties in two unchanged fields (cropland preferred)
    for cls, target in ((17, extra1), (6, extra2)):
        i = pick((4, 8, 14, 17, 6, 3, 11), 1500.0)
        if i is not None:
            p = inner_point(i, 18.0)
            target.append((_bowtie(p.x, p.y, 30.0, 24.0), cls, "bowtie"))
    # (a) pond on an un-holed park (or grass / forest)
    i = pick((9, 17, 14), 3000.0)
    if i is not None:
        p = inner_point(i, 25.0)
        pond = shapely.affinity.scale(p.buffer(14.0, quad_segs=12), 1.4, 0.8)
        for t in (extra1, extra2):
            t.append((pond, 2, "overlap"))
    # (b) pocket park on an un-holed residential (or commercial / public) parcel
    i = pick((3, 11, 10), 2500.0)
    if i is not None:
        p = inner_point(i, 20.0)
        park = box(p.x - 15.0, p.y - 15.0, p.x + 15.0, p.y + 15.0)
        for t in (extra1, extra2):
            t.append((park, 9, "overlap"))
    # (c) one urban parcel grown by 6 m into its (non-road) neighbours
    i = pick((11, 3, 10, 12, 7), 2000.0, ok=lambda j: len(neighbours(j)) > 0)
    if i is not None:
        g = t1.geometry.iloc[i]
        replace[i] = g.buffer(6.0, join_style="mitre").intersection(
            shapely.union_all([g, *neighbours(i).geometry.values])
        )

    out = []
    for gdf, extra in ((t1, extra1), (t2, extra2)):
        gdf = gdf.copy()
        gdf["defect"] = ""
        for i, g in replace.items():
            gdf.loc[gdf.index[i], "geometry"] = g
            gdf.loc[gdf.index[i], "defect"] = "overlap"
        if extra:
            add = gpd.GeoDataFrame(
                {
                    "parcel": np.arange(1_000_000, 1_000_000 + len(extra)),
                    "class": [e[1] for e in extra],
                    "defect": [e[2] for e in extra],
                },
                geometry=[e[0] for e in extra],
                crs=gdf.crs,
            )
            gdf = gpd.GeoDataFrame(pd.concat([gdf, add], ignore_index=True), crs=gdf.crs)
        out.append(gdf)
    return out[0], out[1]


def change_fraction(t1: gpd.GeoDataFrame, t2: gpd.GeoDataFrame, total_area_m2: float) -> float:
    """Area fraction where the class differs, for two layers sharing ``parcel`` ids.

    Uses the clean partitions of :func:`city_polygons` (same parcels, same order).
    """
    a = t1.set_index("parcel")
    b = t2.set_index("parcel")
    common = a.index.intersection(b.index)
    diff = a.loc[common, "class"] != b.loc[common, "class"]
    return float(a.loc[common].geometry[diff].area.sum() / total_area_m2)


# --------------------------------------------------------------------------- truth raster


def paint_order(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Repaired geometries and the order in which to burn them (smallest area wins).

    Returns:
        (geoms, order): ``geoms`` = polygonal part of ``make_valid`` of each feature (object
        array, same length as ``gdf``), ``order`` = feature indices by decreasing repaired area,
        ties in file order, so burning in this order lets smaller (then later) features win.
    """
    geoms = shapely.make_valid(np.asarray(gdf.geometry.values, dtype=object))
    polys: list[Any] = []
    for g in geoms:
        if g is None or g.is_empty:
            polys.append(Polygon())
        elif isinstance(g, (Polygon, MultiPolygon)):
            polys.append(g)
        else:
            parts = [p for p in shapely.get_parts(g) if isinstance(p, (Polygon, MultiPolygon))]
            polys.append(shapely.union_all(parts) if parts else Polygon())
    garr = np.asarray(polys, dtype=object)
    area = shapely.area(garr)
    order = np.lexsort((np.arange(len(garr)), -area))
    return garr, order


def rasterize_classes(
    gdf: gpd.GeoDataFrame,
    transform: Affine,
    shape: tuple[int, int],
    class_column: str = "class",
    all_touched: bool = False,
) -> np.ndarray:
    """Burn a class layer onto a grid window, applying the labels stage's default rules.

    Geometries are repaired with ``make_valid``; where polygons overlap, the smallest repaired
    area wins (ties: the later feature). Works for any grid in the layer's CRS (e.g. a 10 m
    Sentinel grid); call it per window for large grids.

    Args:
        gdf: Polygons with an int ``class_column`` (FUSU 1..17), in the grid's CRS.
        transform: Affine of the window's upper-left corner; shape: (rows, cols).
    Returns:
        (rows, cols) uint8 class raster, 0 = background (no polygon).
    """
    from rasterio.features import rasterize

    geoms, order = paint_order(gdf)
    cls = gdf[class_column].to_numpy()
    shapes = [(geoms[i], int(cls[i])) for i in order if not geoms[i].is_empty]
    if not shapes:
        return np.zeros(shape, dtype=np.uint8)
    return rasterize(
        shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8", all_touched=all_touched
    )


