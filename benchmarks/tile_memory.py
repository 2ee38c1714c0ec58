"""Peak memory of the tile stage as the scene grows (must stay flat: strip-wise reads).

    python -m benchmarks.tile_memory [--sizes 1024 2048 4096] [--patch 256]

For each scene side it writes a synthetic tiled RGB pair (T2 shifted by 3.5 pixels, so the lazy
warp path runs too: a whole-pixel shift is read shifted, without the warper) in a temporary
folder, tiles it in a fresh subprocess, and prints the child's peak RSS, the scene size, and
the ratios (RSS growth vs. scene growth). Flat memory means the RSS ratio stays near 1 while
the scene ratio grows 4x per doubling of the side; the remaining growth is bounded by the GDAL
block cache cap (pipeline.io.raster.SCENE_CACHE_MB).

Measured (2 busy shared cores, 256 px patches, 64 MiB cache cap): 1024 px 182 MB, 2048 px
218 MB, 4096 px 258 MB, 8192 px 279 MB peak RSS for 1x / 4x / 16x / 64x the pixels (the
growth is the cache filling up to its cap; 4096 -> 8192 px adds 21 MB for 4x the pixels).
With the half-pixel shift (2026-12-07): 1024 px 199 MB, 2048 px 221 MB, 4096 px 273 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pipeline.aoi import AoiSpec
from pipeline.config import TileConfig
from pipeline.hr.tiling import tile_pair
from pipeline.layout import Layout
a = json.loads(sys.argv[1])
aoi = AoiSpec(name="bench", city="b", t1="2019-01-01", t2="2020-01-01",
              images={"t1": a["t1"], "t2": a["t2"]},
              annotations={"t1": "unused.gpkg", "t2": "unused.gpkg"})  # tiling reads none
t = time.perf_counter()
r = tile_pair(aoi, TileConfig(patch_size_px=a["patch"]),
              Layout(__import__("pathlib").Path(a["root"])), progress=False)
print(json.dumps({"kept": r.n_kept, "s": time.perf_counter() - t,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _write_scene(path: Path, side: int, shift: float) -> None:
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    tr = Affine(0.5, 0, 650000.0 + shift * 0.5, 0, -0.5, 3795000.0)
    prof = {
        "driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8",
        "crs": "EPSG:32649", "transform": tr, "nodata": 0, "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }
    with rasterio.open(path, "w", **prof) as dst:
        step = 512
        for r0 in range(0, side, step):
            h = min(step, side - r0)
            yy, xx = np.mgrid[r0 : r0 + h, 0:side]
            band = ((xx * 7 + yy * 3) % 250 + 1).astype(np.uint8)
            dst.write(np.stack([band, band[::-1], 255 - band]), window=Window(0, r0, side, h))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--patch", type=int, default=256)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for side in args.sizes:
            base = Path(d) / str(side)
            base.mkdir()
            t0 = time.perf_counter()
            _write_scene(base / "t1.tif", side, 0)
            _write_scene(base / "t2.tif", side, 3.5)
            gen_s = time.perf_counter() - t0
            arg = json.dumps({"t1": str(base / "t1.tif"), "t2": str(base / "t2.tif"),
                              "root": str(base / "out"), "patch": args.patch})
            out = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True,
                                 text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            scene_mb = side * side * 3 * 2 / 2**20
            rows.append((side, scene_mb, res["maxrss_kb"] / 1024, res["kept"], res["s"], gen_s))
    base_mb, base_rss = rows[0][1], rows[0][2]
    print(f"{'side px':>8} {'scenes MB':>10} {'peak RSS MB':>12} {'scene x':>8} {'RSS x':>6} "
          f"{'patches':>8} {'tile s':>7} {'patch/s':>8}")
    for side, mb, rss, kept, s, _ in rows:
        print(f"{side:>8} {mb:>10.0f} {rss:>12.0f} {mb / base_mb:>8.1f} {rss / base_rss:>6.2f} "
              f"{kept:>8} {s:>7.1f} {kept / s:>8.0f}")


if __name__ == "__main__":
    main()
