"""Tiny synthetic scene archives for the Sentinel tests (seeded, a few KB)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from affine import Affine

from pipeline.grid import AoiGrid
from pipeline.io.scenes import L1C_FILE_BANDS, L2A_FILE_BANDS, NATIVE_RES_M, write_s2_scene

GRID = AoiGrid(epsg=32649, res_m=10.0, x0=650040.0, y0=3795000.0, width=64, height=64)
#: scene extent: the grid + 240 m margin
SX0, SY0, SIDE_M = 649800.0, 3795240.0, 1200.0

#: top-of-atmosphere spectra (reflectance) of clear vegetation and of a thick cloud
VEG_TOA = dict(zip(L1C_FILE_BANDS, (.11, .09, .09, .06, .12, .26, .33, .37, .38, .05, .001,
                                    .20, .10), strict=True))
CLOUD_TOA = dict(zip(L1C_FILE_BANDS, (.60, .62, .62, .61, .62, .63, .64, .64, .64, .45, .18,
                                      .42, .30), strict=True))


def transforms() -> dict[int, Affine]:
    return {r: Affine(float(r), 0.0, SX0, 0.0, -float(r), SY0) for r in (10, 20, 60)}


def band_array(value: float | np.ndarray, band: str) -> np.ndarray:
    """uint16 DN array of one band at its native resolution over the scene extent."""
    n = int(SIDE_M // NATIVE_RES_M[band])
    return np.broadcast_to(np.clip(np.rint(np.asarray(value) * 10000), 1, 65534), (n, n)).astype(
        np.uint16
    )


def write_scene(
    archive: Path,
    day: int,
    l2a_value: float | None,
    cloud_left_half: bool = False,
    month: tuple[int, int] = (2020, 3),
    l1c: bool = True,
    scl_cloud_left_half: bool | None = None,
) -> Path:
    """A scene whose L2A bands all hold ``l2a_value`` (None: no L2A); with ``cloud_left_half``
    the west half of the scene is a thick cloud in L1C (and 0.9 in L2A). ``scl_cloud_left_half``
    adds an L2A SCL layer (20 m): vegetation (4) everywhere, cloud high probability (9) in the
    west half if True."""
    bands: dict[str, dict[str, np.ndarray]] = {}
    if l1c:
        bands["L1C"] = {}
        for b in L1C_FILE_BANDS:
            n = int(SIDE_M // NATIVE_RES_M[b])
            a = np.full((n, n), VEG_TOA[b])
            if cloud_left_half:
                a[:, : n // 2] = CLOUD_TOA[b]
            bands["L1C"][b] = band_array(a, b)
    if l2a_value is not None:
        bands["L2A"] = {}
        for b in L2A_FILE_BANDS:
            n = int(SIDE_M // NATIVE_RES_M[b])
            a = np.full((n, n), l2a_value)
            if cloud_left_half:
                a[:, : n // 2] = 0.9
            bands["L2A"][b] = band_array(a, b)
        if scl_cloud_left_half is not None:
            n = int(SIDE_M // NATIVE_RES_M["SCL"])
            scl = np.full((n, n), 4, np.uint8)
            if scl_cloud_left_half:
                scl[:, : n // 2] = 9
            bands["L2A"]["SCL"] = scl
    return write_s2_scene(archive, dt.datetime(month[0], month[1], day, 3, 25, 0), "49SGU",
                          GRID.crs, transforms(), bands)


def sentinel_aoi(name: str, first: str, last: str, archive: str | None = None):  # type: ignore[no-untyped-def]
    """An AoiSpec whose Sentinel months are ``first``..``last`` (YYYY-MM), for the Sentinel
    drivers (which read the AOI's name, months and scene archive)."""
    from pipeline.aoi import AoiSpec

    paths = {"t1": f"{name}_t1", "t2": f"{name}_t2"}
    return AoiSpec(name=name, city=name, t1=f"{first}-01", t2=f"{last}-28", images=paths,
                   annotations=paths, sentinel_archive=archive)
