"""The local scene archive as a scene provider (:class:`LocalArchive`); composited by the one
compositor (:class:`pipeline.sentinel.compositor.Compositor`, whose docstring states the
recipe, the same as the Earth Engine path).

Scene archive layout
--------------------
::

    <archive>/
      s2/<YYYYMMDDTHHMMSS>_<tile>/          one folder per S2 acquisition (UTC sensing time)
        scene.json                          {"time": "2019-08-14T03:25:11Z", "tile": "49SGU",
                                             "crs": "EPSG:32649", "products": ["L1C", "L2A"],
                                             "sun_azimuth_deg": 140.2, "sun_zenith_deg": 25.1,
                                             "offsets": {"L2A": -1000}   (optional)}
        L1C/B01.tif ... B12.tif             13 bands incl. B10 (cirrus), top-of-atmosphere
        L2A/B01.tif ... B12.tif             12 bands (no B10), surface reflectance
      s1/<YYYYMMDDTHHMMSS>[_<suffix>]/      one folder per S1 GRD acquisition (IW)
        scene.json                          {"time": ..., "crs": ..., "units": "db"|"linear",
                                             "orbit_pass": "ASCENDING"|"DESCENDING"}
        VV.tif, VH.tif                      float32 backscatter (dB or linear power as
                                            'units' says; NaN or the file's nodata = no data)

* S2 band files are single-band GeoTIFFs at their **native resolution** (10 m: B02 B03 B04 B08;
  20 m: B05 B06 B07 B8A B11 B12; 60 m: B01 B09 B10), any projected CRS, uint16
  ``DN = reflectance * 10000`` with nodata 0 (reflectance = ``(DN + offset) / 10000``; the
  optional per-product ``offsets`` handle processing baseline >= 04.00 products, whose
  BOA_ADD_OFFSET is -1000; harmonized archives need none). A scene may hold L1C, L2A or both.
* A month = every acquisition whose folder name (and ``time``) falls in that calendar month.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from pipeline.errors import SourceError
from pipeline.grid import AoiGrid
from pipeline.io.scenes import S1Scene, S2Scene, list_s1_scenes, list_s2_scenes
from pipeline.sentinel.compositor import Compositor


class LocalArchive:
    """:class:`~pipeline.sentinel.compositor.SceneProvider` of a local scene archive.

    Args:
        archive: the archive root (layout in the module docstring).

    Raises:
        SourceError: the archive folder does not exist.
    """

    name = "local"
    #: blocks already run in parallel and reads are local: one scene at a time per block
    item_concurrency = 1
    scl_when_l1c_refused = False

    def __init__(self, archive: str | Path) -> None:
        self.archive = Path(archive)
        if not self.archive.is_dir():
            raise SourceError(
                f"scene archive {self.archive} does not exist: set 'sentinel_archive' in the AOI "
                "definition (or generate the demo scenes with rule demo_scenes)"
            )

    def list_s2(self, month: str, grid: AoiGrid) -> list[S2Scene]:
        """The archive's S2 acquisitions of ``month`` (the grid is not needed)."""
        return list_s2_scenes(self.archive, month)

    def list_s1(self, month: str, grid: AoiGrid) -> list[S1Scene]:
        """The archive's S1 acquisitions of ``month``."""
        return list_s1_scenes(self.archive, month)

    def read_env(self) -> contextlib.AbstractContextManager[Any]:
        """Local files need no read settings."""
        return contextlib.nullcontext()

    def month_meta(self, month: str) -> dict[str, Any]:
        """Nothing is skipped while listing an archive."""
        return {}

    def close(self) -> None:
        """Nothing to release (files are opened per read)."""


def local_source(archive: str | Path) -> Compositor:
    """The ``local`` source: the compositor over the scene archive at ``archive``."""
    return Compositor(LocalArchive(archive))
