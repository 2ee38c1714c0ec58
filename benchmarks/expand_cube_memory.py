"""Memory of reading one expanded sample's cube: peak RSS growth / bytes of the returned array.

Builds a read-optimised cube (``--side`` px, ``--months`` months, random values, 64 px chunks)
in a temporary folder, then in a fresh process reads one sample-sized window
(``--window`` px, e.g. an OSCD city with the extent footprint rule: 664 px) over ``--span``
of its months with :func:`pipeline.io.mosaic_read.read_footprint_cube`, and prints the growth of the
process's peak RSS (``VmHWM``) divided by the returned ``x`` bytes (goal <= 1.5), plus numpy's
own peak (tracemalloc) for comparison.

Run: ``python -m benchmarks.expand_cube_memory [--side 1024] [--months 25] [--window 664]
[--span 23]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.goals import Goal, report

CHILD = r"""
import json, sys, tracemalloc
from pipeline.io.mosaic import _open_arrays
from pipeline.io.mosaic_read import read_footprint_cube

def hwm():  # peak RSS of this process image (VmHWM; ru_maxrss would carry the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

path, w, span = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
_open_arrays(path, "r")
read_footprint_cube(path, 0, 0, 8, months=(0, 1))  # imports, codecs, plans warm
before = hwm()
tracemalloc.start()
cube = read_footprint_cube(path, 16, 16, w, months=(1, 1 + span))
_, peak = tracemalloc.get_traced_memory()
after = hwm()
print(json.dumps({"nbytes": cube["x"].nbytes, "rss_growth": after - before, "np_peak": peak}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--months", type=int, default=25)
    ap.add_argument("--window", type=int, default=664)
    ap.add_argument("--span", type=int, default=23)
    args = ap.parse_args()

    from pipeline.grid import AoiGrid
    from pipeline.io.mosaic import consolidate_mosaic, init_mosaic, write_block
    from pipeline.sentinel.model import Block, BlockResult

    months = [f"{2016 + m // 12}-{m % 12 + 1:02d}" for m in range(args.months)]
    grid = AoiGrid(epsg=32636, res_m=10.0, x0=700000.0, y0=3750000.0, width=args.side,
                   height=args.side)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-cube-") as tmp:
        store, cube = Path(tmp) / "s.zarr", Path(tmp) / "c.zarr"
        init_mosaic(store, grid, months, chunk_px=64, aoi="b")
        b = Block(0, 0, args.side, args.side)
        for t in range(len(months)):
            r = BlockResult.empty(args.side, args.side)
            r.s2 = rng.uniform(0, 0.5, r.s2.shape).astype(np.float32)
            r.s1 = rng.uniform(-25, -5, r.s1.shape).astype(np.float32)
            r.s2_count[:] = 3
            r.s1_count[:] = 2
            write_block(store, t, b, r)
        consolidate_mosaic(store, cube, chunk_px=64)
        out = subprocess.run([sys.executable, "-c", CHILD, str(cube), str(args.window),
                              str(args.span)], capture_output=True, text=True, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
    n = res["nbytes"]
    print(f"window {args.window} px x {args.span} of {args.months} months: x = {n / 1e6:.1f} MB")
    print(f"peak RSS growth / returned bytes = {res['rss_growth'] / n:.3f}")
    print(f"numpy peak (tracemalloc) / returned bytes = {res['np_peak'] / n:.3f}")
    return report([Goal("peak RSS growth / returned bytes", res["rss_growth"] / n, "<=", 1.5)])


if __name__ == "__main__":
    raise SystemExit(main())
