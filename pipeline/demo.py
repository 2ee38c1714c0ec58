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

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity
from affine import Affine
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from pipeline.config import DemoConfig

N_CLASSES = 17
CLASS_NAMES = {
    0: "background",
    1: "traffic land",
    2: "inland water",
    3: "residential",
    4: "cropland",
    5: "agriculture construction",
    6: "blank",
    7: "industrial",
    8: "orchard",
    9: "park",
    10: "public management",
    11: "commercial",
    12: "public construction",
    13: "special land",
    14: "forest",
    15: "storage",
    16: "wetland",
    17: "grass",
}

# Zone -> class weights for parcels.
_ZONE_WEIGHTS: dict[str, dict[int, float]] = {
    "core": {11: 0.30, 3: 0.28, 10: 0.12, 12: 0.10, 9: 0.10, 6: 0.04, 13: 0.03, 15: 0.03},
    "urban": {
        3: 0.52,
        11: 0.07,
        10: 0.06,
        12: 0.08,
        9: 0.07,
        6: 0.08,
        17: 0.06,
        13: 0.03,
        15: 0.03,
    },
    "industrial": {7: 0.55, 15: 0.25, 13: 0.06, 6: 0.09, 17: 0.05},
    "village": {3: 0.6, 5: 0.25, 6: 0.15},
    "forest": {14: 0.65, 8: 0.15, 17: 0.20},
    "rural": {4: 0.60, 8: 0.12, 17: 0.08, 6: 0.05, 5: 0.05, 14: 0.06, 9: 0.01, 13: 0.03},
}
# Where a class is plausible when it must be forced in (all 17 classes occur).
_CLASS_ZONES: dict[int, tuple[str, ...]] = {
    3: ("urban", "core", "village"),
    4: ("rural",),
    5: ("rural", "village"),
    6: ("urban", "rural"),
    7: ("industrial", "urban"),
    8: ("rural", "forest"),
    9: ("urban", "core"),
    10: ("core", "urban"),
    11: ("core", "urban"),
    12: ("core", "urban"),
    13: ("urban", "industrial", "rural"),
    14: ("forest", "rural"),
    15: ("industrial", "urban"),
    17: ("rural", "urban"),
}
# T1 class -> (T2 class, weight) for changing parcels: urban-fringe / rural transitions.
_TRANSITIONS: dict[int, dict[int, float]] = {
    4: {3: 0.35, 6: 0.25, 5: 0.12, 12: 0.10, 7: 0.10, 11: 0.08},
    6: {11: 0.40, 3: 0.40, 9: 0.20},
    17: {9: 0.6, 6: 0.4},
    8: {4: 0.5, 6: 0.5},
    7: {6: 0.5, 11: 0.5},
    14: {17: 0.5, 6: 0.5},
    15: {7: 1.0},
    12: {10: 1.0},
    5: {6: 1.0},
}
# Sampling weight of a class among change candidates.
_CHANGE_WEIGHT = {4: 3.0, 6: 3.0, 17: 2.0, 8: 1.5, 7: 0.7, 14: 0.4, 15: 0.5, 12: 0.8, 5: 1.0}

MIN_PARCEL_M2 = 150.0


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


# --------------------------------------------------------------------------- noise helpers


def _hash_u32(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Integer hash of lattice coordinates -> uint32 (deterministic, platform independent)."""
    a = (np.asarray(ix, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)
    b = (np.asarray(iy, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)
    h = a * np.uint32(0x27D4EB2D) ^ b * np.uint32(0x165667B1) ^ np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def value_noise(xs: np.ndarray, ys: np.ndarray, scale_m: float, salt: int) -> np.ndarray:
    """Smooth value noise on a lattice of ``scale_m`` metres, sampled at ``ys`` x ``xs``.

    Args:
        xs: (W,) x coordinates (m); ys: (H,) y coordinates (m), any consistent frame.
    Returns:
        (H, W) float32 in [0, 1). Depends only on coordinates, so shifted grids agree.
    """

    def axis(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
        g = np.asarray(c, dtype=np.float64) / scale_m
        i0 = np.floor(g).astype(np.int64)
        f = (g - i0).astype(np.float32)
        f = f * f * (3.0 - 2.0 * f)
        return i0, f, int(i0.min()), int(i0.max()) + 2

    ix0, fx, xmin, xmax = axis(xs)
    iy0, fy, ymin, ymax = axis(ys)
    lat = _hash_u32(np.arange(xmin, xmax)[None, :], np.arange(ymin, ymax)[:, None], salt)
    v = (lat >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    jy = iy0 - ymin
    rows = v[jy] * (1.0 - fy)[:, None] + v[jy + 1] * fy[:, None]
    jx = ix0 - xmin
    out = np.empty((len(iy0), len(ix0)), dtype=np.float32)  # C order (views below rely on it)
    np.multiply(rows[:, jx], 1.0 - fx, out=out)
    out += rows[:, jx + 1] * fx
    return out


def _point_noise(x: float, y: float, scale_m: float, salt: int) -> float:
    return float(value_noise(np.array([x]), np.array([y]), scale_m, salt)[0, 0])


# --------------------------------------------------------------------------- city layout


@dataclass
class _Parcel:
    geom: Polygon | MultiPolygon
    cls: int
    zone: str
    block: int  # parent block id (-1 for roads / water / banks)
    d: float  # distance of the centroid from the city centre (m)


def _explode(g: shapely.Geometry) -> list[Polygon]:
    parts = shapely.get_parts(g)
    return [p for p in parts if isinstance(p, Polygon) and p.area >= MIN_PARCEL_M2]


def _cut(poly: Polygon, axis: int, cuts: list[float]) -> list[Polygon]:
    """Split ``poly`` at coordinates ``cuts`` along x (axis 0) or y (axis 1)."""
    minx, miny, maxx, maxy = poly.bounds
    edges = [minx if axis == 0 else miny, *cuts, maxx if axis == 0 else maxy]
    out: list[Polygon] = []
    for a, b in itertools.pairwise(edges):
        cell = box(a, miny, b, maxy) if axis == 0 else box(minx, a, maxx, b)
        out.extend(_explode(poly.intersection(cell)))
    return out


def _split_even(poly: Polygon, k: int, rng: np.random.Generator) -> list[Polygon]:
    """Split ``poly`` across its long axis into ``k`` jittered strips."""
    if k <= 1:
        return [poly]
    minx, miny, maxx, maxy = poly.bounds
    axis = 0 if (maxx - minx) >= (maxy - miny) else 1
    lo, hi = (minx, maxx) if axis == 0 else (miny, maxy)
    step = (hi - lo) / k
    cuts = [lo + step * (i + rng.uniform(-0.2, 0.2)) for i in range(1, k)]
    return _cut(poly, axis, cuts)


def _fields(poly: Polygon, rng: np.random.Generator) -> list[Polygon]:
    """Split a rural block into field parcels (long strips, then cross cuts)."""
    minx, miny, maxx, maxy = poly.bounds
    axis = int(rng.integers(0, 2))
    lo, hi = (minx, maxx) if axis == 0 else (miny, maxy)
    cuts, pos = [], lo
    while True:
        pos += rng.uniform(45.0, 120.0)
        if pos >= hi - 30.0:
            break
        cuts.append(pos)
    out: list[Polygon] = []
    for strip in _cut(poly, axis, cuts):
        sminx, sminy, smaxx, smaxy = strip.bounds
        lo2, hi2 = (sminy, smaxy) if axis == 0 else (sminx, smaxx)
        cuts2, pos = [], lo2
        while True:
            pos += rng.uniform(120.0, 320.0)
            if pos >= hi2 - 60.0:
                break
            cuts2.append(pos)
        out.extend(_cut(strip, 1 - axis, cuts2))
    return out


def _choose(weights: dict[int, float], rng: np.random.Generator) -> int:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return int(keys[int(rng.choice(len(keys), p=p / p.sum()))])


def _build_city(cfg: DemoConfig) -> tuple[list[_Parcel], dict[str, object]]:
    """Local-frame layout: x east, y north, (0, 0) = south-west corner; metres."""
    S = float(cfg.size_m)
    rng = np.random.default_rng(cfg.seed)
    cx, cy = S / 2 + rng.uniform(-0.04, 0.04) * S, S / 2 + rng.uniform(-0.04, 0.04) * S
    centre = Point(cx, cy)
    r_urban, r_core = 0.40 * S, 0.20 * S
    square = box(0.0, 0.0, S, S)
    ind_angle = rng.uniform(-math.pi, math.pi)

    # ---- roads
    n = max(2, round(S / 360.0))
    sp = S / n
    xl = np.sort(sp * (np.arange(n) + 0.5) + rng.uniform(-0.12, 0.12, n) * sp)
    yl = np.sort(sp * (np.arange(n) + 0.5) + rng.uniform(-0.12, 0.12, n) * sp)
    art_x = {int(np.argmin(np.abs(xl - cx)))} | {i for i in range(n) if i % 4 == 1}
    art_y = {int(np.argmin(np.abs(yl - cy)))} | {i for i in range(n) if i % 4 == 2}
    roads: list[shapely.Geometry] = []
    for vertical, lines, arts, cross in ((True, xl, art_x, yl), (False, yl, art_y, xl)):
        stops = [0.0, *cross.tolist(), S]
        for i, c in enumerate(lines):
            for a, b in itertools.pairwise(stops):
                mid = Point(c, (a + b) / 2) if vertical else Point((a + b) / 2, c)
                urban = mid.distance(centre) < r_urban * 1.02
                width = (30.0 if urban else 18.0) if i in arts else (18.0 if urban else 8.0)
                seg = LineString([(c, a), (c, b)] if vertical else [(a, c), (b, c)])
                roads.append(seg.buffer(width / 2, cap_style="square", join_style="mitre"))
    disc_u = centre.buffer(r_urban, quad_segs=32)
    disc_c = centre.buffer(r_core, quad_segs=32)
    mids_x = (xl[:-1] + xl[1:]) / 2
    mids_y = (yl[:-1] + yl[1:]) / 2
    for vertical, mids in ((True, mids_x), (False, mids_y)):
        for m in mids:
            seg = LineString([(m, 0), (m, S)] if vertical else [(0, m), (S, m)])
            roads.append(seg.intersection(disc_u).buffer(5.0, cap_style="flat"))
    for vertical, lines in ((True, xl), (False, yl)):
        quarter = np.concatenate(
            [(3 * lines[:-1] + lines[1:]) / 4, (lines[:-1] + 3 * lines[1:]) / 4]
        )
        for m in quarter:
            seg = LineString([(m, 0), (m, S)] if vertical else [(0, m), (S, m)])
            roads.append(seg.intersection(disc_c).buffer(3.5, cap_style="flat"))
    ring = centre.buffer(r_urban + 9.0, quad_segs=48).difference(
        centre.buffer(r_urban - 9.0, quad_segs=48)
    )
    roads.append(ring)
    road_union = shapely.union_all(roads).intersection(square)

    # ---- river (west -> east meander)
    yr = cy + rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.16) * S
    a1, l1, p1 = 0.05 * S, rng.uniform(0.8, 1.2) * S, rng.uniform(0, 2 * math.pi)
    a2, l2, p2 = 0.015 * S, rng.uniform(0.25, 0.4) * S, rng.uniform(0, 2 * math.pi)
    xs = np.linspace(-60.0, S + 60.0, max(50, int(S / 15)))
    ys = yr + a1 * np.sin(2 * math.pi * xs / l1 + p1) + a2 * np.sin(2 * math.pi * xs / l2 + p2)
    river_line = LineString(np.column_stack([xs, ys]))
    water = river_line.buffer(22.0, quad_segs=8)
    bank = river_line.buffer(62.0, quad_segs=8)
    water_poly = water.difference(road_union).intersection(square)
    bank_poly = bank.difference(water).difference(road_union).intersection(square)

    parcels: list[_Parcel] = []

    def chunks(g: shapely.Geometry, cell: float) -> list[Polygon]:
        k = max(1, math.ceil(S / cell))
        edges = np.linspace(0.0, S, k + 1)
        out: list[Polygon] = []
        for i in range(k):
            for j in range(k):
                out.extend(
                    _explode(g.intersection(box(edges[i], edges[j], edges[i + 1], edges[j + 1])))
                )
        return out

    for g in chunks(road_union, 600.0):
        parcels.append(_Parcel(g, 1, "road", -1, g.centroid.distance(centre)))
    for g in chunks(water_poly, 600.0):
        parcels.append(_Parcel(g, 2, "water", -1, g.centroid.distance(centre)))
    for g in chunks(bank_poly, 300.0):
        d = g.centroid.distance(centre)
        if d > r_urban:
            cls = 16
        else:
            cls = 9 if rng.random() < 0.6 else 17
        parcels.append(_Parcel(g, cls, "bank", -1, d))

    # ---- blocks and parcels
    blocks = _explode(square.difference(road_union).difference(bank))
    village_pts: list[Point] = []
    n_vill = max(1, round(S * S / 3.0e6))
    for _ in range(200):
        if len(village_pts) >= n_vill:
            break
        p = Point(rng.uniform(0.05, 0.95) * S, rng.uniform(0.05, 0.95) * S)
        if p.distance(centre) > r_urban + 120.0 and p.distance(river_line) > 120.0:
            village_pts.append(p)
    forest_salt = int(rng.integers(0, 2**31))
    for bid, blk in enumerate(blocks):
        c = blk.centroid
        d = c.distance(centre)
        if d < r_urban:
            ang = math.atan2(c.y - cy, c.x - cx)
            dang = abs((ang - ind_angle + math.pi) % (2 * math.pi) - math.pi)
            if d < r_core:
                zone, unit = "core", 9000.0
            elif dang < 0.65 and d > 0.45 * r_urban:
                zone, unit = "industrial", 30000.0
            else:
                zone, unit = "urban", 14000.0
            k = int(np.clip(round(blk.area / unit), 1, 5))
            pieces = _split_even(blk, k, rng)
            for p in pieces:
                parcels.append(_Parcel(p, _choose(_ZONE_WEIGHTS[zone], rng), zone, bid, d))
        else:
            for p in _fields(blk, rng):
                pc = p.centroid
                if any(pc.distance(v) < 160.0 for v in village_pts):
                    zone = "village"
                elif _point_noise(pc.x, pc.y, 700.0, forest_salt) > 0.72:
                    zone = "forest"
                else:
                    zone = "rural"
                parcels.append(
                    _Parcel(p, _choose(_ZONE_WEIGHTS[zone], rng), zone, bid, pc.distance(centre))
                )

    # A few unlabelled gaps (background 0): small parcels left out of the annotations.
    for p in parcels:
        if p.block >= 0 and p.geom.area < 2500.0 and rng.random() < 0.08:
            p.cls = 0

    # ---- every class occurs at least once
    for k in range(1, N_CLASSES + 1):
        counts = np.bincount([p.cls for p in parcels], minlength=N_CLASSES + 1)
        if counts[k] > 0:
            continue
        zones = _CLASS_ZONES.get(k, ("rural", "urban"))
        cands = [
            i
            for i, p in enumerate(parcels)
            if p.block >= 0 and counts[p.cls] > 1 and (p.zone in zones or k in (2, 16, 1))
        ]
        if not cands:
            cands = [i for i, p in enumerate(parcels) if p.block >= 0 and counts[p.cls] > 1]
        if cands:
            parcels[cands[int(rng.integers(0, len(cands)))]].cls = k

    info = {"centre": (cx, cy), "r_urban": r_urban, "r_core": r_core, "blocks": blocks}
    return parcels, info


def _change(parcels: list[_Parcel], cfg: DemoConfig, info: dict[str, object]) -> list[int]:
    """T2 classes: change whole parcels until ``change_fraction`` of the square changed."""
    S = float(cfg.size_m)
    rng = np.random.default_rng([cfg.seed, 2])
    r_urban = float(info["r_urban"])  # type: ignore[arg-type]
    t2 = [p.cls for p in parcels]
    counts = np.bincount(t2, minlength=N_CLASSES + 1)
    keys = []
    for i, p in enumerate(parcels):
        w = _CHANGE_WEIGHT.get(p.cls, 0.0) if p.block >= 0 else 0.0
        if w <= 0.0:
            continue
        if p.zone in ("rural", "village", "forest") and p.d < r_urban + 0.2 * S:
            w *= 3.0  # urban expansion at the fringe
        keys.append((rng.random() ** (1.0 / w), i))
    keys.sort(reverse=True)
    target = cfg.change_fraction * S * S
    changed = 0.0
    for _, i in keys:
        if changed >= target:
            break
        p = parcels[i]
        if counts[p.cls] <= 1 or changed + p.geom.area > target + 0.03 * S * S:
            continue
        trans = dict(_TRANSITIONS[p.cls])
        if p.cls == 4 and p.d > r_urban + 0.25 * S:
            trans = {6: 0.3, 5: 0.4, 8: 0.3}  # far from the city: agricultural change only
        new = _choose(trans, rng)
        counts[p.cls] -= 1
        counts[new] += 1
        t2[i] = new
        changed += p.geom.area
    return t2


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
    parcels, info = _build_city(cfg)
    t2cls = _change(parcels, cfg, info)
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
    polys = []
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


# --------------------------------------------------------------------------- rendering

_PALETTE: dict[int, list[tuple[tuple[int, int, int], tuple[int, int, int]]]] = {
    # class: [(colour A, colour B)]; texture t in [0,1] blends A -> B
    0: [((120, 118, 96), (96, 110, 80))],
    1: [((78, 80, 84), (104, 104, 106)), ((88, 88, 90), (112, 110, 108))],
    2: [((34, 58, 72), (48, 78, 88)), ((40, 66, 70), (56, 84, 86))],
    3: [
        ((168, 84, 70), (118, 122, 104)),
        ((140, 140, 146), (110, 124, 100)),
        ((96, 112, 150), (120, 124, 106)),
        ((186, 170, 150), (112, 118, 100)),
    ],
    4: [
        ((92, 132, 62), (128, 148, 82)),
        ((176, 160, 104), (150, 132, 86)),
        ((120, 100, 74), (146, 124, 92)),
        ((110, 150, 70), (84, 116, 58)),
    ],
    5: [((226, 230, 232), (140, 128, 104)), ((210, 216, 220), (150, 134, 106))],
    6: [((182, 160, 126), (160, 138, 108)), ((196, 180, 150), (170, 154, 124))],
    7: [
        ((200, 204, 210), (150, 150, 146)),
        ((88, 128, 176), (146, 146, 140)),
        ((214, 214, 206), (138, 136, 132)),
    ],
    8: [((60, 96, 48), (150, 138, 100)), ((70, 106, 52), (128, 130, 86))],
    9: [((112, 150, 84), (52, 88, 46)), ((120, 160, 92), (60, 96, 52))],
    10: [((190, 180, 160), (106, 136, 86)), ((160, 160, 166), (112, 140, 92))],
    11: [
        ((214, 216, 220), (150, 150, 150)),
        ((150, 176, 196), (140, 140, 138)),
        ((226, 206, 170), (146, 144, 140)),
    ],
    12: [((232, 228, 220), (186, 170, 150)), ((206, 196, 184), (170, 160, 146))],
    13: [((110, 120, 96), (150, 150, 140)), ((96, 110, 90), (136, 140, 128))],
    14: [((38, 70, 36), (62, 98, 48)), ((34, 62, 34), (56, 90, 44))],
    15: [((236, 236, 232), (128, 128, 124)), ((220, 210, 190), (120, 120, 116))],
    16: [((96, 120, 80), (52, 84, 78)), ((110, 124, 86), (60, 90, 86))],
    17: [((128, 156, 88), (150, 166, 104)), ((118, 146, 80), (142, 160, 96))],
}
_VEGETATION = (4, 8, 9, 14, 16, 17)


@dataclass(frozen=True)
class RenderLayer:
    """A date's annotation layer prepared for window rendering.

    ``geoms``/``order``: see :func:`paint_order`; ``tree``: STRtree over ``geoms``; LUT arrays
    are indexed by feature index + 1 (0 = background): ``cls`` uint8, ``col_a``/``col_b``
    (N+1, 3) float32, ``params`` (N+1, 8) float32 = angle, per_x, per_y, frac_x, frac_y,
    ph_x, ph_y, salt.
    """

    geoms: np.ndarray
    order: np.ndarray
    tree: shapely.STRtree
    cls: np.ndarray
    col_a: np.ndarray
    col_b: np.ndarray
    params: np.ndarray
    date: str


def prepare_layer(gdf: gpd.GeoDataFrame, cfg: DemoConfig, date: str) -> RenderLayer:
    """Per-feature colours and texture parameters (deterministic per parcel, class and date)."""
    geoms, order = paint_order(gdf)
    n = len(gdf)
    cls = np.zeros(n + 1, dtype=np.uint8)
    cls[1:] = gdf["class"].to_numpy().astype(np.uint8)
    col_a = np.zeros((n + 1, 3), dtype=np.float32)
    col_b = np.zeros((n + 1, 3), dtype=np.float32)
    params = np.zeros((n + 1, 8), dtype=np.float32)
    col_a[0], col_b[0] = _PALETTE[0][0]
    params[0] = (0.0, 20.0, 20.0, 0.5, 0.5, 0.0, 0.0, 1.0)
    parcels = gdf["parcel"].to_numpy()
    for j in range(n):
        k = int(cls[j + 1])
        r = np.random.default_rng([cfg.seed, 7, int(parcels[j]), k])
        a, b = _PALETTE[k][int(r.integers(0, len(_PALETTE[k])))]
        jit = r.uniform(-10, 10, 3)
        ca = np.array(a, dtype=np.float32) + jit
        cb = np.array(b, dtype=np.float32) + jit * 0.5
        if date == "t2" and k in _VEGETATION:  # phenology: vegetation shifts a little
            r2 = np.random.default_rng([cfg.seed, 8, int(parcels[j])])
            ph = r2.uniform(-14, 10)
            ca += np.array([-ph * 0.6, ph * 0.4, -ph * 0.3], dtype=np.float32)
            if k == 4 and r2.random() < 0.3:  # some fields harvested between the dates
                ca = np.array((176, 160, 112), dtype=np.float32) + jit
        col_a[j + 1], col_b[j + 1] = ca, cb
        angle = float(r.choice([0.0, 0.5 * math.pi])) + r.uniform(-0.05, 0.05)
        if k in (3,):
            per = (r.uniform(14, 20), r.uniform(20, 30), r.uniform(0.55, 0.7), r.uniform(0.4, 0.55))
        elif k in (11,):
            per = (r.uniform(40, 60), r.uniform(35, 55), r.uniform(0.7, 0.85), r.uniform(0.65, 0.8))
        elif k in (7,):
            per = (
                r.uniform(60, 100),
                r.uniform(40, 70),
                r.uniform(0.75, 0.88),
                r.uniform(0.7, 0.85),
            )
        elif k in (10, 12):
            per = (r.uniform(50, 75), r.uniform(45, 65), r.uniform(0.5, 0.65), r.uniform(0.45, 0.6))
        elif k == 13:
            per = (r.uniform(30, 50), r.uniform(30, 50), r.uniform(0.35, 0.5), r.uniform(0.3, 0.45))
        elif k == 15:
            per = (r.uniform(22, 30), r.uniform(22, 30), r.uniform(6, 9), 0.0)  # tank radius
        elif k == 4:
            per = (r.uniform(3.0, 8.0), 0.0, 0.0, 0.0)  # stripe period
        elif k == 5:
            per = (r.uniform(9.0, 12.0), 0.0, r.uniform(0.65, 0.8), 0.0)  # greenhouse rows
        elif k == 8:
            per = (r.uniform(5.0, 7.0), r.uniform(5.0, 7.0), r.uniform(1.6, 2.2), 0.0)  # crowns
        else:
            per = (20.0, 20.0, 0.5, 0.5)
        params[j + 1] = (
            angle,
            *per,
            r.uniform(0, 200),
            r.uniform(0, 200),
            float(r.integers(1, 2**24)),
        )
    return RenderLayer(
        geoms=geoms,
        order=order,
        tree=shapely.STRtree(geoms),
        cls=cls,
        col_a=col_a,
        col_b=col_b,
        params=params,
        date=date,
    )


def _fid_window(layer: RenderLayer, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) int32 feature index + 1 of the winning feature per pixel (0 = none)."""
    from rasterio.features import rasterize

    h, w = shape
    x0, y0 = transform @ (0, 0)
    x1, y1 = transform @ (w, h)
    hits = layer.tree.query(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    if len(hits) == 0:
        return np.zeros(shape, dtype=np.int32)
    rank = np.empty(len(layer.order), dtype=np.int64)
    rank[layer.order] = np.arange(len(layer.order))
    hits = hits[np.argsort(rank[hits])]
    shapes = [(layer.geoms[i], int(i) + 1) for i in hits if not layer.geoms[i].is_empty]
    if not shapes:
        return np.zeros(shape, dtype=np.int32)
    return rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32")


def _buildings(
    u: np.ndarray, v: np.ndarray, p: np.ndarray, salt: np.ndarray, shadow_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rooftop grid: (roof mask, shadow mask, per-building jitter in [0,1))."""
    per_x, per_y, fr_x, fr_y, ph_x, ph_y = (p[:, i] for i in range(1, 7))

    def inside(uu: np.ndarray, vv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = (uu + ph_x) / per_x
        b = (vv + ph_y) / per_y
        bi, bj = np.floor(a), np.floor(b)
        h = _hash_u32(bi.astype(np.int64), bj.astype(np.int64) + salt, 17)
        built = (h & np.uint32(0xFF)) < np.uint32(225)
        return ((a - bi) < fr_x) & ((b - bj) < fr_y) & built, h

    roof, h = inside(u, v)
    sh, _ = inside(u - 0.4 * shadow_m, v + shadow_m)  # sun in the south-west: shadow to the NE
    jitter = ((h >> np.uint32(8)) & np.uint32(0xFF)).astype(np.float32) / 255.0
    return roof, sh & ~roof, jitter


def render_window(
    layer: RenderLayer, grid: DemoGrid, window: tuple[int, int, int, int], cfg: DemoConfig
) -> np.ndarray:
    """Render one window of a date's RGB image.

    Args:
        window: (col0, row0, width, height) in ``grid`` pixels.
    Returns:
        (3, height, width) uint8; 0 = no data (outside the city square or the T2 corner gap),
        valid pixels in 1..255.
    """
    col0, row0, w, h = window
    tr = grid.window_transform(col0, row0)
    fid = _fid_window(layer, tr, (h, w))
    cls = layer.cls[fid]
    x0, y0 = cfg.origin
    S = float(cfg.size_m)
    xs = tr.c + tr.a * (np.arange(w) + 0.5)
    ys = tr.f + tr.e * (np.arange(h) + 0.5)
    u = (xs - x0).astype(np.float32)  # metres east of the city's west edge
    v = (y0 - ys).astype(np.float32)  # metres south of the city's north edge
    salt = cfg.seed & 0xFFFFFF
    n_low = value_noise(u, v, 45.0, salt + 1)
    n_mid = value_noise(u, v, 6.0, salt + 2)
    n_fine = value_noise(u, v, 1.7, salt + 3)
    t = np.ascontiguousarray(0.35 * n_low + 0.65 * n_mid)
    shade = np.ones((h, w), dtype=np.float32)
    shadow_m = 3.0 if layer.date == "t1" else 4.2
    flat_cls = cls.ravel()
    present = np.unique(flat_cls)
    uu_all = np.broadcast_to(u[None, :], (h, w)).ravel()
    vv_all = np.broadcast_to(v[:, None], (h, w)).ravel()
    tf, sf = t.reshape(-1), shade.reshape(-1)  # views: writes go to t / shade
    nf, nm = n_fine.reshape(-1), n_mid.reshape(-1)
    for k in present:
        idx = np.flatnonzero(flat_cls == k)
        uu, vv = uu_all[idx], vv_all[idx]
        p = layer.params[fid.ravel()[idx]]
        psalt = p[:, 7].astype(np.int64)
        if k in (3, 11, 7, 10, 12, 13):
            roof, shadow, jit = _buildings(uu, vv, p, psalt, shadow_m)
            tt = np.where(roof, 0.08 * jit + 0.04 * nf[idx], 0.7 + 0.3 * nm[idx])
            if k == 10:  # courtyards: inner part of the building is ground
                a = ((uu + p[:, 5]) / p[:, 1]) % 1.0
                b = ((vv + p[:, 6]) / p[:, 2]) % 1.0
                court = (np.abs(a - p[:, 3] / 2) < p[:, 3] * 0.25) & (
                    np.abs(b - p[:, 4] / 2) < p[:, 4] * 0.25
                )
                tt = np.where(roof & court, 0.85, tt)
            tf[idx] = tt
            sf[idx] = np.where(shadow, 0.55, np.where(roof, 1.0 - 0.12 * jit, 1.0))
        elif k == 15:  # storage tanks on a square lattice
            a = (uu + p[:, 5]) / p[:, 1]
            b = (vv + p[:, 6]) / p[:, 2]
            da = (a - np.floor(a) - 0.5) * p[:, 1]
            db = (b - np.floor(b) - 0.5) * p[:, 2]
            r2 = da * da + db * db
            rad = p[:, 3]
            tank = r2 < rad * rad
            tf[idx] = np.where(tank, 0.05 * nf[idx] + 0.1 * (r2 / (rad * rad)), 0.8 + 0.2 * nm[idx])
            dsh = (da - 0.4 * shadow_m) ** 2 + (db + shadow_m) ** 2
            sf[idx] = np.where(~tank & (dsh < rad * rad), 0.6, 1.0)
        elif k == 4:  # cropland: rows
            ang = p[:, 0]
            s = uu * np.cos(ang) + vv * np.sin(ang)
            tf[idx] = 0.5 + 0.35 * np.sin(2 * np.pi * s / p[:, 1]) + 0.15 * (nm[idx] - 0.5)
        elif k == 5:  # greenhouses: bright plastic rows with soil gaps
            ang = p[:, 0]
            s = (uu * np.cos(ang) + vv * np.sin(ang)) / p[:, 1]
            row = (s - np.floor(s)) < p[:, 3]
            tf[idx] = np.where(row, 0.06 * nf[idx], 0.8 + 0.2 * nm[idx])
            sf[idx] = np.where(row, 1.0 - 0.1 * np.cos(2 * np.pi * s / p[:, 3]) ** 2, 1.0)
        elif k == 8:  # orchard: crowns on a lattice
            a = (uu + p[:, 5]) / p[:, 1]
            b = (vv + p[:, 6]) / p[:, 2]
            da = (a - np.floor(a) - 0.5) * p[:, 1]
            db = (b - np.floor(b) - 0.5) * p[:, 2]
            rad = p[:, 3]
            r2 = da * da + db * db
            crown = r2 < rad * rad
            tf[idx] = np.where(
                crown, 0.15 * (r2 / (rad * rad)) + 0.1 * nf[idx], 0.7 + 0.3 * nm[idx]
            )
            dsh = (da - 0.2 * shadow_m) ** 2 + (db + 0.5 * shadow_m) ** 2
            sf[idx] = np.where(~crown & (dsh < rad * rad), 0.6, 1.0)
        elif k == 14:  # forest: dense crowns from fine noise
            c = nf[idx]
            tf[idx] = np.clip(c * 1.2 - 0.1, 0.0, 1.0)
            sf[idx] = 0.75 + 0.35 * c
        elif k == 9:  # park: lawn with scattered trees
            tree = nf[idx] * 0.6 + nm[idx] * 0.4 > 0.68
            tf[idx] = np.where(tree, 1.0, 0.3 * nm[idx])
            sf[idx] = np.where(tree, 0.8 + 0.2 * nf[idx], 1.0)
        elif k == 16:  # wetland: mottled reeds and water
            tf[idx] = np.clip(0.5 * nm[idx] + 0.5 * nf[idx], 0, 1) ** 1.5
        elif k == 1:  # asphalt
            tf[idx] = 0.5 + 0.25 * (nf[idx] - 0.5)
        elif k == 2:
            tf[idx] = 0.6 * n_low.ravel()[idx] + 0.1 * nf[idx]
    mult = shade * (0.9 + 0.2 * n_low)
    rng = np.random.default_rng([cfg.seed, 11, 1 if layer.date == "t1" else 2, row0, col0])
    noise = rng.standard_normal((h, w), dtype=np.float32) * 2.0
    if layer.date == "t2":  # other illumination: gain, offset and a thin low-frequency haze
        gain, offset = (1.05, 1.03, 0.98), (4.0, 4.0, 5.0)
        noise += value_noise(u, v, 400.0, salt + 9) * 10.0
    else:
        gain, offset = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
    valid = (u[None, :] >= 0) & (u[None, :] < S) & (v[:, None] >= 0) & (v[:, None] < S)
    if layer.date == "t2":  # scene edge: triangular no-data corner in the south-east
        valid &= (S - u[None, :]) + (S - v[:, None]) > 0.12 * S
    out = np.empty((3, h, w), dtype=np.uint8)
    for ch in range(3):
        a = layer.col_a[:, ch]
        x = a[fid]
        x += t * (layer.col_b[:, ch] - a)[fid]
        x *= mult * np.float32(gain[ch])
        x += noise
        x += np.float32(offset[ch])
        np.clip(x, 1.0, 255.0, out=x)
        out[ch] = x
    out[:, ~valid] = 0
    return out


def iter_render(
    layer: RenderLayer, grid: DemoGrid, cfg: DemoConfig, window_px: int = 1024
) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Yield ((col0, row0, w, h), (3, h, w) uint8) windows covering ``grid`` in row-major order.

    Memory is bounded by ``window_px`` (independent of the image size).
    """
    for win in grid.windows(window_px):
        yield win, render_window(layer, grid, win, cfg)
