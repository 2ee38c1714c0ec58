"""Throughput and peak memory of the offline (local archive + s2cloudless) Sentinel path, what
``sentinel.cloud_grid_factor`` buys, and what the ONNX evaluation of s2cloudless' model buys
over LightGBM's own predictor.

Runs the real stages (``sentinel_init`` then ``sentinel_month`` for N months) of an AOI whose
footprints and scene archive already exist (default: the demo AOI after ``snakemake --cores 2
results/demo-inputs/demo/scenes/done.json results/demo/aois/demo/footprints.parquet``), into a
temporary results root, so the real outputs are untouched.

Run: ``python -m benchmarks.sentinel_local [--root results/demo] [--aoi demo]
[--archive results/demo-inputs/demo/scenes] [--months 3] [--first-month 2019-12]
[--threads 2] [--source local] [--block-px 256] [--cloud-grid-factors 1 2 3] [--lightgbm]
[--rounds 3]``. ``--source stac`` reads the archive's static STAC catalogue (its
``catalog.json``; the demo build's source) instead of its scene folders.

Each ``--cloud-grid-factors`` value is built into its own root, the factors taking turns
(``--rounds`` times, the fastest round counts), so the time ratios are measured side by side.
Prints footprint-months per second per factor, the month-job time ratio factor 1 / factor f,
the s2cloudless predictions made, and how the composite differs from factor 1's: pixels whose
clear-observation count differs and clear observations gained / lost. ``--lightgbm`` adds a
variant (taking its turn in every round) that builds the first factor with the predictor the
pipeline used before, s2cloudless' own ``Booster.predict`` (one call at a time, LightGBM's
OpenMP threads), and prints the month-job ratio LightGBM / ONNX and whether every array of the
two staging stores is byte-identical, then its goals (the month job >= 2x faster, no array
differing; exit 1 when one is missed). Peak RSS of the process.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.goals import Goal, report
from pipeline.config import SentinelConfig
from pipeline.io.jsonfile import read_json
from pipeline.layout import Layout


def _s2_counts(lay: Layout, aoi: str) -> np.ndarray:
    """(months, h, w) clear S2 observations of the AOI's staging store."""
    from pipeline.io.mosaic import _open_arrays

    arrays, _ = _open_arrays(str(lay.mosaic_staging(aoi)), "r")
    return np.asarray(arrays["s2_count"][:])


def _arrays(lay: Layout, aoi: str) -> dict[str, np.ndarray]:
    """Every array of the AOI's staging store."""
    from pipeline.io.mosaic import _open_arrays

    arrays, _ = _open_arrays(str(lay.mosaic_staging(aoi)), "r")
    return {k: np.asarray(a[:]) for k, a in arrays.items()}


@contextlib.contextmanager
def _lightgbm_predictor() -> Iterator[None]:
    """CloudDetector.predict replaced by s2cloudless' own predictor (LightGBM's
    ``Booster.predict`` on float32 rows, one call at a time as before the ONNX evaluation),
    and its background build of the ONNX session turned off."""
    from s2cloudless import S2PixelCloudDetector

    from pipeline.sentinel.cloud_probability import CloudDetector

    det = S2PixelCloudDetector(all_bands=False)
    lock = threading.Lock()

    def predict(self: CloudDetector, px: np.ndarray) -> np.ndarray:
        rows = np.asarray(px, np.float32)[None, :, None, :]
        with lock:
            return np.asarray(det.get_cloud_probability_maps(rows)[0, :, 0], np.float32)

    def warm_up(self: CloudDetector) -> None:  # LightGBM's model is loaded above
        pass

    shipped = CloudDetector.predict, CloudDetector.warm_up
    CloudDetector.predict = predict  # type: ignore[method-assign]
    # without this the variant would also build the ONNX session it never uses (about a
    # second of CPU on the job's cores), flattering the ratio
    CloudDetector.warm_up = warm_up  # type: ignore[method-assign]
    try:
        yield
    finally:
        CloudDetector.predict, CloudDetector.warm_up = shipped  # type: ignore[method-assign]


def _build(src: Layout, root: Path, aoi_name: str, archive: str, months: list[str],
           factor: int, args: argparse.Namespace, lightgbm: bool = False) -> dict[str, Any]:
    """init + every month into ``root`` with ``cloud_grid_factor`` ``factor`` (with
    s2cloudless' LightGBM predictor when ``lightgbm``)."""
    with _lightgbm_predictor() if lightgbm else contextlib.nullcontext():
        return _build_months(src, root, aoi_name, archive, months, factor, args)


def _build_months(src: Layout, root: Path, aoi_name: str, archive: str, months: list[str],
                  factor: int, args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.aoi import AoiSpec
    from pipeline.sentinel.drivers import fetch_month, init_aoi
    from pipeline.sentinel.sources import make_source

    shutil.rmtree(root, ignore_errors=True)
    lay = Layout(root)
    for p in (src.grid(aoi_name), src.footprints(aoi_name)):
        dst = lay.root / p.relative_to(src.root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dst)
    cfg = SentinelConfig(source=args.source, block_size_px=args.block_px,
                         cloud_grid_factor=factor)
    paths = {"t1": "unused", "t2": "unused"}
    aoi = AoiSpec(name=aoi_name, city=aoi_name, t1=f"{months[0]}-01", t2=f"{months[-1]}-28",
                  images=paths, annotations=paths, sentinel_archive=archive)
    marker = init_aoi(aoi, cfg, lay)
    dt, predictions, summaries = 0.0, 0, []
    for m in months:
        # the source the month job builds (make_source), kept to read its prediction count
        source = make_source(cfg, archive, f"AOI {aoi_name}")
        try:
            t0 = time.perf_counter()
            summaries.append(fetch_month(aoi, m, cfg, lay, threads=args.threads,
                                         source=source))
            dt += time.perf_counter() - t0
            predictions += int(getattr(source, "classified_pixels", 0))
        finally:
            source.close()
    return {"seconds": dt, "marker": marker, "summaries": summaries,
            "predictions": predictions, "counts": _s2_counts(lay, aoi_name), "layout": lay}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="results/demo")
    ap.add_argument("--aoi", default="demo")
    ap.add_argument("--archive", default="results/demo-inputs/demo/scenes")
    ap.add_argument("--months", type=int, default=3)
    ap.add_argument("--first-month", default=None, help="YYYY-MM (default: the archive's first)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--source", choices=["local", "stac"], default="local",
                    help="'stac' reads the archive's static STAC catalogue of COGs (the "
                    "demo build's source) instead of the scene folders")
    ap.add_argument("--block-px", type=int, default=None)
    ap.add_argument("--cloud-grid-factors", type=int, nargs="+", default=[1])
    ap.add_argument("--lightgbm", action="store_true",
                    help="also build the first factor with LightGBM's own predictor")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()

    src = Layout(Path(args.root))
    months = sorted(p.name[:6] for p in (Path(args.archive) / "s2").iterdir())
    months = sorted({f"{m[:4]}-{m[4:6]}" for m in months})
    if args.first_month:
        months = [m for m in months if m >= args.first_month]
    months = months[: args.months]
    factors = list(dict.fromkeys(args.cloud_grid_factors))
    best: dict[int | str, dict[str, Any]] = {}
    goals: list[Goal] = []  # with --lightgbm: the 2x with identical masks
    with tempfile.TemporaryDirectory(prefix="bench-sentinel-") as tmp:
        for r in range(args.rounds):
            for f in factors:
                got = _build(src, Path(tmp) / f"f{f}", args.aoi, args.archive, months, f, args)
                print(f"round {r + 1} cloud_grid_factor {f}: {got['seconds']:.2f} s, "
                      f"{got['predictions']} s2cloudless predictions")
                if f not in best or got["seconds"] < best[f]["seconds"]:
                    best[f] = got
            if args.lightgbm:
                got = _build(src, Path(tmp) / "lightgbm", args.aoi, args.archive, months,
                             factors[0], args, lightgbm=True)
                print(f"round {r + 1} LightGBM predictor (factor {factors[0]}): "
                      f"{got['seconds']:.2f} s")
                if "lightgbm" not in best or got["seconds"] < best["lightgbm"]["seconds"]:
                    best["lightgbm"] = got
        ref = best[factors[0]]
        for s in ref["summaries"]:
            print(f"{s['month']}: {s['n_scenes']['s2']} S2 + {s['n_scenes']['s1']} S1 scenes, "
                  f"{s['blocks']} blocks")
        n_fp = ref["marker"]["footprints"]
        grid = read_json(ref["layout"].grid(args.aoi))
        print(f"footprints {n_fp}, months {len(months)}, grid {grid['width'] * grid['height']} "
              f"px, blocks {ref['marker']['n_blocks']}, {args.threads} threads")
        for f in factors:
            b = best[f]
            line = (f"cloud_grid_factor {f}: {n_fp * len(months) / b['seconds']:.2f} "
                    f"footprint-months/s ({b['seconds'] / len(months):.2f} s per month), "
                    f"{b['predictions']} predictions")
            if f != factors[0]:
                c0, c1 = ref["counts"].astype(np.int64), b["counts"].astype(np.int64)
                differ = float(np.mean(c0 != c1))
                gained = int(np.clip(c1 - c0, 0, None).sum())
                lost = int(np.clip(c0 - c1, 0, None).sum())
                line += (f"; month job {ref['seconds'] / b['seconds']:.2f}x faster than "
                         f"factor {factors[0]}; clear-count differs on {differ:.2%} of pixel-"
                         f"months; clear observations +{gained} / -{lost} of "
                         f"{int(c0.sum())}")
            print(line)
        if args.lightgbm:
            lg = best["lightgbm"]
            a, b = _arrays(ref["layout"], args.aoi), _arrays(lg["layout"], args.aoi)
            differ = sorted(set(a) ^ set(b)) + [
                k for k in a if k in b and not np.array_equal(a[k], b[k], equal_nan=True)]
            speedup = lg["seconds"] / ref["seconds"]
            print(f"ONNX evaluation (shipped) vs LightGBM's predictor, factor {factors[0]}: "
                  f"month job {speedup:.2f}x faster "
                  f"({ref['seconds']:.2f} s vs {lg['seconds']:.2f} s); staging stores "
                  f"{'DIFFER: ' + ', '.join(differ) if differ else 'byte-identical'} "
                  f"({len(a)} arrays)")
            goals = [Goal(f"month job LightGBM / ONNX (factor {factors[0]})", speedup, ">=", 2.0),
                     Goal("staging arrays differing from LightGBM's", len(differ), "<=", 0)]
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return report(goals) if goals else 0


if __name__ == "__main__":
    raise SystemExit(main())
