"""Procedural rendering of the demo's 0.5 m RGB images from a date's annotation layer.

Each class has a texture (a row of :data:`TEXTURES`: rooftops, tanks, crop rows, greenhouse
rows, orchard crowns, forest, park, wetland, asphalt, water) and per-parcel texture
parameters (:data:`TEXTURE_PARAMS`), both looked up by class id instead of branching.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
import shapely.affinity
from affine import Affine
from shapely.geometry import box

from pipeline.config import DemoConfig
from pipeline.demo.city import DemoGrid, paint_order
from pipeline.demo.noise import hash_u32, value_noise

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


def _default_params(r: np.random.Generator) -> tuple[float, ...]:
    return (20.0, 20.0, 0.5, 0.5)


#: Per-parcel texture parameters by class: ``rng -> (per_x, per_y, frac_x, frac_y)`` (the
#: meaning depends on the texture; the draws' order is part of the demo's seed contract).
TEXTURE_PARAMS: dict[int, Callable[[np.random.Generator], tuple[float, ...]]] = {
    # residential roofs
    3: lambda r: (r.uniform(14, 20), r.uniform(20, 30), r.uniform(0.55, 0.7),
                  r.uniform(0.4, 0.55)),
    # commercial blocks
    11: lambda r: (r.uniform(40, 60), r.uniform(35, 55), r.uniform(0.7, 0.85),
                   r.uniform(0.65, 0.8)),
    # industrial halls
    7: lambda r: (r.uniform(60, 100), r.uniform(40, 70), r.uniform(0.75, 0.88),
                  r.uniform(0.7, 0.85)),
    # public buildings (courtyards) / construction
    10: lambda r: (r.uniform(50, 75), r.uniform(45, 65), r.uniform(0.5, 0.65),
                   r.uniform(0.45, 0.6)),
    12: lambda r: (r.uniform(50, 75), r.uniform(45, 65), r.uniform(0.5, 0.65),
                   r.uniform(0.45, 0.6)),
    13: lambda r: (r.uniform(30, 50), r.uniform(30, 50), r.uniform(0.35, 0.5),
                   r.uniform(0.3, 0.45)),
    15: lambda r: (r.uniform(22, 30), r.uniform(22, 30), r.uniform(6, 9), 0.0),  # tank radius
    4: lambda r: (r.uniform(3.0, 8.0), 0.0, 0.0, 0.0),  # crop stripe period
    5: lambda r: (r.uniform(9.0, 12.0), 0.0, r.uniform(0.65, 0.8), 0.0),  # greenhouse rows
    8: lambda r: (r.uniform(5.0, 7.0), r.uniform(5.0, 7.0), r.uniform(1.6, 2.2), 0.0),  # crowns
}


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
        per = TEXTURE_PARAMS.get(k, _default_params)(r)
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
        h = hash_u32(bi.astype(np.int64), bj.astype(np.int64) + salt, 17)
        built = (h & np.uint32(0xFF)) < np.uint32(225)
        return ((a - bi) < fr_x) & ((b - bj) < fr_y) & built, h

    roof, h = inside(u, v)
    sh, _ = inside(u - 0.4 * shadow_m, v + shadow_m)  # sun in the south-west: shadow to the NE
    jitter = ((h >> np.uint32(8)) & np.uint32(0xFF)).astype(np.float32) / 255.0
    return roof, sh & ~roof, jitter


@dataclass(frozen=True)
class Texels:
    """The pixels of one class inside a render window (all arrays (n,)).

    ``u``/``v``: metres east / south of the city's NW corner; ``p``: (n, 8) texture
    parameters of each pixel's parcel (:data:`TEXTURE_PARAMS` layout); ``salt``: per-parcel
    salt; ``fine``/``mid``/``low``: value noise at 1.7 / 6 / 45 m; ``shadow_m``: shadow length.
    """

    u: np.ndarray
    v: np.ndarray
    p: np.ndarray
    salt: np.ndarray
    fine: np.ndarray
    mid: np.ndarray
    low: np.ndarray
    shadow_m: float


#: A texture: ``(texels, class) -> (texture t in [0, 1], shade multiplier or None)``.
Texture = Callable[[Texels, int], tuple[np.ndarray, np.ndarray | None]]


def _tex_buildings(x: Texels, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Rooftops on a jittered grid with cast shadows; public buildings (10) have courtyards."""
    p = x.p
    roof, shadow, jit = _buildings(x.u, x.v, p, x.salt, x.shadow_m)
    tt = np.where(roof, 0.08 * jit + 0.04 * x.fine, 0.7 + 0.3 * x.mid)
    if k == 10:  # courtyards: inner part of the building is ground
        a = ((x.u + p[:, 5]) / p[:, 1]) % 1.0
        b = ((x.v + p[:, 6]) / p[:, 2]) % 1.0
        court = (np.abs(a - p[:, 3] / 2) < p[:, 3] * 0.25) & (
            np.abs(b - p[:, 4] / 2) < p[:, 4] * 0.25
        )
        tt = np.where(roof & court, 0.85, tt)
    return tt, np.where(shadow, 0.55, np.where(roof, 1.0 - 0.12 * jit, 1.0))


def _lattice(x: Texels) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (m) from the nearest lattice centre, squared distance and radius per pixel."""
    p = x.p
    a = (x.u + p[:, 5]) / p[:, 1]
    b = (x.v + p[:, 6]) / p[:, 2]
    da = (a - np.floor(a) - 0.5) * p[:, 1]
    db = (b - np.floor(b) - 0.5) * p[:, 2]
    return da, db, da * da + db * db, p[:, 3]


def _tex_tanks(x: Texels, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Storage tanks on a square lattice."""
    da, db, r2, rad = _lattice(x)
    tank = r2 < rad * rad
    tt = np.where(tank, 0.05 * x.fine + 0.1 * (r2 / (rad * rad)), 0.8 + 0.2 * x.mid)
    dsh = (da - 0.4 * x.shadow_m) ** 2 + (db + x.shadow_m) ** 2
    return tt, np.where(~tank & (dsh < rad * rad), 0.6, 1.0)


def _tex_crop_rows(x: Texels, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Cropland: rows."""
    ang = x.p[:, 0]
    s = x.u * np.cos(ang) + x.v * np.sin(ang)
    return 0.5 + 0.35 * np.sin(2 * np.pi * s / x.p[:, 1]) + 0.15 * (x.mid - 0.5), None


def _tex_greenhouses(x: Texels, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Greenhouses: bright plastic rows with soil gaps."""
    p = x.p
    ang = p[:, 0]
    s = (x.u * np.cos(ang) + x.v * np.sin(ang)) / p[:, 1]
    row = (s - np.floor(s)) < p[:, 3]
    return (np.where(row, 0.06 * x.fine, 0.8 + 0.2 * x.mid),
            np.where(row, 1.0 - 0.1 * np.cos(2 * np.pi * s / p[:, 3]) ** 2, 1.0))


def _tex_orchard(x: Texels, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Orchard: crowns on a lattice."""
    da, db, r2, rad = _lattice(x)
    crown = r2 < rad * rad
    tt = np.where(crown, 0.15 * (r2 / (rad * rad)) + 0.1 * x.fine, 0.7 + 0.3 * x.mid)
    dsh = (da - 0.2 * x.shadow_m) ** 2 + (db + 0.5 * x.shadow_m) ** 2
    return tt, np.where(~crown & (dsh < rad * rad), 0.6, 1.0)


def _tex_forest(x: Texels, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Forest: dense crowns from fine noise."""
    c = x.fine
    return np.clip(c * 1.2 - 0.1, 0.0, 1.0), 0.75 + 0.35 * c


def _tex_park(x: Texels, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Park: lawn with scattered trees."""
    tree = x.fine * 0.6 + x.mid * 0.4 > 0.68
    return np.where(tree, 1.0, 0.3 * x.mid), np.where(tree, 0.8 + 0.2 * x.fine, 1.0)


def _tex_wetland(x: Texels, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Wetland: mottled reeds and water."""
    return np.clip(0.5 * x.mid + 0.5 * x.fine, 0, 1) ** 1.5, None


def _tex_asphalt(x: Texels, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    return 0.5 + 0.25 * (x.fine - 0.5), None


def _tex_water(x: Texels, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    return 0.6 * x.low + 0.1 * x.fine, None


#: Texture of each class (classes without one keep the flat two-colour noise blend).
TEXTURES: dict[int, Texture] = {
    **dict.fromkeys((3, 11, 7, 10, 12, 13), _tex_buildings),
    15: _tex_tanks,
    4: _tex_crop_rows,
    5: _tex_greenhouses,
    8: _tex_orchard,
    14: _tex_forest,
    9: _tex_park,
    16: _tex_wetland,
    1: _tex_asphalt,
    2: _tex_water,
}


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
    n_low_flat = n_low.ravel()
    for k in present:
        idx = np.flatnonzero(flat_cls == k)
        texture = TEXTURES.get(int(k))
        if texture is None:
            continue  # flat colour A (texture 0.35 low + 0.65 mid noise)
        p = layer.params[fid.ravel()[idx]]
        px = Texels(uu_all[idx], vv_all[idx], p, p[:, 7].astype(np.int64), nf[idx], nm[idx],
                    n_low_flat[idx], shadow_m)
        tt, ss = texture(px, int(k))
        tf[idx] = tt
        if ss is not None:
            sf[idx] = ss
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
