"""Live Earth Engine smoke test (marker ``gee_live``): ``pytest -m gee_live`` runs it and fails,
saying how to authenticate, when no credentials are found; the default run leaves it out.

Credentials in any form earthengine-api accepts: ``earthengine authenticate``, gcloud's
application-default login, or a key / credentials file in ``$EE_SERVICE_ACCOUNT_KEY`` or
``$GOOGLE_APPLICATION_CREDENTIALS``; the project from ``$EE_PROJECT`` (or the credentials).
Fetches one small block over Xi'an for one month and
checks units, shapes, per-band NaN/0 consistency (masked pixels must never arrive as 0) and
that counts never exceed the month's distinct acquisition dates (one observation per datatake /
pass), so the first user with a key confirms what the fake server can only imitate.
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
