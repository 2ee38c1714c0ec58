"""Request-cost benchmark of the GEE block strategy vs naive per-footprint fetching.

FUSU-like AOI: a 40 x 40 lattice of contiguous 256 m patches (512 px x 0.5 m), 128 px (1280 m)
footprints on the 10 m grid, 25 months (2018-08..2020-08). The real :class:`GeeSource` (real
earthengine-api client) fetches every planned block of every month from the fake Earth Engine
server (``tests/fake_ee.py``, cheap constant answers), whose counters give the requested pixels
and requests. The naive strategy (one request per footprint per month) is computed
analytically and verified on a small subset through the same fake.

Run: ``python -m benchmarks.sentinel_requests [--months N] [--side N] [--concurrency N]``.
Goals: requested / union pixels <= 1.15; >= 20x fewer pixels and >= 100x fewer requests than
naive.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.goals import Goal, report
from pipeline.aoi import month_range
from pipeline.sentinel.blocks import (
    REQUEST_BYTES_PER_PX,
    block_size_px,
    footprint_union_mask,
    plan_blocks,
    requested_pixels,
)
from pipeline.sentinel.model import Block, Recipe


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=40, help="patches per AOI side (40)")
    ap.add_argument("--months", type=int, default=25, help="months (25 = 2018-08..2020-08)")
    ap.add_argument("--max-block-bytes", type=int, default=32 * 1024 * 1024)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--subset", type=int, default=12, help="footprints in the naive check")
    args = ap.parse_args(argv)

    import datetime as dt

    import ee.deprecation

    from pipeline.sentinel.sources.gee import GeeSource
    from tests.fake_ee import FakeEarthEngine, fusu_like_footprints

    ee.deprecation._FetchDataCatalogStac = lambda: {}  # offline: no catalog fetch
    months = month_range(dt.date(2018, 8, 1), dt.date(2030, 1, 1))[: args.months]
    fp = fusu_like_footprints(args.side, args.side)
    n_fp = len(fp.col0)
    grid = fp.grid
    block_px = block_size_px(REQUEST_BYTES_PER_PX, args.max_block_bytes)
    t0 = time.perf_counter()
    blocks = plan_blocks(grid, fp.col0, fp.row0, fp.size_px, block_px)
    t_plan = time.perf_counter() - t0
    union = int(footprint_union_mask((grid.height, grid.width), fp.col0, fp.row0, fp.size_px).sum())
    recipe = Recipe()

    with FakeEarthEngine(cheap=True) as fake:
        src = GeeSource(project="bench", api_url=fake.url, sleep=lambda s: None)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda bm: src.fetch_block("bench", grid, bm[0], bm[1], recipe),
                          [(b, m) for m in months for b in blocks]))
        t_fetch = time.perf_counter() - t0
        c = fake.counters
        block_pixels, block_requests = c.pixels, c.requests + c.value_requests
        block_bytes = c.bytes
        assert c.requests == c.ok_requests == len(blocks) * len(months)
        assert c.pixels == requested_pixels(blocks) * len(months)

        # naive: one request per footprint per month (analytic), checked on a subset
        naive_requests = n_fp * len(months)
        naive_pixels = n_fp * fp.size_px**2 * len(months)
        fake.reset_counters()
        sub_months = months[:2]
        sub = [Block(int(c0), int(r0), fp.size_px, fp.size_px)
               for c0, r0 in zip(fp.col0[: args.subset], fp.row0[: args.subset], strict=True)]
        naive_src = GeeSource(project="bench", api_url=fake.url, sleep=lambda s: None)
        for m in sub_months:
            for b in sub:
                naive_src.fetch_block("bench", grid, b, m, recipe)
        assert fake.counters.requests == len(sub) * len(sub_months)
        assert fake.counters.pixels == len(sub) * fp.size_px**2 * len(sub_months)

    ratio_union = block_pixels / (union * len(months))
    px_gain = naive_pixels / block_pixels
    rq_gain = naive_requests / block_requests
    print(f"AOI: {args.side}x{args.side} patches (256 m), {n_fp} footprints of {fp.size_px} px, "
          f"grid {grid.width}x{grid.height} px, {len(months)} months")
    print(f"blocks: {len(blocks)} of <= {block_px} px ({REQUEST_BYTES_PER_PX} B/px, "
          f"max {args.max_block_bytes} B), planned in {t_plan * 1e3:.1f} ms")
    print(f"block strategy: {block_requests} requests ({len(blocks) * len(months)} computePixels "
          f"+ {block_requests - len(blocks) * len(months)} size queries), "
          f"{block_pixels:,} px, {block_bytes / 1e9:.2f} GB, fetched in {t_fetch:.1f} s")
    print(f"naive strategy: {naive_requests} requests, {naive_pixels:,} px "
          f"(subset of {len(sub)} footprints x {len(sub_months)} months verified via the fake)")
    goals = [
        Goal("requested / union pixels", ratio_union, "<=", 1.15),
        Goal("naive / block pixels", px_gain, ">=", 20.0),
        Goal("naive / block requests", rq_gain, ">=", 100.0),
    ]
    print("planner only, irregular AOIs of the same lattice (requested / union pixels):")
    shapes = {
        "disc": lambda i, j: (i - args.side / 2) ** 2 + (j - args.side / 2) ** 2
        < (args.side / 2) ** 2,
        "L-shape": lambda i, j: i < args.side // 4 or j < args.side // 4,
        "holes": lambda i, j: (i // 8 + j // 8) % 3 != 0,
    }
    for name, keep in shapes.items():
        f = fusu_like_footprints(args.side, args.side, keep=keep)
        bl = plan_blocks(f.grid, f.col0, f.row0, f.size_px, block_px)
        shape = (f.grid.height, f.grid.width)
        u = int(footprint_union_mask(shape, f.col0, f.row0, f.size_px).sum())
        print(f"  {name:8s} {len(f.col0):5d} footprints  {len(bl):3d} blocks  "
              f"{requested_pixels(bl) / u:.3f}")
    print("planner only, scattered samples (change-dataset style: 200 footprints at random "
          "places of a 4000 px grid); requested / union pixels, i.e. how much more "
          "s2cloudless work classifying whole blocks would be than classifying the union "
          "(what the scene sources do):")
    import numpy as np

    from pipeline.grid import AoiGrid

    rng = np.random.default_rng(0)
    big = AoiGrid(epsg=32650, res_m=10.0, x0=500000.0, y0=3800000.0, width=4000, height=4000)
    for size in (26, 77, 128, 256):
        c0, r0 = rng.integers(0, 4000 - size, 200), rng.integers(0, 4000 - size, 200)
        bl = plan_blocks(big, c0, r0, size, block_px)
        u = int(footprint_union_mask((big.height, big.width), c0, r0, size).sum())
        print(f"  footprints of {size:3d} px: {len(bl):3d} blocks  {requested_pixels(bl) / u:.3f}")
    return report(goals)


if __name__ == "__main__":
    raise SystemExit(main())
