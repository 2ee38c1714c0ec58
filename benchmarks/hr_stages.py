"""HR-stage throughput and memory as the city grows, vs. a naive per-patch baseline.

    python -m benchmarks.hr_stages [--size-m 2560] [--baseline-patches 0] [--threads N]
        [--keep DIR]

Generates the synthetic demo city (``pipeline.demo.city``) at side ``s`` and ``2s`` (1x and 4x the
area; 0.5 m GSD, 512 px patches: 100 and 400 patches at the default 2560 m), then runs the
HR stages ``tile``, ``labels`` and ``change`` (their drivers, the code Snakemake runs) each in
a fresh subprocess on ``--threads`` threads (the rules' threads, default min(4, cores)),
recording wall time and the child's peak RSS (ru_maxrss). It prints
patches/s of tile + labels + change, peak RSS per stage, and the 4x / 1x ratios (flat memory:
RSS ratio near 1 while the area grows 4x; runtime ratio near 4), and the goal: the HR stages
>= 3x the naive script's patches/s at both sizes (exit 1 when missed).

Baseline (the obvious script, written here, one process): for each patch of the same lattice,
read the patch window of T1 and of T2 (through a rasterio WarpedVRT onto T1's grid, bilinear,
as the obvious way to co-register; the tile stage reads the demo's whole-pixel T2 shift without
warping since 2026-12-07, the same pixels) with plain rasterio, rasterize **all** annotation
polygons of each date on the patch grid (``rasterio.features.rasterize`` on every polygon, no
spatial index), derive binary change and write the same five GeoTIFFs (HR t1/t2, labels t1/t2,
change). By default it runs on every patch of the city, as the pipeline does. With
``--baseline-patches n`` (quicker) its per-patch loop runs on n patches spread over the lattice
(per-patch cost does not depend on the order) and its time for the whole city is its start-up
(imports, reading the polygons) + patches x the loop's time per patch. It is reported in
patches/s on both city sizes.

Not run in CI (minutes). Measured figures: docs/benchmarks.md (Scale benchmarks).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.goals import Goal, report

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, logging, resource, sys, time
a = json.loads(sys.argv[1])
from pipeline.aoi import AoiSpec
from pipeline.config import DemoConfig, LabelsConfig, ChangeConfig, TileConfig
from pipeline.layout import Layout
aoi = AoiSpec.model_validate(a["aoi"])
lay = Layout(__import__("pathlib").Path(a["root"]))
t = time.perf_counter()
n = None
# each child imports what its stage needs (as a rule's script does), inside the timing: the HR
# stages used to import the demo generator too (0.2 s a stage that no rule pays)
if a["stage"] in ("tile", "labels", "change"):
    from pipeline.hr.drivers import change_aoi, label_aoi, tile_aoi
if a["stage"] == "demo":
    from pipeline.demo.drivers import demo_inputs
    demo_inputs(aoi, DemoConfig(**a["demo"]))
elif a["stage"] == "tile":
    n = tile_aoi(aoi, TileConfig(**a["tile"]), lay, progress=False,
                 threads=a["threads"]).n_kept
elif a["stage"] == "labels":
    label_aoi(aoi, LabelsConfig(), lay, progress=False, threads=a["threads"])
elif a["stage"] == "change":
    change_aoi(aoi, ChangeConfig(), lay, progress=False, threads=a["threads"])
elif a["stage"] == "naive":
    from benchmarks.hr_stages import naive_baseline
    n, loop_s = naive_baseline(a["aoi"], a["root"], a["n"])
print(json.dumps({"s": time.perf_counter() - t, "n": n,
                  "loop_s": loop_s if a["stage"] == "naive" else None,
                  # the stage's own process or its largest forked worker (labels, change)
                  "maxrss_mb": max(resource.getrusage(r).ru_maxrss for r in (
                      resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024}))
"""


def naive_baseline(aoi: dict, root: str, n_patches: int) -> tuple[int, float]:
    """The naive per-patch HR pipeline on ``n_patches`` patches of the tile index (all when
    ``n_patches`` <= 0); returns
    the number of patches and the seconds of the per-patch loop (without the imports and the
    polygon reading before it)."""
    import geopandas as gpd
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.features import rasterize
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    from pipeline.layout import Layout

    lay = Layout(Path(root))
    index = gpd.read_parquet(lay.patches(aoi["name"]))
    n_pick = len(index) if n_patches <= 0 else min(n_patches, len(index))
    pick = np.unique(np.linspace(0, len(index) - 1, n_pick).astype(int))
    out = Path(root) / "naive"
    out.mkdir(exist_ok=True)
    polys = {}
    with rasterio.open(aoi["images"]["t1"]) as src:
        crs = src.crs
    for date in ("t1", "t2"):
        gdf = gpd.read_file(aoi["annotations"][date]).to_crs(crs)
        polys[date] = [(g, int(c)) for g, c in zip(gdf.geometry, gdf["class"], strict=True)]
    prof = {"driver": "GTiff", "tiled": True, "blockxsize": 256, "blockysize": 256,
            "compress": "deflate", "crs": crs}
    with rasterio.open(aoi["images"]["t1"]) as s1, rasterio.open(aoi["images"]["t2"]) as t2:
        # T2 lies on a shifted grid: read it through a bilinear warp onto T1's grid (as tile)
        s2 = WarpedVRT(t2, crs=s1.crs, transform=s1.transform, width=s1.width,
                       height=s1.height, resampling=Resampling.bilinear)
        t_loop = time.perf_counter()
        for i in pick:
            row = index.iloc[i]
            size = int(row.size_px)
            win = Window(int(row.px_col0), int(row.px_row0), size, size)
            tr = s1.window_transform(win)
            im1 = s1.read(window=win)
            im2 = s2.read(window=win)
            y = {
                d: rasterize(polys[d], out_shape=(size, size), transform=tr, fill=0,
                             dtype="uint8")
                for d in ("t1", "t2")
            }
            change = (y["t1"] != y["t2"]).astype("uint8")
            change[(y["t1"] == 0) | (y["t2"] == 0)] = 255
            p = dict(prof, width=size, height=size, transform=tr)
            for name, arr in (("im1", im1), ("im2", im2), ("lab1", y["t1"][None]),
                              ("lab2", y["t2"][None]), ("bin", change[None])):
                with rasterio.open(out / f"{row.patch_id}_{name}.tif", "w", count=arr.shape[0],
                                   dtype=arr.dtype, **p) as dst:
                    dst.write(arr)
        loop_s = time.perf_counter() - t_loop
    return len(pick), loop_s


def _child(stage: str, **kw: object) -> dict:
    arg = json.dumps({"stage": stage, **kw})
    out = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True,
                         cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _aoi(folder: Path, name: str) -> dict:
    return {
        "name": name, "city": "bench", "t1": "2019-08-14", "t2": "2020-08-18",
        "images": {"t1": str(folder / "hr_t1.tif"), "t2": str(folder / "hr_t2.tif")},
        "annotations": {"t1": str(folder / "labels_t1.gpkg"),
                        "t2": str(folder / "labels_t2.gpkg")},
        "generated": True,
    }


def run_size(base: Path, size_m: float, n_baseline: int, threads: int = 1) -> dict:
    """Generate the city of side ``size_m`` under ``base``; run + time the HR stages."""
    folder = base / f"city{int(size_m)}"
    folder.mkdir(parents=True)
    aoi = _aoi(folder, "bench")
    root = str(folder / "out")
    res = {"size_m": size_m, "demo": _child("demo", aoi=aoi, root=root,
                                             demo={"size_m": size_m})}
    for stage in ("tile", "labels", "change"):
        res[stage] = _child(stage, aoi=aoi, root=root, tile={"patch_size_px": 512},
                            threads=threads)
    res["patches"] = res["tile"]["n"]
    res["naive"] = _child("naive", aoi=aoi, root=root, n=n_baseline)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-m", type=float, default=2560.0, help="1x city side (m)")
    ap.add_argument("--baseline-patches", type=int, default=0,
                    help="patches the naive script runs on (0: all; else its time for the "
                    "whole city is extrapolated from its per-patch loop)")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                    help="threads of the pipeline's HR jobs (the rules' threads; Snakemake "
                    "caps them at --cores); the naive script is single-threaded")
    ap.add_argument("--keep", type=Path, default=None, help="keep the data in this folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hr-bench-") as d:
        base = args.keep or Path(d)
        runs = [run_size(base, args.size_m, args.baseline_patches, args.threads),
                run_size(base, 2 * args.size_m, args.baseline_patches, args.threads)]
    print(f"pipeline HR jobs on {args.threads} threads ({os.cpu_count()} cores)")
    print(f"{'city':>8}{'patches':>8} | {'stage':<7}{'s':>8}{'peak MB':>9}")
    for r in runs:
        for st in ("demo", "tile", "labels", "change", "naive"):
            n = r["patches"] if st != "naive" else r["naive"]["n"]
            print(f"{r['size_m'] / 1000:>6.2f}km{n:>8} | {st:<7}{r[st]['s']:>8.1f}"
                  f"{r[st]['maxrss_mb']:>9.0f}")
    print()
    goals = []
    for r in runs:
        hr_s = sum(r[st]["s"] for st in ("tile", "labels", "change"))
        r["hr_pps"] = r["patches"] / hr_s
        # the naive script on the whole city: its start-up (imports, polygons) once, plus its
        # measured per-patch loop for every patch (timing only a sample of patches with the
        # start-up spread over them overstated its cost per patch on a small city)
        nv = r["naive"]
        setup_s, per_patch_s = nv["s"] - nv["loop_s"], nv["loop_s"] / nv["n"]
        naive_s = setup_s + per_patch_s * r["patches"]
        r["naive_pps"] = r["patches"] / naive_s
        speedup = r["hr_pps"] / r["naive_pps"]
        print(f"{r['size_m'] / 1000:.2f} km: HR stages {r['hr_pps']:.2f} patches/s ({hr_s:.1f} "
              f"s); naive script {r['naive_pps']:.2f} patches/s ({naive_s:.1f} s: start-up "
              f"{setup_s:.1f} s + {1000 * per_patch_s:.0f} ms per patch, timed on {nv['n']} "
              f"patches) -> speed-up {speedup:.2f}x")
        goals.append(Goal(f"HR stages / naive script, {r['patches']} patches", speedup,
                          ">=", 3.0))
    a, b = runs
    print(f"area ratio {b['size_m'] ** 2 / a['size_m'] ** 2:.1f}x, patch ratio "
          f"{b['patches'] / a['patches']:.2f}x")
    for st in ("demo", "tile", "labels", "change", "naive"):
        print(f"{st:<7} peak RSS ratio 4x/1x {b[st]['maxrss_mb'] / a[st]['maxrss_mb']:.2f}   "
              f"runtime ratio {b[st]['s'] / a[st]['s']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return report(goals)


if __name__ == "__main__":
    raise SystemExit(main())
