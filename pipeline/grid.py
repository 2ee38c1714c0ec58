"""AOI Sentinel grids and 5x centred footprints (pure math, vectorised over patches).

Conventions
-----------
* Each AOI has one fixed Sentinel grid (:class:`AoiGrid`): the UTM zone of the AOI centroid
  (WGS84 / UTM, EPSG 326xx north or 327xx south), square ``res_m`` pixels (default 10 m),
  north-up, upper-left origin snapped to a multiple of ``origin_multiple_m`` (default 60 m, the
  coarsest native Sentinel-2 resolution, so native S2 pixels nest in the grid).
* Because ``origin_multiple_m`` is a multiple of ``res_m``, every AOI grid is a window of the
  global lattice ``x = i * res_m, y = j * res_m`` of its UTM zone. Footprints are snapped to that
  lattice first; the AOI grid is then the smallest 60 m-aligned window containing them all, so
  footprint windows are integer offsets into it (no resampling, ever).
* Footprint rule: ``size_px = round(scale * patch_side_m / res_m)`` with ``patch_side_m =
  patch_size_px * gsd_m`` (FUSU: 5 x 512 px x 0.5 m / 10 m = 128 px), unless ``size_px`` or
  ``size_m`` is given explicitly. The footprint is centred on the patch centre and snapped so its
  upper-left corner lies on the lattice: ``col0 = floor((cx - x_ref)/res - size/2 + 0.5)``.
* The patch's exact position inside its footprint is recorded in fractional footprint pixels
  (``patch_off_x_px`` from the footprint's left edge, ``patch_off_y_px`` from its top edge,
  and ``patch_w_px`` / ``patch_h_px``) so consumers can centre-crop without guessing.

All coordinates are in metres of the AOI grid CRS unless stated; pixel rows grow southwards.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from pipeline.errors import GridError


@dataclass(frozen=True)
class AoiGrid:
    """One AOI's fixed Sentinel grid.

    Attributes:
        epsg: EPSG code of the UTM CRS (326xx / 327xx).
        res_m: Pixel size (m), square.
        x0: Easting of the grid's upper-left corner (m), a multiple of ``origin_multiple_m``.
        y0: Northing of the grid's upper-left corner (m), a multiple of ``origin_multiple_m``.
        width: Number of columns (px).
        height: Number of rows (px).
    """

    epsg: int
    res_m: float
    x0: float
    y0: float
    width: int
    height: int

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def transform(self) -> Affine:
        """Affine pixel -> CRS transform of the upper-left corner convention (rasterio)."""
        return Affine(self.res_m, 0.0, self.x0, 0.0, -self.res_m, self.y0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in metres of the grid CRS."""
        return (
            self.x0,
            self.y0 - self.height * self.res_m,
            self.x0 + self.width * self.res_m,
            self.y0,
        )

    def window_transform(self, col0: int, row0: int) -> Affine:
        """Transform of a window whose upper-left pixel is (col0, row0) of this grid."""
        r = self.res_m
        return Affine(r, 0.0, self.x0 + col0 * r, 0.0, -r, self.y0 - row0 * r)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "epsg": self.epsg,
            "res_m": self.res_m,
            "x0": self.x0,
            "y0": self.y0,
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_dict(cls, d: dict[str, float | int]) -> AoiGrid:
        return cls(
            epsg=int(d["epsg"]),
            res_m=float(d["res_m"]),
            x0=float(d["x0"]),
            y0=float(d["y0"]),
            width=int(d["width"]),
            height=int(d["height"]),
        )


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 / UTM zone containing (lon, lat) degrees.

    Uses the standard 6-degree zones (no Norway/Svalbard exceptions, which only matter north of
    56 deg N and are not used by Earth Engine grids either).
    """
    if not (-180.0 <= lon <= 180.0 and -80.0 <= lat <= 84.0):
        raise GridError(
            f"({lon:.5f}, {lat:.5f}) is outside the UTM domain (lon -180..180, lat -80..84): "
            "polar AOIs are not supported"
        )
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def utm_zones_spanned(west: float, east: float) -> list[int]:
    """UTM zone numbers touched by the longitude interval [west, east] (degrees).

    ``west > east`` means the interval crosses the antimeridian (GeoJSON / STAC convention),
    e.g. (179.5, -179.5) touches zones [60, 1].
    """
    z0 = min(int((west + 180.0) // 6.0) + 1, 60)
    z1 = min(int((east + 180.0) // 6.0) + 1, 60)
    if west > east:
        return list(range(z0, 61)) + list(range(1, z1 + 1))
    return list(range(z0, z1 + 1))


def choose_aoi_epsg(lonlat_bounds: tuple[float, float, float, float], aoi: str = "AOI") -> int:
    """UTM EPSG of an AOI's centroid; warns when the AOI spans more than one zone.

    Args:
        lonlat_bounds: (west, south, east, north) in degrees (WGS84); ``west > east`` means
            the AOI crosses the antimeridian.
        aoi: AOI name used in the warning.
    """
    w, s, e, n = lonlat_bounds
    east = e + 360.0 if w > e else e
    lon_c = (w + east) / 2.0
    if lon_c >= 180.0:
        lon_c -= 360.0
    epsg = utm_epsg(lon_c, (s + n) / 2.0)
    zones = utm_zones_spanned(w, e)
    if len(zones) > 1:
        warnings.warn(
            f"{aoi}: spans UTM zones {zones}; using the centroid's zone (EPSG:{epsg}) for the "
            "whole AOI grid (distortion at the far edge stays well below one 10 m pixel for "
            "city-sized AOIs)",
            stacklevel=2,
        )
    return epsg


def footprint_size_px(
    patch_size_px: int,
    gsd_m: float,
    scale: float = 5.0,
    res_m: float = 10.0,
    size_px: int | None = None,
    size_m: float | None = None,
) -> int:
    """Footprint side in Sentinel grid pixels.

    ``size_px`` wins, then ``size_m / res_m`` (rounded), else ``round(scale * patch_size_px *
    gsd_m / res_m)``. FUSU: 512 px x 0.5 m x 5 / 10 m = 128 px.

    Raises:
        GridError: if the result is < 1 px.
    """
    if size_px is not None:
        n = int(size_px)
    elif size_m is not None:
        n = int(np.rint(size_m / res_m))
    else:
        n = int(np.rint(scale * patch_size_px * gsd_m / res_m))
    if n < 1:
        raise GridError(
            f"footprint size would be {n} px (patch {patch_size_px} px x {gsd_m} m, scale {scale}, "
            f"grid {res_m} m): raise footprints.scale or set footprints.size_px"
        )
    return n


@dataclass(frozen=True)
class FootprintRule:
    """How big a footprint is and where it lies: the ``footprints`` config as one value.

    Attributes:
        scale: footprint side / patch side (FUSU: 5).
        res_m: Sentinel grid resolution (m).
        origin_multiple_m: the AOI grid origin is a multiple of this (m); a multiple of
            ``res_m``.
        size_px: explicit footprint side (px), overrides ``size_m`` and ``scale``.
        size_m: explicit footprint side (m), overrides ``scale``.
        margin_m: "extent" rule of the expansion (samples already at Sentinel-like resolution
            or with large extents): side = the sample's own side + 2 x ``margin_m`` instead of
            ``scale`` x the side; None = the scale rule.
    """

    scale: float = 5.0
    res_m: float = 10.0
    origin_multiple_m: float = 60.0
    size_px: int | None = None
    size_m: float | None = None
    margin_m: float | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> FootprintRule:
        """From the validated ``footprints`` config section (:class:`FootprintsConfig`)."""
        return cls(float(cfg.scale), float(cfg.res_m), float(cfg.origin_multiple_m),
                   cfg.size_px, cfg.size_m)

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "res_m": self.res_m,
                "origin_multiple_m": self.origin_multiple_m, "size_px": self.size_px,
                "size_m": self.size_m, "margin_m": self.margin_m}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FootprintRule:
        return cls(float(d["scale"]), float(d["res_m"]), float(d["origin_multiple_m"]),
                   None if d.get("size_px") is None else int(d["size_px"]),
                   None if d.get("size_m") is None else float(d["size_m"]),
                   None if d.get("margin_m") is None else float(d["margin_m"]))

    def side_px(self, patch_size_px: int, gsd_m: float) -> int:
        """Footprint side (px) of a patch of ``patch_size_px`` px at ``gsd_m`` m
        (:func:`footprint_size_px`).

        Raises:
            GridError: the side would be < 1 px.
        """
        return footprint_size_px(patch_size_px, gsd_m, self.scale, self.res_m,
                                 size_px=self.size_px, size_m=self.size_m)

    def describe(self, size_px: int, patch_size_px: int, gsd_m: float) -> str:
        """Human-readable rule of one AOI's footprints (stored in grid.json)."""
        res_m = self.res_m
        if self.size_px is not None:
            size = f"size_px = {size_px} (footprints.size_px, explicit)"
        elif self.size_m is not None:
            size = (
                f"size_px = round({self.size_m:g} m / {res_m:g} m) = {size_px} "
                "(footprints.size_m)"
            )
        else:
            size = (
                f"size_px = round(scale x patch_size_px x gsd_m / res_m) = round({self.scale:g} x "
                f"{patch_size_px} x {gsd_m:g} / {res_m:g}) = {size_px}"
            )
        return (
            f"{size}; square footprint centred on the patch centre, upper-left corner snapped to "
            f"the nearest {res_m:g} m lattice line of the UTM zone; AOI grid origin a multiple of "
            f"{self.origin_multiple_m:g} m"
        )

    def describe_per_sample(self) -> str:
        """Human-readable rule when each sample has its own size (expansion groups)."""
        res_m, scale = self.res_m, self.scale
        if self.margin_m is not None and self.size_px is None and self.size_m is None:
            size = (f"size_px = ceil((sample side (m, in the grid CRS) + 2 x {self.margin_m:g} "
                    f"m) / {res_m:g} m) (extent rule: expand.footprint)")
        elif self.size_px is not None:
            size = f"size_px = {self.size_px} (footprints.size_px)"
        elif self.size_m is not None:
            size = f"size_px = round({self.size_m:g} m / {res_m:g} m) (footprints.size_m)"
        else:
            size = (f"size_px = round({scale:g} x patch side (m, measured in the grid CRS) / "
                    f"{res_m:g} m) = round({scale:g} x patch_px x gsd_m / {res_m:g})")
        return (f"{size}; square footprint centred on the sample centre, upper-left corner "
                f"snapped to the {res_m:g} m lattice of the group's UTM zone; grid origin a "
                f"multiple of {self.origin_multiple_m:g} m")


#: The default rule (FUSU: 5x the patch, 10 m grid, origin a multiple of 60 m).
DEFAULT_FOOTPRINT_RULE = FootprintRule()


@dataclass(frozen=True)
class Footprints:
    """Footprints of N patches on an AOI grid (all arrays shape (N,)).

    Attributes:
        grid: the AOI grid (covers every footprint).
        size_px: footprint side (px), identical for all patches of the AOI.
        col0, row0: int64 upper-left pixel of each footprint in ``grid``.
        patch_off_x_px, patch_off_y_px: float64 offset of the patch's bounding box (in the grid
            CRS) from the footprint's upper-left corner, in grid pixels (x right, y down).
        patch_w_px, patch_h_px: float64 patch bounding-box size in grid pixels.
    """

    grid: AoiGrid
    size_px: int
    col0: np.ndarray
    row0: np.ndarray
    patch_off_x_px: np.ndarray
    patch_off_y_px: np.ndarray
    patch_w_px: np.ndarray
    patch_h_px: np.ndarray

    def bounds(self) -> np.ndarray:
        """(N, 4) float64 footprint bounds (minx, miny, maxx, maxy) in the grid CRS (m)."""
        g = self.grid
        minx = g.x0 + self.col0 * g.res_m
        maxy = g.y0 - self.row0 * g.res_m
        side = self.size_px * g.res_m
        return np.stack([minx, maxy - side, minx + side, maxy], axis=1)


def compute_footprints(
    patch_bounds: np.ndarray,
    epsg: int,
    size_px: int,
    res_m: float = 10.0,
    origin_multiple_m: float = 60.0,
) -> Footprints:
    """Snap centred square footprints to the global ``res_m`` lattice and build the AOI grid.

    Args:
        patch_bounds: (N, 4) float array of patch bounding boxes (minx, miny, maxx, maxy) already
            expressed in the grid CRS ``epsg`` (metres). For HR patches in another CRS pass the
            bounds of the reprojected patch polygon.
        epsg: the AOI grid's UTM EPSG code.
        size_px: footprint side in pixels (see :func:`footprint_size_px`).
        res_m: grid pixel size (m).
        origin_multiple_m: grid origin multiple (m); must be a multiple of ``res_m``.

    Returns:
        :class:`Footprints`, whose grid is the smallest ``origin_multiple_m``-aligned window
        covering every footprint.

    Raises:
        GridError: empty input, non-finite bounds, or an origin multiple that is not a multiple
            of the resolution.
    """
    pb = np.asarray(patch_bounds, dtype=np.float64)
    if pb.ndim != 2 or pb.shape[1] != 4 or len(pb) == 0:
        raise GridError(f"patch_bounds must be a non-empty (N, 4) array, got shape {pb.shape}")
    if not np.isfinite(pb).all():
        raise GridError("patch bounds contain NaN/inf: check the patch index CRS")
    ratio = origin_multiple_m / res_m
    if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        raise GridError(
            f"footprints.origin_multiple_m ({origin_multiple_m}) must be a whole multiple of "
            f"footprints.res_m ({res_m})"
        )
    cx = (pb[:, 0] + pb[:, 2]) / 2.0
    cy = (pb[:, 1] + pb[:, 3]) / 2.0
    # Global lattice indices of each footprint's upper-left pixel (column right, row down from
    # northing 0 going south = -y/res).
    gcol = np.floor(cx / res_m - size_px / 2.0 + 0.5).astype(np.int64)
    grow = np.floor(-cy / res_m - size_px / 2.0 + 0.5).astype(np.int64)
    om = int(np.rint(ratio))
    gcol0 = (gcol.min() // om) * om
    grow0 = (grow.min() // om) * om
    width = int(gcol.max() - gcol0 + size_px)
    height = int(grow.max() - grow0 + size_px)
    # pad to a whole number of origin multiples, so the far edge is aligned too
    width = int(math.ceil(width / om) * om)
    height = int(math.ceil(height / om) * om)
    grid = AoiGrid(
        epsg=int(epsg),
        res_m=float(res_m),
        x0=float(gcol0 * res_m),
        y0=float(-grow0 * res_m),
        width=width,
        height=height,
    )
    col0 = gcol - gcol0
    row0 = grow - grow0
    fp_minx = grid.x0 + col0 * res_m
    fp_maxy = grid.y0 - row0 * res_m
    return Footprints(
        grid=grid,
        size_px=int(size_px),
        col0=col0,
        row0=row0,
        patch_off_x_px=(pb[:, 0] - fp_minx) / res_m,
        patch_off_y_px=(fp_maxy - pb[:, 3]) / res_m,
        patch_w_px=(pb[:, 2] - pb[:, 0]) / res_m,
        patch_h_px=(pb[:, 3] - pb[:, 1]) / res_m,
    )


def union_pixel_count(
    col0: np.ndarray, row0: np.ndarray, size_px: int | np.ndarray, grid: AoiGrid
) -> int:
    """Number of distinct grid pixels covered by the union of the footprint windows (clipped
    to the grid).

    Exact and independent of the grid's size: the windows are unioned as pixel-aligned boxes
    (integer vertices, so the union's area is the pixel count), never rasterized onto a dense
    whole-grid array (a 300 m "HR" image would need gigabytes).
    """
    import shapely

    c0 = np.asarray(col0, dtype=np.int64)
    r0 = np.asarray(row0, dtype=np.int64)
    n = np.broadcast_to(np.asarray(size_px, dtype=np.int64), c0.shape)
    if len(c0) == 0:
        return 0
    x0, y0 = np.clip(c0, 0, grid.width), np.clip(r0, 0, grid.height)
    x1, y1 = np.clip(c0 + n, 0, grid.width), np.clip(r0 + n, 0, grid.height)
    keep = (x1 > x0) & (y1 > y0)
    boxes = shapely.box(x0[keep], y0[keep], x1[keep], y1[keep])
    return round(float(shapely.union_all(boxes).area)) if len(boxes) else 0
