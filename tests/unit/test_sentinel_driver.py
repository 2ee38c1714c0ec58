"""Sentinel driver: block fan-out, ledger resume, crash safety, quota handling, summary."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.aoi import AoiSpec
from pipeline.errors import QuotaExhaustedError, SourceError
from pipeline.grid import AoiGrid
from pipeline.io.jsonfile import read_json
from pipeline.io.mosaic import init_mosaic
from pipeline.io.mosaic_read import read_footprint_cube
from pipeline.layout import Layout
from pipeline.sentinel.blocks import plan_blocks
from pipeline.sentinel.fetch import run_month
from pipeline.sentinel.model import Block, BlockResult, Recipe

GRID = AoiGrid(epsg=32649, res_m=10.0, x0=650040.0, y0=3795000.0, width=192, height=160)
MONTHS = ["2020-01", "2020-02"]
CHUNK = 32


class FakeSource:
    """Deterministic values from grid coordinates; fails after ``fail_after`` blocks."""

    name = "fake"

    def __init__(self, fail_after: int | None = None, exc: type[Exception] = RuntimeError):
        self.fail_after = fail_after
        self.exc = exc
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def fetch_block(
        self, aoi: str, grid: AoiGrid, block: Block, month: str, recipe: Recipe,
        cover: np.ndarray | None = None,
    ) -> BlockResult:
        with self._lock:
            if self.fail_after is not None and len(self.calls) >= self.fail_after:
                raise self.exc(f"simulated failure at block {block.id}")
            self.calls.append(block.id)
        h, w = block.height, block.width
        rr, cc = np.mgrid[block.row0 : block.row0 + h, block.col0 : block.col0 + w]
        m = int(month[5:7])  # 2020-01 -> 1, 2020-02 -> 2, ...
        r = BlockResult.empty(h, w)
        r.s2 = np.stack([(rr * 7 + cc * 3 + b + m) % 5000 / 10000.0 for b in range(12)]).astype(
            np.float32
        )
        cloudy = (rr + cc) % 11 == 0
        r.s2[:, cloudy] = np.nan
        r.s2_count = np.where(cloudy, 0, 3).astype(np.uint8)
        r.s1 = np.stack([-10.0 - rr / 100.0, -16.0 - cc / 100.0]).astype(np.float32)
        r.s1_count = np.full((h, w), 2, np.uint8)
        r.meta = {"s2_product": "L2A", "s2_scenes": 3, "s1_scenes": 2, "requests": 2,
                  "bytes": h * w * 56, "pixels": h * w, "retries": 1}
        return r

    def close(self) -> None:
        pass


def _blocks() -> list[Block]:
    col0 = np.array([0, 40, 100, 130])
    row0 = np.array([0, 30, 60, 90])
    blocks = plan_blocks(GRID, col0, row0, 64, 64, chunk_px=CHUNK)
    assert len(blocks) >= 4
    return blocks


def _store_digest(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*")) if p.is_file()
    }


def _setup(tmp: Path) -> tuple[Path, Path]:
    store = tmp / "demo.zarr"
    init_mosaic(store, GRID, MONTHS, chunk_px=CHUNK, aoi="demo")
    return store, tmp / "ledger" / "2020-02"


def test_uninterrupted_run_summary_and_values(tmp_path: Path) -> None:
    store, ledger = _setup(tmp_path)
    blocks = _blocks()
    src = FakeSource()
    summ_path = tmp_path / "months" / "2020-02.json"
    s = run_month(src, "demo", GRID, blocks, "2020-02", Recipe(), store, ledger, concurrency=3,
                  summary_path=summ_path)
    assert s == read_json(summ_path) | {"seconds": s["seconds"]}
    assert s["blocks_done"] == len(blocks) and s["blocks_skipped"] == 0
    assert s["requests"] == 2 * len(blocks) and s["retries"] == len(blocks)
    assert s["pixels"] == sum(b.n_pixels for b in blocks)
    assert s["s2_product"] == "L2A" and s["n_scenes"] == {"s2": 3, "s1": 2}
    assert sorted(src.calls) == sorted(b.id for b in blocks)
    b = blocks[0]
    cube = read_footprint_cube(store, b.col0, b.row0, (b.height, b.width))
    want = src.fetch_block("demo", GRID, b, "2020-02", Recipe())
    np.testing.assert_allclose(cube["x"][1, :12], want.s2, atol=0.5e-4 + 1e-7, equal_nan=True)
    np.testing.assert_array_equal(cube["counts"][1, 0], want.s2_count)
    assert np.isnan(cube["x"][0]).all()  # other month untouched


def test_resume_after_crash_is_byte_identical(tmp_path: Path) -> None:
    blocks = _blocks()
    ref_store, ref_ledger = _setup(tmp_path / "ref")
    run_month(FakeSource(), "demo", GRID, blocks, "2020-02", Recipe(), ref_store, ref_ledger)

    store, ledger = _setup(tmp_path / "crash")
    k = 2
    with pytest.raises(SourceError, match="rerun resumes"):
        run_month(FakeSource(fail_after=k), "demo", GRID, blocks, "2020-02", Recipe(), store,
                  ledger, concurrency=1)
    assert len(list(ledger.glob("r*.json"))) == k
    src2 = FakeSource()
    s = run_month(src2, "demo", GRID, blocks, "2020-02", Recipe(), store, ledger, concurrency=2)
    assert s["blocks_skipped"] == k and s["blocks_done"] == len(blocks) - k
    assert len(src2.calls) == len(blocks) - k  # only the rest was fetched
    assert s["requests"] == 2 * len(blocks)  # totals cover every block of the month
    assert _store_digest(store) == _store_digest(ref_store)

    # a third run fetches nothing
    src3 = FakeSource()
    s3 = run_month(src3, "demo", GRID, blocks, "2020-02", Recipe(), store, ledger)
    assert src3.calls == [] and s3["blocks_skipped"] == len(blocks)


def test_only_the_cover_is_kept_and_a_changed_cover_is_fetched_again(tmp_path: Path) -> None:
    from pipeline.sentinel.model import FootprintCover

    store, ledger = _setup(tmp_path)
    blocks = _blocks()
    cover = FootprintCover.of([0, 40, 100, 130], [0, 30, 60, 90], 50)
    src = FakeSource()
    run_month(src, "demo", GRID, blocks, "2020-02", Recipe(), store, ledger, cover=cover)
    cube = read_footprint_cube(store, 0, 0, (GRID.height, GRID.width))
    keep = cover.mask(0, 0, GRID.width, GRID.height)
    planned = np.zeros_like(keep)
    for b in blocks:
        planned[b.row0 : b.row0 + b.height, b.col0 : b.col0 + b.width] = True
    assert (planned & ~keep).any()  # the blocks hold pixels no footprint needs
    assert (cube["counts"][1, 0][keep & planned] > 0).any()
    assert (cube["counts"][1, :, ~keep] == 0).all()
    assert np.isnan(cube["x"][1][:, ~keep]).all()
    # the same cover: nothing to fetch; one footprint moved: only its blocks again
    again = FakeSource()
    run_month(again, "demo", GRID, blocks, "2020-02", Recipe(), store, ledger, cover=cover)
    assert again.calls == []
    moved = FootprintCover.of([0, 40, 100, 131], [0, 30, 60, 90], 50)
    changed = {b.id for b in blocks if not np.array_equal(cover.block_mask(b),
                                                          moved.block_mask(b))}
    assert 0 < len(changed) < len(blocks)
    third = FakeSource()
    run_month(third, "demo", GRID, blocks, "2020-02", Recipe(), store, ledger, cover=moved)
    assert sorted(third.calls) == sorted(changed)
    # the last footprint dropped (a month only some samples need): the blocks only it reached
    # are not asked of the source, and what an earlier cover stored there is unobserved now
    fewer = FootprintCover.of([0, 40, 100], [0, 30, 60], 50)
    gone = [b for b in blocks if not fewer.block_mask(b).any()]
    assert gone and all(moved.block_mask(b).any() for b in gone)
    fourth = FakeSource()
    summary = run_month(fourth, "demo", GRID, blocks, "2020-02", Recipe(), store, ledger,
                        cover=fewer)
    assert not {b.id for b in gone} & set(fourth.calls)
    assert summary["blocks_uncovered"] == len(gone)
    cube = read_footprint_cube(store, 0, 0, (GRID.height, GRID.width))
    for b in gone:
        win = (slice(b.row0, b.row0 + b.height), slice(b.col0, b.col0 + b.width))
        assert (cube["counts"][1][(slice(None), *win)] == 0).all()
        assert np.isnan(cube["x"][1][(slice(None), *win)]).all()


def test_quota_exhausted_keeps_finished_blocks(tmp_path: Path) -> None:
    store, ledger = _setup(tmp_path)
    blocks = _blocks()
    with pytest.raises(QuotaExhaustedError, match="resumes") as ei:
        run_month(FakeSource(fail_after=1, exc=QuotaExhaustedError), "demo", GRID, blocks,
                  "2020-02", Recipe(), store, ledger)
    assert "demo" in str(ei.value) and "2020-02" in str(ei.value)
    assert len(list(ledger.glob("r*.json"))) == 1


def test_month_not_in_store(tmp_path: Path) -> None:
    store, ledger = _setup(tmp_path)
    with pytest.raises(Exception, match="sentinel_init"):
        run_month(FakeSource(), "demo", GRID, _blocks(), "2021-05", Recipe(), store, ledger)


def test_stages_init_month_summary(tmp_path: Path) -> None:
    """sentinel_init -> sentinel_month (fake source) -> sentinel aggregate, via stage run()."""
    import pandas as pd

    from pipeline.config import SentinelConfig
    from pipeline.io.jsonfile import write_json
    from pipeline.io.parquet import write_geoparquet
    from pipeline.layout import Layout
    from pipeline.sentinel.drivers import fetch_month, init_aoi, summarize_aoi
    from pipeline.sentinel.sources import make_source
    from tests.sentinel_helpers import sentinel_aoi

    aoi = sentinel_aoi("a", MONTHS[0], MONTHS[-1])

    lay = Layout(tmp_path / "demo")
    write_json(lay.grid("a"), GRID.to_dict() | {"rule": "test", "size_px": 64, "scale": 5.0})
    fp = pd.DataFrame({"patch_id": ["a_r000_c000", "a_r000_c001"], "fp_col0": [10, 120],
                       "fp_row0": [5, 90], "fp_size_px": [64, 64]})
    write_geoparquet(fp, lay.footprints("a"))
    cfg = SentinelConfig(source="local", block_size_px=64)
    marker = init_aoi(aoi, cfg, lay)
    plan = read_json(lay.sentinel_blocks("a"))
    assert marker["n_blocks"] == len(plan["blocks"]) > 0 and plan["chunk_px"] == 64
    for m in MONTHS:
        s = fetch_month(aoi, m, cfg, lay, threads=2, source=FakeSource())
        assert s["blocks_done"] == marker["n_blocks"]
        assert read_json(lay.month_summary("a", m))["month"] == m
    total = summarize_aoi(aoi, lay)
    assert total["s2_product"] == {"2020-01": "L2A", "2020-02": "L2A"}
    from pipeline.io.mosaic import store_attrs

    recorded = store_attrs(lay.mosaic("a"))["recipe"]  # the cloud recipe travels with the cube
    assert recorded == total["recipe"] and recorded["cloud_preset"] == "gee"
    assert (recorded["cloud_average_over"], recorded["cloud_dilation_size"]) == (0, 0)
    assert total["totals"]["requests"] == 2 * 2 * marker["n_blocks"]
    # every footprint window is fully covered by fetched data
    for c0, r0 in zip(fp.fp_col0, fp.fp_row0, strict=True):
        cube = read_footprint_cube(lay.mosaic("a"), int(c0), int(r0), 64)
        assert (cube["counts"][:, 1] == 2).all()
    # the month jobs filled the staging store; the aggregate built the read-optimised cube
    assert marker["store"] == str(lay.mosaic_staging("a")) and lay.mosaic_staging("a").is_dir()
    assert total["cube"]["chunks"]["s2"][:2] == [len(MONTHS), 12]
    c0, r0 = int(fp.fp_col0[0]), int(fp.fp_row0[0])
    np.testing.assert_array_equal(read_footprint_cube(lay.mosaic_staging("a"), c0, r0, 64)["x"],
                                  read_footprint_cube(lay.mosaic("a"), c0, r0, 64)["x"])
    files = sorted(f for f in lay.mosaic("a").rglob("*") if f.is_file())
    before = [f.read_bytes() for f in files]
    summarize_aoi(aoi, lay)  # rerun: byte-identical cube
    assert [f.read_bytes() for f in files] == before
    # a rerun of sentinel_init keeps the store; the local source needs an archive path
    init_aoi(aoi, cfg, lay)
    assert any(lay.ledger_dir("a", MONTHS[0]).iterdir())  # kept store: ledger kept
    # a newly created staging store drops the stale ledger (else month jobs skip every block)
    import shutil

    shutil.rmtree(lay.mosaic_staging("a"))
    init_aoi(aoi, cfg, lay)
    assert not lay.ledger_dir("a", MONTHS[0]).exists()
    s = fetch_month(aoi, MONTHS[0], cfg, lay, threads=2, source=FakeSource())
    assert s["blocks_done"] == marker["n_blocks"] and s["blocks_skipped"] == 0
    with pytest.raises(Exception, match="sentinel_archive"):
        make_source(cfg, None, "AOI a")


def test_changed_recipe_or_source_refetches_instead_of_resuming(tmp_path: Path) -> None:
    """A ledger marker only counts as done for the recipe and source that wrote it."""
    store, ledger = _setup(tmp_path)
    blocks = _blocks()
    local = {"source": "local", "archive": "scenes"}
    first = run_month(FakeSource(), "demo", GRID, blocks, "2020-02", Recipe(), store, ledger,
                      identity=local)
    assert first["blocks_done"] == len(blocks)
    # same recipe + source: resume, nothing fetched
    src = FakeSource()
    again = run_month(src, "demo", GRID, blocks, "2020-02", Recipe(), store, ledger,
                      identity=local)
    assert again["blocks_skipped"] == len(blocks) and not src.calls
    # another cloud threshold: every block is fetched again (no stale composites)
    src = FakeSource()
    strict = Recipe(cloud_probability_threshold=20)
    changed = run_month(src, "demo", GRID, blocks, "2020-02", strict, store, ledger,
                        identity=local)
    assert changed["blocks_done"] == len(blocks) and len(src.calls) == len(blocks)
    # another source (or archive): fetched again too
    src = FakeSource()
    other = run_month(src, "demo", GRID, blocks, "2020-02", strict, store, ledger,
                      identity={"source": "gee"})
    assert other["blocks_done"] == len(blocks)
    marker = read_json(ledger / f"{blocks[0].id}.json")
    from pipeline.sentinel.fetch import recipe_key

    assert marker["recipe_key"] == recipe_key(strict, {"source": "gee"})
    assert recipe_key(strict, local) != recipe_key(Recipe(), local)


def test_changed_aoi_dates_keep_fetched_months_without_manual_steps(tmp_path: Path) -> None:
    """Changing an AOI's dates needs no deleting and no --forcerun: sentinel_init re-times the
    staging store, keeps the months it holds (data and ledger), drops the rest."""
    import pandas as pd

    from pipeline.config import SentinelConfig
    from pipeline.io.jsonfile import write_json
    from pipeline.io.parquet import write_geoparquet
    from pipeline.layout import Layout
    from pipeline.sentinel.drivers import fetch_month, init_aoi
    from tests.sentinel_helpers import sentinel_aoi

    lay = Layout(tmp_path / "demo")
    write_json(lay.grid("a"), GRID.to_dict() | {"rule": "test", "size_px": 64, "scale": 5.0})
    write_geoparquet(pd.DataFrame({"patch_id": ["p"], "fp_col0": [10], "fp_row0": [5],
                                   "fp_size_px": [64]}), lay.footprints("a"))
    cfg = SentinelConfig(source="local", block_size_px=64)
    before = sentinel_aoi("a", "2020-01", "2020-02")
    init_aoi(before, cfg, lay)
    for m in before.months:
        fetch_month(before, m, cfg, lay, source=FakeSource())
    feb = read_footprint_cube(lay.mosaic_staging("a"), 10, 5, 64)["x"][1]
    after = sentinel_aoi("a", "2020-02", "2020-03")  # one month dropped, one added
    init_aoi(after, cfg, lay)  # no InputError, no manual step
    cube = read_footprint_cube(lay.mosaic_staging("a"), 10, 5, 64)
    assert cube["months"] == ["2020-02", "2020-03"]
    np.testing.assert_array_equal(cube["x"][0], feb)  # the fetched month is kept
    assert np.isnan(cube["x"][1]).all()  # the new month is still empty
    assert not lay.ledger_dir("a", "2020-01").exists()
    assert not lay.month_summary("a", "2020-01").exists()  # no stale month JSON
    src = FakeSource()
    assert fetch_month(after, "2020-02", cfg, lay, source=src)["blocks_done"] == 0
    assert not src.calls  # resumed from the kept ledger
    assert fetch_month(after, "2020-03", cfg, lay, source=src)["blocks_done"] > 0
    # a grid change cannot keep anything: the store is rebuilt, every month refetched
    wider = GRID.to_dict() | {"width": GRID.width + 64}
    write_json(lay.grid("a"), wider | {"rule": "test", "size_px": 64, "scale": 5.0})
    init_aoi(after, cfg, lay)
    assert not lay.ledger_dir("a", "2020-02").exists()


def test_scenes_added_to_the_archive_refetch_the_month(tmp_path: Path) -> None:
    """The local source's identity includes a fingerprint of the month's scene files: a scene
    added to (or replaced in) the archive refetches the month instead of resuming stale
    composites; other months keep resuming."""
    import pandas as pd

    from pipeline.config import SentinelConfig
    from pipeline.io.jsonfile import write_json
    from pipeline.io.parquet import write_geoparquet
    from pipeline.layout import Layout
    from pipeline.sentinel.drivers import fetch_month, init_aoi
    from tests.sentinel_helpers import GRID as SCENE_GRID
    from tests.sentinel_helpers import sentinel_aoi, write_scene

    archive = tmp_path / "scenes"
    write_scene(archive, 3, 0.1)
    lay = Layout(tmp_path / "demo")
    grid = AoiGrid(**(SCENE_GRID.to_dict() | {"width": 64, "height": 64}))
    write_json(lay.grid("a"), grid.to_dict() | {"rule": "t", "size_px": 64, "scale": 5.0})
    write_geoparquet(pd.DataFrame({"patch_id": ["p"], "fp_col0": [0], "fp_row0": [0],
                                   "fp_size_px": [64]}), lay.footprints("a"))
    cfg = SentinelConfig(source="local", block_size_px=64)
    aoi = sentinel_aoi("a", "2020-03", "2020-04", str(archive))
    init_aoi(aoi, cfg, lay)
    first = fetch_month(aoi, "2020-03", cfg, lay)
    fetch_month(aoi, "2020-04", cfg, lay)
    assert first["blocks_done"] == 1 and first["n_scenes"]["s2"] == 1
    assert fetch_month(aoi, "2020-03", cfg, lay)["blocks_done"] == 0  # unchanged: resumes
    write_scene(archive, 13, 0.3)  # a late-delivered scene of March
    again = fetch_month(aoi, "2020-03", cfg, lay)
    assert again["blocks_done"] == 1 and again["n_scenes"]["s2"] == 2
    assert fetch_month(aoi, "2020-04", cfg, lay)["blocks_done"] == 0  # April untouched


def test_gee_plan_carries_an_eecu_estimate(tmp_path: Path) -> None:
    """The plan of a gee build states its compute estimate: block pixels x months x nominal
    observations x the configured EECU-s per megapixel-observation."""
    from pipeline.config import SentinelConfig
    from pipeline.sentinel.cost import EecuRates, eecu_estimate
    from pipeline.sentinel.drivers import init_aoi

    est = eecu_estimate(1_000_000, 12, EecuRates(s2=2.0, s1=0.5))
    assert est["pixel_observations"] == {"s2": 72_000_000, "s1": 60_000_000}
    assert est["eecu_s"] == 72 * 2.0 + 60 * 0.5 and est["per_month_eecu_s"] == 14.5
    assert eecu_estimate(10, 0, EecuRates())["eecu_s"] == 0.0
    aoi, lay = _one_footprint_aoi(tmp_path)
    gee = SentinelConfig.model_validate({"source": "gee", "block_size_px": 64,
                                         "gee": {"eecu_s_per_mpx_s2": 3.0}})
    marker = init_aoi(aoi, gee, lay)
    want = eecu_estimate(marker["block_pixels"], len(MONTHS), EecuRates(s2=3.0, s1=0.2))
    assert marker["gee_eecu_estimate"] == want and want["eecu_s"] > 0
    assert "gee_eecu_estimate" not in init_aoi(aoi, SentinelConfig(block_size_px=64), lay)


class _EmptyingSource(FakeSource):
    """FakeSource whose S2 is clouded out in ``clouded`` months and that has no S1 at all."""

    def __init__(self, clouded: set[str]) -> None:
        super().__init__()
        self.clouded = clouded

    def fetch_block(
        self, aoi: str, grid: AoiGrid, block: Block, month: str, recipe: Recipe,
        cover: np.ndarray | None = None,
    ) -> BlockResult:
        r = super().fetch_block(aoi, grid, block, month, recipe)
        if month in self.clouded:  # 3 scenes read, every pixel masked
            r.s2[:], r.s2_count[:] = np.nan, 0
        r.s1[:], r.s1_count[:] = np.nan, 0
        r.meta.update(s1_scenes=0)
        return r


def _one_footprint_aoi(tmp_path: Path) -> tuple[AoiSpec, Layout]:
    """AOI "a" over MONTHS with its grid (GRID) and one 64 px footprint written."""
    import pandas as pd

    from pipeline.io.jsonfile import write_json
    from pipeline.io.parquet import write_geoparquet
    from tests.sentinel_helpers import sentinel_aoi

    aoi = sentinel_aoi("a", MONTHS[0], MONTHS[-1])
    lay = Layout(tmp_path / "demo")
    write_json(lay.grid("a"), GRID.to_dict() | {"rule": "test", "size_px": 64, "scale": 5.0})
    fp = pd.DataFrame({"patch_id": ["a_r000_c000"], "fp_col0": [10], "fp_row0": [5],
                       "fp_size_px": [64]})
    write_geoparquet(fp, lay.footprints("a"))
    return aoi, lay


def _built_months(tmp_path: Path, source: FakeSource) -> tuple[AoiSpec, Layout]:
    from pipeline.config import SentinelConfig
    from pipeline.sentinel.drivers import fetch_month, init_aoi

    aoi, lay = _one_footprint_aoi(tmp_path)
    cfg = SentinelConfig(source="local", block_size_px=64)
    init_aoi(aoi, cfg, lay)
    for m in MONTHS:
        fetch_month(aoi, m, cfg, lay, threads=2, source=source)
    return aoi, lay


def test_observed_pixels_are_counted_per_month(tmp_path: Path) -> None:
    _, lay = _built_months(tmp_path, FakeSource())
    plan = read_json(lay.sentinel_blocks("a"))
    want_s2 = want_s1 = 0
    for b in plan["blocks"]:
        rr, cc = np.mgrid[b["row0"] : b["row0"] + b["height"], b["col0"] : b["col0"] + b["width"]]
        # only the footprint's pixels are kept (col 10, row 5, 64 px): the blocks hold more
        inside = (cc >= 10) & (cc < 74) & (rr >= 5) & (rr < 69)
        want_s2 += int((inside & ((rr + cc) % 11 != 0)).sum())  # the fake's clouds: count 0
        want_s1 += int(inside.sum())
    assert want_s1 == 64 * 64 < sum(b["width"] * b["height"] for b in plan["blocks"])
    s = read_json(lay.month_summary("a", MONTHS[0]))
    assert s["observed_px"] == {"s2": want_s2, "s1": want_s1}


def test_an_empty_series_fails_the_aoi_unless_nothing_was_acquired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from pipeline.sentinel.drivers import summarize_aoi

    # S2 clouded out in every month: the series is empty although scenes were read -> error;
    # S1 has no acquisition in any month -> a warning only
    aoi, lay = _built_months(tmp_path / "all", _EmptyingSource(set(MONTHS)))
    with pytest.raises(SourceError, match=r"AOI a: the S2 series is empty") as exc:
        summarize_aoi(aoi, lay)
    assert all(f"{m}: no clear pixel" in str(exc.value) for m in MONTHS)
    assert "allow_empty_series" in str(exc.value)
    assert not lay.sentinel_summary("a").exists()
    with caplog.at_level("WARNING"):
        total = summarize_aoi(aoi, lay, allow_empty_series=True)
    assert total["empty_series"] == {"s2": dict.fromkeys(MONTHS, "no clear pixel"),
                                     "s1": dict.fromkeys(MONTHS, "nothing acquired")}
    assert "no S1 acquisition in any of its 2 months" in caplog.text
    # one month with clear pixels is a series: no error, S1 still only warned about
    aoi, lay = _built_months(tmp_path / "one", _EmptyingSource({MONTHS[0]}))
    total = summarize_aoi(aoi, lay)
    assert set(total["empty_series"]) == {"s1"}


def test_month_cause_names_what_emptied_a_month() -> None:
    from pipeline.sentinel.fetch import month_cause

    base = {"observed_px": {"s2": 0, "s1": 0}, "n_scenes": {"s2": 0, "s1": 0}}
    assert month_cause(base, "s2") == "nothing acquired"
    assert month_cause(base | {"n_scenes": {"s2": 2, "s1": 0}}, "s2") == "no clear pixel"
    lost = base | {"lost_items": {"s2": {"missing_band_asset": 3}, "s1": {}}}
    assert month_cause(lost, "s2") == "lost items (missing_band_asset: 3)"
    assert month_cause(lost, "s1") == "nothing acquired"
    policy = base | {"s2_not_usable": {"other_product": 4}}
    assert month_cause(policy, "s2") == "scenes not usable (other_product: 4)"
    assert month_cause(base | {"observed_px": {"s2": 5, "s1": 0}}, "s2") == ""
    assert month_cause(base | {"observed_px": None}, "s2") == ""  # an older summary: unknown
