"""A small synthetic scene archive for the cross-source equivalence tests: the demo's scene
simulator (:func:`pipeline.demo.sentinel_scenes.generate_archive`) on a 1.3 km class map, plus
what the demo does not have: an SCL layer on the L2A scenes, an L1C-only granule in an L2A
month (a mixed month), a VV-only and a VH-only S1 scene, a month without any scene, a scene
whose western edge crosses the AOI (the 60 m bands end 40 m inside the 10 m ones, as at
granule edges), a second granule of one datatake and a second slice of one S1 pass (each an
identical copy: one observation, never two)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
from affine import Affine

from pipeline.demo.sentinel_scenes import generate_archive, synth_s2, to_native
from pipeline.grid import AoiGrid
from pipeline.io.scenes import write_band_tif, write_s1_scene, write_s2_scene
from pipeline.io.stac_catalog import write_scene_catalog

CRS = "EPSG:32649"
X0, Y0 = 650040.0, 3795060.0  # multiples of 60 m
SIZE_PX = 132  # scene side at 10 m (multiple of 6)
#: The AOI: 72 x 72 px, 30 px inside the scenes' edges.
GRID = AoiGrid(epsg=32649, res_m=10.0, x0=X0 + 300.0, y0=Y0 - 300.0, width=72, height=72)
L1C_MONTH, L2A_MONTH, MIXED_MONTH, EMPTY_MONTH = "2019-01", "2019-02", "2019-03", "2019-04"
#: SCL classes the synthetic layer uses: 4 vegetation / land, 6 water, 3 shadow, 9 cloud.
SCL_RULES = "9 where B2 > 0.25, else 6 where B8 < 0.05, else 3 where B8 < 0.12, else 4"


def class_map(seed: int = 7) -> np.ndarray:
    """(132, 132) uint8 FUSU classes in 12 px blocks."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 18, size=(11, 11)), np.ones((12, 12), int)).astype(np.uint8)


def synthetic_scl(b2: np.ndarray, b8: np.ndarray) -> np.ndarray:
    """A 20 m SCL layer (uint8) from 10 m L2A DN of B2 and B8 (:data:`SCL_RULES`)."""
    scl = np.full(b2.shape, 4, np.uint8)
    scl[b8 < 1200] = 3
    scl[b8 < 500] = 6
    scl[b2 > 2500] = 9
    return scl[::2, ::2]


def build_archive(root: Path) -> Path:
    """Write the archive (and its static STAC catalogue) under ``root``; returns ``root``."""
    import rasterio

    cls = class_map()
    generate_archive(root, cls, cls, CRS, X0, Y0, [L1C_MONTH, L2A_MONTH, MIXED_MONTH], seed=11,
                     s2_per_month=(3, 4), s1_per_month=(2, 3))
    t20 = Affine(20.0, 0.0, X0, 0.0, -20.0, Y0)
    for folder in sorted((root / "s2").iterdir()):
        if (folder / "L2A").is_dir():
            with rasterio.open(folder / "L2A" / "B02.tif") as a, \
                    rasterio.open(folder / "L2A" / "B08.tif") as b:
                scl = synthetic_scl(a.read(1), b.read(1))
            write_band_tif(folder / "L2A" / "SCL.tif", scl, CRS, t20, 0)
    # a mixed month: an L1C-only granule (no L2A counterpart) among the L2A month's scenes
    rng = np.random.default_rng(5)
    s = synth_s2(cls, 3, 0.3, rng)
    transforms = {r: Affine(float(r), 0.0, X0, 0.0, -float(r), Y0) for r in (10, 20, 60)}
    write_s2_scene(root, dt.datetime(2019, 3, 29, 3, 25, 40), "49SGU", CRS, transforms,
                   {"L1C": to_native(s.toa)},
                   extra={"sun_azimuth_deg": round(s.sun_azimuth_deg, 2),
                          "sun_zenith_deg": round(s.sun_zenith_deg, 2)})
    # a VV-only and a VH-only S1 scene (other passes than the simulator's)
    ramp = np.linspace(0.02, 0.2, SIZE_PX * SIZE_PX, dtype=np.float32).reshape(SIZE_PX, SIZE_PX)
    write_s1_scene(root, dt.datetime(2019, 2, 27, 22, 40, 9), CRS, transforms[10], ramp, None,
                   units="linear", orbit_pass="ASCENDING", relative_orbit=84)
    write_s1_scene(root, dt.datetime(2019, 2, 21, 10, 12, 3), CRS, transforms[10], None,
                   ramp / 6, units="linear", orbit_pass="DESCENDING", relative_orbit=91)
    _cut_west_edge(root / "s2" / "20190220T032513_49SGU")  # a clear scene
    _second_granule(root / "s2" / "20190217T032512_49SGU", "49SGV")
    shutil.copytree(root / "s1" / "20190213T224001_DES", root / "s1" / "20190213T224101_DES")
    _edit_json(root / "s1" / "20190213T224101_DES" / "scene.json",
               time="2019-02-13T22:41:01Z")
    write_scene_catalog(root)
    return root


#: Where the edge scene's bands start (m east of the scenes' west edge) per resolution: the
#: 60 m bands 40 m inside the 10 m ones (AOI columns 20-23 have B2 but no B9), and B1 60 m
#: further in than B9 (detector footprints differ by band: AOI columns 24-29 are clear
#: observations without B1).
EDGE_M = {10: 500.0, 20: 520.0, 60: 540.0}
EDGE_B01_M = 600.0


def _edit_json(path: Path, **kw: object) -> None:
    meta = json.loads(path.read_text())
    meta.update(kw)
    path.write_text(json.dumps(meta))


def _cut_west_edge(folder: Path) -> None:
    """Set every band of the scene to nodata west of :data:`EDGE_M` (SCL as the 10 m bands)."""
    import rasterio

    for f in sorted(folder.glob("L*/*.tif")):
        with rasterio.open(f) as src:
            arr, tr = src.read(1), src.transform
        res = 10 if f.stem == "SCL" else round(tr.a)
        edge = EDGE_B01_M if f.stem == "B01" else EDGE_M[res]
        arr[:, : round(edge / tr.a)] = 0
        write_band_tif(f, arr, CRS, tr, 0)


def _second_granule(folder: Path, tile: str) -> None:
    """The same acquisition as another MGRS granule (a copy: the values of one datatake)."""
    other = folder.with_name(folder.name.split("_")[0] + "_" + tile)
    shutil.copytree(folder, other)
    _edit_json(other / "scene.json", tile=tile)
