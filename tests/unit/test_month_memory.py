"""A Sentinel month job's memory is bounded by its block, not by the AOI: at a fixed block size
(``sentinel.block_size_px``, else 256 px for the local source and 640 px for stac / gee at
the default ``max_block_bytes``), 4x the AOI area leaves numpy's peak (tracemalloc) within
1.15x. The recipe is the heaviest one: float32 probability caches (``cloud_preset:
s2cloudless``) and 1 km shadow halos. What does grow with the area, the per-scene probability
cache (1 or 4 bytes per pixel of the AOI frame), stays well inside that margin here."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import SentinelConfig
from pipeline.demo.sentinel_scenes import generate_archive
from pipeline.grid import AoiGrid
from pipeline.io.jsonfile import write_json
from pipeline.io.parquet import write_geoparquet
from pipeline.layout import Layout
from pipeline.sentinel.drivers import fetch_month, init_aoi
from tests.sentinel_helpers import sentinel_aoi

pytestmark = pytest.mark.slow

X0, Y0 = 650040.0, 3795060.0
MONTH = "2019-02"


def _peak_bytes(root: Path, archive: Path, side: int) -> int:
    """numpy's peak while one month of a ``side`` x ``side`` px AOI is fetched in 64 px
    blocks on one thread."""
    grid = AoiGrid(epsg=32649, res_m=10.0, x0=X0 + 100.0, y0=Y0 - 100.0, width=side,
                   height=side)
    lay = Layout(root / f"side{side}")
    write_json(lay.grid("a"), grid.to_dict() | {"rule": "test", "size_px": 32, "scale": 5.0})
    n = side // 32
    cells = [(r, c) for r in range(n) for c in range(n)]
    write_geoparquet(pd.DataFrame({
        "patch_id": [f"a_r{r:03d}_c{c:03d}" for r, c in cells],
        "fp_col0": [32 * c for _, c in cells], "fp_row0": [32 * r for r, _ in cells],
        "fp_size_px": [32] * len(cells)}), lay.footprints("a"))
    aoi = sentinel_aoi("a", MONTH, MONTH, str(archive))
    cfg = SentinelConfig(source="local", block_size_px=64, cloud_preset="s2cloudless",
                         shadow_mask=True)
    init_aoi(aoi, cfg, lay)
    tracemalloc.start()
    try:
        summary = fetch_month(aoi, MONTH, cfg, lay, threads=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary["blocks_done"] == (side // 64) ** 2
    assert summary["n_scenes"]["s2"] == 2
    return peak


def test_month_job_memory_follows_the_block_not_the_aoi(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    cls = np.kron(rng.integers(0, 18, size=(24, 24)), np.ones((12, 12), int)).astype(np.uint8)
    archive = tmp_path / "archive"  # 288 x 288 px scenes: both AOIs lie inside them
    generate_archive(archive, cls, cls, "EPSG:32649", X0, Y0, [MONTH], seed=11,
                     s2_per_month=(2, 2), s1_per_month=(1, 1))
    _peak_bytes(tmp_path / "warm", archive, 64)  # model load and first-use caches
    small = _peak_bytes(tmp_path, archive, 128)
    large = _peak_bytes(tmp_path, archive, 256)  # 4x the area, 16 blocks instead of 4
    print(f"peak {small / 1e6:.1f} MB at 128 px, {large / 1e6:.1f} MB at 256 px")
    # measured 1.09; keeping one composite per block alive (a leak that grows with the AOI)
    # makes it 1.27, so the bound is tighter than the benchmark's 1.3 goal
    assert large <= 1.15 * small
