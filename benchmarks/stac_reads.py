"""STAC source reads over HTTP: bytes read per window byte, requests per block and band, and
the rasterio WarpedVRT reader side by side with odc-stac's ``load`` on the same items and grid.

A synthetic provider: ``--scenes`` Sentinel-2 L2A items (Earth Search layout, COGs with 256 px
tiles at native 10 / 20 / 60 m resolution, with SCL) covering ``--scene-km`` km, served by the
loopback range server (tests/fake_stac.py). A FUSU-like AOI inside it: a lattice of 256 m
patches with 1.28 km (128 px) footprints, sparse enough that the block plan skips ground.
Every block of one month is fetched through the real source (``s2_mask: scl``, so no
s2cloudless time), then the same band windows are read again by each reader alone.

Run: ``python -m benchmarks.stac_reads [--scenes 3] [--scene-km 20] [--lattice 40]``.
Prints (measured in one run, side by side):
* bytes served / bytes of the windows (uint16 window pixels at native resolution);
* HTTP range requests per block and band;
* seconds of our reader and of odc-stac ``load`` for the same windows, and their ratio;
* with ``--latency-ms`` of first-byte latency on every file answer (an object store's; the
  loopback server has none), the month's blocks fetched one at a time with
  ``item_concurrency`` 1 and 4 (the scenes of a block read at once), their time ratio and
  whether the composites are identical.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np


def _scenes(root: Path, n: int, side_px: int, x0: float, y0: float) -> None:
    from affine import Affine

    from pipeline.io.scenes import L2A_FILE_BANDS, NATIVE_RES_M, write_s2_scene

    rng = np.random.default_rng(0)
    for i in range(n):
        bands = {}
        for b in (*L2A_FILE_BANDS, "SCL"):
            r = NATIVE_RES_M[b]
            k = side_px * 10 // r
            if b == "SCL":
                arr = np.full((k, k), 4, np.uint8)
                arr[: k // 5] = 9  # a cloud band in the north
            else:
                base = rng.integers(400, 3000, size=(k // 8 + 1, k // 8 + 1)).astype(np.float32)
                arr = np.kron(base, np.ones((8, 8), np.float32))[:k, :k]
                arr = (arr + rng.normal(0, 30, size=arr.shape)).clip(1, 65534).astype(np.uint16)
            bands[b] = arr
        tr = {r: Affine(float(r), 0.0, x0, 0.0, -float(r), y0) for r in (10, 20, 60)}
        write_s2_scene(root, dt.datetime(2020, 6, 3 + 5 * i, 3, 25), "49SGU", "EPSG:32649", tr,
                       {"L2A": bands})


def _tile_bytes(root: Path, grid: object, blocks: list) -> int:  # type: ignore[type-arg]
    """Compressed bytes of the distinct internal tiles of every band file that some block
    window overlaps (what an ideal range reader must fetch)."""
    import rasterio
    from rasterio.windows import from_bounds

    total = 0
    for f in sorted(root.glob("s2/*/L2A/*.tif")):
        with rasterio.open(f) as src:
            bh, bw = src.block_shapes[0]
            seen: set[tuple[int, int]] = set()
            for b in blocks:
                t = grid.window_transform(b.col0, b.row0)  # type: ignore[attr-defined]
                x0, y1 = t.c, t.f
                x1, y0 = x0 + b.width * t.a, y1 + b.height * t.e
                w = from_bounds(x0, y0, x1, y1, src.transform)
                r0, r1 = int(max(0, w.row_off)) // bh, int(min(src.height - 1,
                                                               w.row_off + w.height - 1e-9)) // bh
                c0, c1 = int(max(0, w.col_off)) // bw, int(min(src.width - 1,
                                                               w.col_off + w.width - 1e-9)) // bw
                seen.update((i, j) for i in range(r0, r1 + 1) for j in range(c0, c1 + 1))
            total += sum(src.block_size(1, i, j) for i, j in seen)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=3)
    ap.add_argument("--scene-km", type=float, default=20.0)
    ap.add_argument("--lattice", type=int, default=40, help="patches per side (every other)")
    ap.add_argument("--latency-ms", type=float, default=30.0,
                    help="first-byte latency of the item-concurrency comparison")
    args = ap.parse_args()

    from odc.geo.geobox import GeoBox
    from odc.stac import load as odc_load

    from pipeline.grid import AoiGrid
    from pipeline.io.mosaic import CHUNK_PX
    from pipeline.io.scenes import L2A_FILE_BANDS, NATIVE_RES_M, gdal_http_env, read_on_grid
    from pipeline.io.stac_catalog import write_scene_catalog
    from pipeline.sentinel.blocks import plan_blocks
    from pipeline.sentinel.model import Recipe
    from pipeline.sentinel.sources.stac import stac_source
    from pipeline.sentinel.sources.stac_profiles import PROFILES
    from tests.fake_ee import fusu_like_footprints
    from tests.fake_stac import FakeStac

    side = int(args.scene_km * 100)  # 10 m px
    x0, y0 = 640000.0, 3800000.0
    with tempfile.TemporaryDirectory(prefix="bench-stac-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        _scenes(root, args.scenes, side, x0, y0)
        write_scene_catalog(root)
        print(f"{args.scenes} scenes of {side}x{side} px written in "
              f"{time.perf_counter() - t:.1f} s")
        n = args.lattice
        fp = fusu_like_footprints(n, n, keep=lambda i, j: (i + j) % 2 == 0,
                                  origin=(x0 + 4000.0, y0 - 4000.0))
        grid: AoiGrid = fp.grid
        blocks = plan_blocks(grid, fp.col0, fp.row0, int(fp.size_px), 640, chunk_px=CHUNK_PX)
        with FakeStac(root, page_size=100) as srv:
            srv.items = srv.items_from_catalog(root / "catalog.json")
            src = stac_source(srv.api, collections={"s2_l1c": "", "s1": ""})
            srv.counters.log.clear()
            srv.counters.bytes = 0
            t = time.perf_counter()
            for b in blocks:
                src.fetch_block("bench", grid, b, "2020-06", Recipe(s2_mask="scl"))
            fetch_s = time.perf_counter() - t
            files = [e for e in srv.counters.log if e["path"].startswith("/files/")]
            gets = [e for e in files if e["method"] == "GET"]
            bands = len(L2A_FILE_BANDS) + 1
            window = sum(b.n_pixels * (10.0 / NATIVE_RES_M[bd]) ** 2 * 2
                         for b in blocks for bd in L2A_FILE_BANDS) * args.scenes
            window += sum(b.n_pixels / 4 for b in blocks) * args.scenes  # SCL uint8 at 20 m
            tiles = _tile_bytes(root, grid, blocks)
            served = sum(e["bytes"] for e in files)
            print(f"AOI {grid.width}x{grid.height} px, {len(blocks)} blocks "
                  f"({sum(b.n_pixels for b in blocks)} px); fetch {fetch_s:.1f} s")
            print(f"bytes served / compressed bytes of the COG tiles the windows overlap = "
                  f"{served / tiles:.3f} ({served / 1e6:.2f} MB / {tiles / 1e6:.2f} MB)")
            print(f"bytes served / uncompressed window bytes = {served / window:.3f} "
                  f"({window / 1e6:.2f} MB of uint16 / uint8 window pixels)")
            print(f"HTTP GET range requests per block and band = "
                  f"{len(gets) / (len(blocks) * bands * args.scenes):.2f} "
                  f"({len(gets)} GETs, {len(files) - len(gets)} HEADs)")

            # the two readers alone, same items, bands and block windows (nearest)
            items = [it for it in srv.items if it["collection"] == "sentinel-2-l2a"]
            keys = PROFILES["earth-search"].s2_keys
            # fresh URLs per reader (a query string), so neither re-uses what the fetch cached
            hrefs = [[it["assets"][keys[b]]["href"] + "?reader=ours" for b in L2A_FILE_BANDS]
                     for it in items]
            t = time.perf_counter()
            ours = []
            with gdal_http_env(2, 0.1, 30):
                for b in blocks:
                    tr = grid.window_transform(b.col0, b.row0)
                    for hs in hrefs:
                        ours.append(read_on_grid(hs, grid.crs, tr, b.width, b.height,
                                                 "nearest", nodata=0)[0])
            ours_s = time.perf_counter() - t
            import pystac

            pitems = [pystac.Item.from_dict(it) for it in items]
            for pit in pitems:
                for a in pit.assets.values():
                    a.href += "?reader=odc"
            t = time.perf_counter()
            theirs = []
            for b in blocks:
                gb = GeoBox((b.height, b.width), grid.window_transform(b.col0, b.row0),
                            grid.crs)
                ds = odc_load(pitems, bands=[keys[x] for x in L2A_FILE_BANDS], geobox=gb,
                              resampling="nearest", groupby="id", chunks=None)
                theirs.append(ds)
            odc_s = time.perf_counter() - t
            same = all(
                np.array_equal(ours[k][i], theirs[k // len(hrefs)][keys[bd]].values[k % len(hrefs)]
                               .astype(np.float32))
                for k in range(len(ours)) for i, bd in enumerate(L2A_FILE_BANDS))
            print(f"reader alone: rasterio WarpedVRT {ours_s:.2f} s, odc-stac load {odc_s:.2f} s,"
                  f" ratio odc/ours = {odc_s / ours_s:.2f}; identical pixels: {same}")

        # scenes of a block read at once, against an object store's latency (fresh servers:
        # other ports, nothing in GDAL's cache)
        timing, results = {}, {}
        for n_items in (1, 4):
            with FakeStac(root, page_size=100, latency_s=args.latency_ms / 1000.0) as srv:
                srv.items = srv.items_from_catalog(root / "catalog.json")
                src = stac_source(srv.api, collections={"s2_l1c": "", "s1": ""},
                                 item_concurrency=n_items)
                src.s2_scenes("2020-06", grid)  # the search is not what is compared
                t = time.perf_counter()
                results[n_items] = [src.fetch_block("bench", grid, b, "2020-06",
                                                    Recipe(s2_mask="scl")) for b in blocks]
                timing[n_items] = time.perf_counter() - t
                peak = srv.counters.max_files_in_flight
        same = all(np.array_equal(a.s2, b.s2, equal_nan=True)
                   and np.array_equal(a.s2_count, b.s2_count)
                   for a, b in zip(results[1], results[4], strict=True))
        print(f"{args.latency_ms:.0f} ms latency, blocks one at a time: item_concurrency 1 "
              f"{timing[1]:.2f} s, 4 {timing[4]:.2f} s, ratio 1/4 = {timing[1] / timing[4]:.2f}"
              f" (peak {peak} file requests at once); identical composites: {same}")


if __name__ == "__main__":
    main()
