"""Live Earth Engine smoke test (marker ``gee_live``): ``pytest -m gee_live`` runs it and fails,
saying how to authenticate, when no credentials are found; the default run leaves it out.

Credentials in any form earthengine-api accepts: ``earthengine authenticate``, gcloud's
application-default login, or a key / credentials file in ``$EE_SERVICE_ACCOUNT_KEY`` or
``$GOOGLE_APPLICATION_CREDENTIALS``; the project from ``$EE_PROJECT`` (or the credentials).
Over Xi'an it checks units, shapes, per-band NaN/0 consistency (masked pixels must never
arrive as 0) and that counts never exceed the month's distinct acquisition dates (one
observation per datatake / pass); that a full-size 640 px block is not split; per-band value
ranges and VH < VV for every recipe variant; that the linear S1 mean is never below the dB
mean (Jensen: a doubled or missing dB conversion fails); and that a 2016 month falls back to
L1C. The first user with a key confirms what the fake server can only imitate (its values are
synthetic: these value checks were run against it for their code paths only).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.bands import S2_BANDS
from pipeline.grid import AoiGrid
from pipeline.sentinel.model import Block, Recipe

pytestmark = pytest.mark.gee_live


@pytest.fixture(scope="module")
def source():
    pytest.importorskip("ee")
    from pipeline.sentinel.sources.gee import GeeSource

    src = GeeSource(max_retries=3, backoff_base_s=2.0)
    yield src
    src.close()


def test_live_block_over_xian(source):
    # 640 x 640 m window of Xi'an (UTM 49N), 10 m grid, origin on the 60 m lattice
    grid = AoiGrid(epsg=32649, res_m=10.0, x0=651000.0, y0=3793020.0, width=64, height=64)
    block = Block(0, 0, 64, 64)
    recipe = Recipe()
    res = source.fetch_block("xian-live", grid, block, "2019-04", recipe)
    assert res.meta["s2_product"] in ("L2A", "L1C")
    assert res.s2.shape == (12, 64, 64) and res.s2.dtype == np.float32
    assert res.s1.shape == (2, 64, 64)
    assert res.s2_count.max() > 0 and res.s1_count.max() > 0
    valid = res.s2_count > 0
    refl = res.s2[:, valid]
    assert np.isfinite(refl).all() and 0.0 <= np.nanmedian(refl) <= 1.0  # reflectance, not DN
    assert np.isnan(res.s2[:, ~valid]).all()
    s1 = res.s1[:, res.s1_count > 0]
    assert -40.0 < np.nanmedian(s1) < 10.0  # dB
    assert source.stats["requests"] >= 2  # size query + block
    # per-band NaN / 0 consistency: masked pixels never arrive as 0 (S2 DN 0 is no data, an
    # exact 0 dB mean does not happen), a pixel without observation is NaN in every band, and
    # the 10 m / 20 m bands are valid wherever the pixel was observed (only B1 / B9 / VH may be
    # missing alone)
    assert not (res.s2 == 0).any() and not (res.s1 == 0).any()
    assert np.isnan(res.s1[:, res.s1_count == 0]).all()
    core = [i for i, b in enumerate(S2_BANDS) if b not in ("B1", "B9")]
    assert np.isfinite(res.s2[core][:, valid]).all()
    # counts are of distinct passes: never more than the month's distinct acquisition dates
    dates_s2, dates_s1 = _distinct_dates(source, grid, "2019-04", res.meta["s2_product"])
    assert 0 < res.s2_count.max() <= dates_s2
    assert 0 < res.s1_count.max() <= dates_s1


def _distinct_dates(source, grid, month, product):
    """Distinct UTC acquisition dates of the month's S2 (of ``product``) and S1 IW scenes over
    the grid (one value:compute)."""
    from pipeline.sentinel.sources.gee.recipe import S1_GRD, S2_L1C, S2_L2A, month_bounds

    ee = source._ee
    start, end = month_bounds(month)
    x0, y1 = grid.x0, grid.y0
    x1, y0 = x0 + grid.width * grid.res_m, y1 - grid.height * grid.res_m
    region = ee.Geometry.Rectangle([x0, y0, x1, y1], grid.crs, False)

    def dates(coll_id, extra=None):
        c = ee.ImageCollection(coll_id).filterBounds(region).filterDate(start, end)
        if extra is not None:
            c = c.filter(extra)
        return (c.aggregate_array("system:time_start")
                .map(lambda t: ee.Date(t).format("YYYY-MM-dd")).distinct().size())

    s2 = dates(S2_L2A if product == "L2A" else S2_L1C)
    s1 = dates(S1_GRD, ee.Filter.eq("instrumentMode", "IW"))
    got = ee.Dictionary({"s2": s2, "s1": s1}).getInfo()
    return int(got["s2"]), int(got["s1"])


#: 640 x 640 px = 6.4 km over Xi'an: the largest block the planner makes (74 B/px fits the
#: 32 MiB response limit), so a split here means the size accounting is wrong
FULL = AoiGrid(epsg=32649, res_m=10.0, x0=648000.0, y0=3796020.0, width=640, height=640)


def test_live_full_size_block_is_not_split(source):
    before = source.stats["splits"]
    res = source.fetch_block("xian-live", FULL, Block(0, 0, 640, 640), "2019-04", Recipe())
    assert source.stats["splits"] == before, "a 640 px block was split: check the size rule"
    assert res.s2.shape == (12, 640, 640) and res.s2_count.max() > 0


def _medians(res):
    ok2, ok1 = res.s2_count > 0, res.s1_count > 0
    s2 = {b: float(np.nanmedian(res.s2[i][ok2])) for i, b in enumerate(S2_BANDS)}
    return s2, float(np.nanmedian(res.s1[0][ok1])), float(np.nanmedian(res.s1[1][ok1]))


@pytest.mark.parametrize("settings", [
    {}, {"cloud_preset": "s2cloudless"}, {"shadow_mask": True},
    {"s2_mask": "cloud_score_plus"}, {"s2_mask": "scl"}, {"s2_resampling": "bilinear"},
], ids=["default", "s2cloudless", "shadows", "cloud_score_plus", "scl", "bilinear"])
def test_live_every_recipe_gives_plausible_values(source, settings):
    """Per-band ranges of a city in spring: reflectance, not DN (x10000) nor x10; VH weaker
    than VV (cross-polarised backscatter is 5-10 dB below co-polarised over land)."""
    grid = AoiGrid(epsg=32649, res_m=10.0, x0=651000.0, y0=3793020.0, width=64, height=64)
    res = source.fetch_block("xian-live", grid, Block(0, 0, 64, 64), "2019-04",
                             Recipe.from_config(settings))
    s2, vv, vh = _medians(res)
    assert all(0.0 < v < 0.6 for v in s2.values()), s2
    assert s2["B8"] > s2["B4"] * 0.8  # NIR is not below red in a city with parks
    assert -20.0 < vv < 5.0 and -30.0 < vh < 0.0 and vh < vv - 2.0, (vv, vh)


def test_live_linear_mean_is_above_the_db_mean(source):
    """The dB of the mean of linear power is never below the mean of the dB values (Jensen):
    a doubled dB conversion (x20) or a missing one breaks this on real data."""
    grid = AoiGrid(epsg=32649, res_m=10.0, x0=651000.0, y0=3793020.0, width=64, height=64)
    lin = source.fetch_block("xian-live", grid, Block(0, 0, 64, 64), "2019-04", Recipe())
    db = source.fetch_block("xian-live", grid, Block(0, 0, 64, 64), "2019-04",
                            Recipe(s1_mean="db"))
    both = (lin.s1_count > 1) & (db.s1_count > 1)
    assert both.any()
    diff = lin.s1[:, both] - db.s1[:, both]
    assert (diff > -1e-3).all() and float(np.median(diff)) < 3.0


def test_live_l1c_era_month_falls_back_to_l1c(source):
    """2016: before Earth Engine's S2_SR_HARMONIZED starts (2017-03), so the month is L1C
    (top-of-atmosphere reflectance, still in 0..1)."""
    grid = AoiGrid(epsg=32649, res_m=10.0, x0=651000.0, y0=3793020.0, width=64, height=64)
    res = source.fetch_block("xian-live", grid, Block(0, 0, 64, 64), "2016-06", Recipe())
    assert res.meta["s2_product"] == "L1C"
    s2, _, _ = _medians(res)
    assert all(0.0 < v < 0.6 for v in s2.values()), s2
