"""Live Earth Engine smoke test (marker ``gee_live``; skipped without credentials).

Needs ``$EE_PROJECT`` plus a service-account key (``$EE_SERVICE_ACCOUNT_KEY`` or
``$GOOGLE_APPLICATION_CREDENTIALS``). Fetches one small block over Xi'an for one month and
checks units, shapes and the decoded masked-pixel form against the real server (the NPY mask
encoding is not documented; see shared/EE-TESTING.md "known unknowns").
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.grid import AoiGrid
from pipeline.sentinel.sources.base import Block, Recipe

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
