"""Throughput and peak memory of the offline (local archive + s2cloudless) Sentinel path.

Runs the real stages (``sentinel_init`` then ``sentinel_month`` for N months) of an AOI whose
footprints and scene archive already exist (default: the demo AOI after ``snakemake --cores 2
results/demo-inputs/demo/scenes/done.json results/demo/aois/demo/footprints.parquet``), into a
temporary results root, so the real outputs are untouched.

Run: ``python -m benchmarks.sentinel_local [--root results/demo] [--aoi demo]
[--archive results/demo-inputs/demo/scenes] [--months 3] [--threads 2] [--block-px 256]``.
Prints footprint-months per second and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.config import SentinelConfig
from pipeline.io.jsonfile import read_json
from pipeline.layout import Layout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="results/demo")
    ap.add_argument("--aoi", default="demo")
    ap.add_argument("--archive", default="results/demo-inputs/demo/scenes")
    ap.add_argument("--months", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--block-px", type=int, default=None)
    args = ap.parse_args()

    from pipeline.aoi import AoiSpec
    from pipeline.sentinel.drivers import fetch_month, init_aoi

    src = Layout(Path(args.root))
    with tempfile.TemporaryDirectory(prefix="bench-sentinel-") as tmp:
        lay = Layout(Path(tmp))
        for p in (src.grid(args.aoi), src.footprints(args.aoi)):
            dst = lay.root / p.relative_to(src.root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dst)
        months = sorted(p.name[:6] for p in (Path(args.archive) / "s2").iterdir())
        months = sorted({f"{m[:4]}-{m[4:6]}" for m in months})[: args.months]
        cfg = SentinelConfig(source="local", block_size_px=args.block_px)
        paths = {"t1": "unused", "t2": "unused"}
        aoi = AoiSpec(name=args.aoi, city=args.aoi, t1=f"{months[0]}-01", t2=f"{months[-1]}-28",
                      images=paths, annotations=paths, sentinel_archive=args.archive)
        marker = init_aoi(aoi, cfg, lay)
        t0 = time.perf_counter()
        for m in months:
            s = fetch_month(aoi, m, cfg, lay, threads=args.threads)
            print(f"{m}: {s['n_scenes']['s2']} S2 + {s['n_scenes']['s1']} S1 scenes, "
                  f"{s['blocks']} blocks, {s['seconds']:.1f} s")
        dt = time.perf_counter() - t0
        n_fp = marker["footprints"]
        fpm = n_fp * len(months)
        grid_px = read_json(lay.grid(args.aoi))["width"] * read_json(lay.grid(args.aoi))["height"]
        print(f"footprints {n_fp}, months {len(months)}, grid {grid_px} px, "
              f"blocks {marker['n_blocks']}: {fpm / dt:.2f} footprint-months/s "
              f"({dt / len(months):.1f} s per month)")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
