"""The synthetic demo city's land-use plan: parcels on a road grid, their T1 classes and the
parcels that change by T2 (see :mod:`pipeline.demo.city` for the rules). Pure and
deterministic (``demo.seed``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.affinity
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from pipeline.config import DemoConfig
from pipeline.demo.noise import point_noise

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
    out: list[Polygon] = []
    for strip in _cut(poly, axis, _cut_positions(rng, lo, hi, (45.0, 120.0), 30.0)):
        sminx, sminy, smaxx, smaxy = strip.bounds
        lo2, hi2 = (sminy, smaxy) if axis == 0 else (sminx, smaxx)
        cuts = _cut_positions(rng, lo2, hi2, (120.0, 320.0), 60.0)
        out.extend(_cut(strip, 1 - axis, cuts))
    return out


def _cut_positions(rng: np.random.Generator, lo: float, hi: float,
                   step: tuple[float, float], margin: float) -> list[float]:
    """Cut coordinates from ``lo`` in random steps (uniform in ``step``, metres), stopping
    ``margin`` metres short of ``hi``."""
    cuts: list[float] = []
    pos = lo
    while True:
        pos += rng.uniform(*step)
        if pos >= hi - margin:
            return cuts
        cuts.append(pos)


def _choose(weights: dict[int, float], rng: np.random.Generator) -> int:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return int(keys[int(rng.choice(len(keys), p=p / p.sum()))])


def build_city(cfg: DemoConfig) -> tuple[list[_Parcel], dict[str, object]]:
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
                elif point_noise(pc.x, pc.y, 700.0, forest_salt) > 0.72:
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


def change_parcels(parcels: list[_Parcel], cfg: DemoConfig, info: dict[str, object]) -> list[int]:
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


