"""GeeSource against the fake Earth Engine server, with the real earthengine-api client."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ee = pytest.importorskip("ee")

from pipeline.bands import S2_BANDS
from pipeline.errors import CredentialsError, QuotaExhaustedError, SourceError
from pipeline.grid import AoiGrid
from pipeline.sentinel.model import Block, Recipe
from pipeline.sentinel.sources import gee as gee_mod
from pipeline.sentinel.sources.gee import (
    CLOUD_SCORE_PLUS,
    S1_GRD,
    S1_GRD_FLOAT,
    S2_CLOUD_PROB,
    S2_L1C,
    S2_L2A,
    GeeSource,
    block_grid,
    block_image,
    decode_npy,
    to_block_result,
)
from pipeline.sentinel.sources.gee.recipe import NODATA_FILL, scene_counts_expr
from tests.fake_ee import (
    FakeEarthEngine,
    Fault,
    constant,
    expected_block,
    find_calls,
    inline_graph,
    literal,
)

GRID = AoiGrid(epsg=32649, res_m=10.0, x0=650040.0, y0=3795060.0, width=256, height=192)
BLOCK = Block(col0=64, row0=128, width=128, height=64)
MONTH = "2019-02"


@pytest.fixture(scope="module")
def fake():
    import ee.deprecation

    orig = ee.deprecation._FetchDataCatalogStac
    ee.deprecation._FetchDataCatalogStac = lambda: {}
    server = FakeEarthEngine().start()
    yield server
    server.stop()
    ee.deprecation._FetchDataCatalogStac = orig


@pytest.fixture
def srv(fake):
    fake.reset_counters()
    fake.faults.clear()
    fake.persistent_fault = None
    fake.max_request_pixels = None
    fake.restricted_after = None
    fake.discovery_delay_s = 0.0
    fake.masked_form, fake.value_dtype, fake.count_dtype = "zero", "<f4", "u1"
    fake.scenes = lambda month: {"L2A": 5, "L1C": 5, "S1": 3}
    return fake


def make_source(fake, **kw):
    sleeps: list[float] = []
    kw.setdefault("sleep", sleeps.append)
    kw.setdefault("max_retries", 5)
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("seed", 0)
    src = GeeSource(project="test", api_url=fake.url, **kw)
    src.sleeps = sleeps  # type: ignore[attr-defined]
    return src


def assert_matches(res, exp):
    np.testing.assert_array_equal(res.s2, exp["s2"])
    np.testing.assert_array_equal(res.s2_count, exp["s2_count"])
    np.testing.assert_array_equal(res.s1, exp["s1"])
    np.testing.assert_array_equal(res.s1_count, exp["s1_count"])


def offline_graph(recipe=None, product="L2A", with_s1=True):
    recipe = recipe or Recipe()
    img, bands = block_image(ee, GRID, BLOCK, MONTH, recipe, product, with_s1)
    tree = inline_graph(ee.serializer.encode(img))
    return tree, json.dumps(tree), bands


# --------------------------------------------------------------------------- values and grid


def test_block_values_and_exact_grid(srv):
    src = make_source(srv)
    res = src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert_matches(res, expected_block(block_grid(GRID, BLOCK), MONTH))
    assert res.s2.dtype == np.float32 and res.s2_count.dtype == np.uint8
    assert np.isnan(res.s2).any() and (res.s2_count == 0).any()  # the cloudy pattern
    (entry,) = srv.counters.log
    assert entry["grid"] == {
        "dimensions": {"width": 128, "height": 64},
        "affineTransform": {
            "scaleX": 10.0, "shearX": 0.0, "translateX": 650040.0 + 640.0,
            "shearY": 0.0, "scaleY": -10.0, "translateY": 3795060.0 - 1280.0,
        },
        "crsCode": "EPSG:32649",
    }
    assert entry["bands"] == [*S2_BANDS, "s2_count", "VV", "VH", "s1_count"]
    assert res.meta["s2_product"] == "L2A" and res.meta["requests"] == 1
    assert res.meta["pixels"] == BLOCK.n_pixels and res.meta["bytes"] == srv.counters.bytes
    assert src.stats["size_queries"] == 1 and srv.counters.value_requests == 1


def test_one_pixel_shift_or_wrong_month_would_be_detected(srv):
    """The known-answer function is sensitive to every grid / month mistake."""
    good = expected_block(block_grid(GRID, BLOCK), MONTH)
    for other in (Block(65, 128, 128, 64), Block(64, 129, 128, 64)):
        assert not np.array_equal(expected_block(block_grid(GRID, other), MONTH)["s2"],
                                  good["s2"], equal_nan=True)
    assert not np.array_equal(expected_block(block_grid(GRID, BLOCK), "2019-03")["s2"],
                              good["s2"], equal_nan=True)
    flipped = block_grid(GRID, BLOCK)
    flipped["affineTransform"]["scaleY"] = 10.0
    assert not np.array_equal(expected_block(flipped, MONTH)["s1"], good["s1"])


@pytest.mark.parametrize(
    ("masked_form", "value_dtype", "count_dtype"),
    [("zero", "<f8", "<i4"), ("mask_fields", "<f4", "<f8"), ("nan", ">f4", "<u2")],
)
def test_decoding_is_tolerant_of_mask_forms_and_dtypes(srv, masked_form, value_dtype,
                                                        count_dtype):
    srv.masked_form, srv.value_dtype, srv.count_dtype = masked_form, value_dtype, count_dtype
    res = make_source(srv).fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert_matches(res, expected_block(block_grid(GRID, BLOCK), MONTH))


def test_decode_npy_plain_arrays_and_truncation():
    a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # (bands, h, w)
    buf = io.BytesIO()
    np.save(buf, a)
    d = decode_npy(buf.getvalue(), ["A", "B"], 3, 4)
    np.testing.assert_array_equal(d["B"], a[1])
    buf = io.BytesIO()
    np.save(buf, np.moveaxis(a, 0, -1))  # (h, w, bands)
    np.testing.assert_array_equal(decode_npy(buf.getvalue(), ["A", "B"], 3, 4)["A"], a[0])
    with pytest.raises(ValueError):
        decode_npy(buf.getvalue()[:-10], ["A", "B"], 3, 4)
    with pytest.raises(ValueError):
        decode_npy(buf.getvalue(), ["A", "B"], 4, 3)


# --------------------------------------------------------------------------- expression graph


def test_graph_default_recipe(srv):
    make_source(srv)  # initialises the client (algorithm signatures)
    tree, text, bands = offline_graph()
    ids = {constant(a["id"]) for a in find_calls(tree, "ImageCollection.load")}
    assert ids == {S2_L2A, S2_CLOUD_PROB, S1_GRD_FLOAT}  # linear S1 mean: linear power
    assert {constant(a["matchKey"]) for a in find_calls(tree, "Join.saveFirst")} == {"s2cloudless"}
    eq = [(constant(a.get("leftField")), constant(a.get("rightField")))
          for a in find_calls(tree, "Filter.equals")]
    assert ("system:index", "system:index") in eq
    assert {(constant(a.get("leftField")), constant(a.get("rightValue")))
            for a in find_calls(tree, "Filter.equals")} >= {("instrumentMode", "IW")}
    pols = {constant(a["rightValue"]) for a in find_calls(tree, "Filter.listContains")}
    assert pols == {"VV", "VH"} and "Filter.or" in text  # either polarisation is kept
    assert "orbitProperties_pass" not in text
    gts = find_calls(tree, "Image.gt")
    assert any("40" in json.dumps(a) for a in gts)
    assert "reduce.mean" in text and "reduce.median" not in text
    assert "Image.exp" not in text and "Image.log10" in text  # mean of linear power, to dB
    assert "directionalDistanceTransform" not in text
    assert "2019-02-01" in text and "2019-03-01" in text
    assert bands == [*S2_BANDS, "s2_count", "VV", "VH", "s1_count"]


def test_graph_recipe_options(srv):
    make_source(srv)
    tree, text, _ = offline_graph(Recipe(cloud_probability_threshold=25, shadow_mask=True,
                                         s1_orbit_pass="DESCENDING", s1_mean="db"))
    assert any("25" in json.dumps(a) for a in find_calls(tree, "Image.gt"))
    assert "Image.directionalDistanceTransform" in text and "MEAN_SOLAR_AZIMUTH_ANGLE" in text
    assert "SCL" in text  # water excluded from dark pixels (L2A)
    assert ("orbitProperties_pass", "DESCENDING") in {
        (constant(a.get("leftField")), constant(a.get("rightValue")))
        for a in find_calls(tree, "Filter.equals")}
    assert "Image.exp" not in text and "Image.log10" not in text  # plain dB mean
    assert S1_GRD in {constant(a["id"]) for a in find_calls(tree, "ImageCollection.load")}
    assert "Image.resample" not in text  # nearest (FUSU) is the default
    _, text, _ = offline_graph(Recipe(s2_resampling="bilinear"))
    assert "Image.resample" in text and "bilinear" in text
    tree, text, _ = offline_graph(Recipe(s2_mask="cloud_score_plus",
                                         cloud_score_plus_threshold=0.55), product="L1C",
                                  with_s1=False)
    ids = {constant(a["id"]) for a in find_calls(tree, "ImageCollection.load")}
    assert ids == {S2_L1C, CLOUD_SCORE_PLUS}
    assert any("0.55" in json.dumps(a) for a in find_calls(tree, "Image.lt"))  # cs < t: cloudy
    assert '"cs"' in text


def test_graph_names_and_scales_are_earth_engines_documented_ones(srv):
    """The recipe's ids, bands, properties and scales against literals copied from the Earth
    Engine data catalogue (not from the module under test), so a misspelt id or band, a
    wrong scale or a dropped mask fails here (issue 21's mutation table; see
    scripts/mutation_check.py). Sources: developers.google.com/earth-engine/datasets/catalog/
    COPERNICUS_S2_SR_HARMONIZED (bands B1..B12, scale 0.0001), COPERNICUS_S2_CLOUD_PROBABILITY
    (band "probability", 0..100), GOOGLE_CLOUD_SCORE_PLUS_V1_S2_HARMONIZED (band "cs"),
    COPERNICUS_S1_GRD_FLOAT (linear power; property transmitterReceiverPolarisation)."""
    make_source(srv)
    tree, _, _ = offline_graph()
    loads = {constant(a["id"]) for a in find_calls(tree, "ImageCollection.load")}
    assert loads == {"COPERNICUS/S2_SR_HARMONIZED", "COPERNICUS/S2_CLOUD_PROBABILITY",
                     "COPERNICUS/S1_GRD_FLOAT"}
    # the cloud probability is read from its documented band and thresholded at 40 %
    selects = [literal(a.get("bandSelectors")) for a in find_calls(tree, "Image.select")]
    assert ["probability"] in selects
    # every observation's 12 bands are masked with clear = not (probability > 40) and edge
    # (the other masked B12 image is the empty placeholder, mask constant 0)
    masks = [json.dumps(a["mask"]) for a in find_calls(tree, "Image.updateMask")
             if '"B12"' in json.dumps(a["image"]) and literal(a["mask"]) != 0]
    assert masks and all('"probability"' in m and "Image.gt" in m and "Image.not" in m
                         for m in masks)
    # DN -> reflectance: the mean of the S2 bands divided by 10000
    (div,) = find_calls(tree, "Image.divide")
    assert literal(div["image2"]) == 10000
    assert div["image1"]["functionInvocationValue"]["functionName"] == "reduce.mean"
    assert '"B12"' in json.dumps(div["image1"])
    # S1: the mean of linear power, then 10 * log10 (dB)
    (mul,) = find_calls(tree, "Image.multiply")
    assert literal(mul["image2"]) == 10
    assert mul["image1"]["functionInvocationValue"]["functionName"] == "Image.log10"
    pols = {(constant(a["leftField"]), constant(a["rightValue"]))
            for a in find_calls(tree, "Filter.listContains")}
    assert pols == {("transmitterReceiverPolarisation", "VV"),
                    ("transmitterReceiverPolarisation", "VH")}
    tree, _, _ = offline_graph(Recipe(s2_mask="cloud_score_plus"), product="L1C",
                               with_s1=False)
    loads = {constant(a["id"]) for a in find_calls(tree, "ImageCollection.load")}
    assert loads == {"COPERNICUS/S2_HARMONIZED", "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"}
    assert ["cs"] in [literal(a.get("bandSelectors")) for a in find_calls(tree, "Image.select")]


# --------------------------------------------------------------------------- product per month


def test_l1c_only_granules_of_an_l2a_month_are_counted_skips(srv):
    """A month with L2A and L1C-only granules (2017-2018: L2A coverage is not global) keeps
    L2A and records the L1C-only ones as skips, as the scene sources do; without
    allow_l1c_fallback every L1C granule of an L1C-only month is a skip."""
    src = make_source(srv)
    srv.scenes = lambda month: {"L2A": 3, "L1C": 5, "L1C_only": 2, "S1": 1}
    res = src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert res.meta["s2_product"] == "L2A" and res.meta["s2_scenes"] == 3
    assert res.meta["s2_scenes_skipped"] == {"other_product": 2, "no_cloud_layer": 0}
    # the count: L1C granules (COPERNICUS/S2_HARMONIZED) without an S2_SR_HARMONIZED image of
    # the same system:index, an inverted join
    tree = inline_graph(ee.serializer.encode(scene_counts_expr(ee, GRID, MONTH, Recipe())))
    text = json.dumps(tree)
    assert "Join.inverted" in text
    inverted = [a for a in find_calls(tree, "Join.apply") if "Join.inverted" in json.dumps(a)]
    assert len(inverted) == 1
    (a,) = inverted
    assert '"COPERNICUS/S2_HARMONIZED"' in json.dumps(a["primary"])
    assert '"COPERNICUS/S2_SR_HARMONIZED"' in json.dumps(a["secondary"])
    eq = find_calls(a["condition"], "Filter.equals")
    assert [(constant(e["leftField"]), constant(e["rightField"])) for e in eq] == [
        ("system:index", "system:index")]
    srv.scenes = lambda month: {"L2A": 0, "L1C": 4, "L1C_only": 4, "S1": 0}
    res = make_source(srv).fetch_block("xian", GRID, BLOCK, "2019-03",
                                       Recipe(allow_l1c_fallback=False))
    assert res.meta["s2_product"] is None
    assert res.meta["s2_scenes_skipped"] == {"other_product": 4, "no_cloud_layer": 0}


def test_l1c_fallback_empty_months_and_cached_size_query(srv):
    table = {
        "2019-01": {"L2A": 0, "L1C": 4, "S1": 2},
        "2019-02": {"L2A": 0, "L1C": 0, "S1": 2},
        "2019-03": {"L2A": 0, "L1C": 0, "S1": 0},
    }
    srv.scenes = lambda m: table[m]
    src = make_source(srv)
    g = block_grid(GRID, BLOCK)
    r1 = src.fetch_block("xian", GRID, BLOCK, "2019-01", Recipe())
    assert r1.meta["s2_product"] == "L1C" and r1.meta["s2_scenes"] == 4
    assert_matches(r1, expected_block(g, "2019-01", product="L1C"))
    assert S2_L1C in srv.counters.log[-1]["ids"] and S2_L2A not in srv.counters.log[-1]["ids"]
    r2 = src.fetch_block("xian", GRID, BLOCK, "2019-02", Recipe())
    assert r2.meta["s2_product"] is None
    assert_matches(r2, expected_block(g, "2019-02", product=None))
    assert srv.counters.log[-1]["bands"] == ["VV", "VH", "s1_count"]
    n = srv.counters.requests
    r3 = src.fetch_block("xian", GRID, BLOCK, "2019-03", Recipe())
    assert srv.counters.requests == n  # nothing to fetch: no request
    assert np.isnan(r3.s2).all() and not r3.s1_count.any()
    # a second block of a known month reuses the cached size query
    src.fetch_block("xian", GRID, Block(0, 0, 64, 64), "2019-01", Recipe())
    assert srv.counters.value_requests == 3
    no_fb = make_source(srv)
    assert no_fb.s2_product("xian", GRID, "2019-01", Recipe(allow_l1c_fallback=False)) is None


# --------------------------------------------------------------------------- faults


def test_transient_faults_are_retried_with_capped_backoff(srv):
    srv.faults += [Fault("429"), Fault("500"), Fault("slow", delay_s=1.5), Fault("truncate"),
                   Fault("drop"), Fault("503")]
    src = make_source(srv, max_retries=6, timeout_s=0.5, backoff_base_s=0.5, backoff_max_s=2.0)
    res = src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert_matches(res, expected_block(block_grid(GRID, BLOCK), MONTH))
    assert res.meta["retries"] == 6 and res.meta["requests"] == 7
    assert srv.counters.requests == 7 and srv.counters.ok_requests == 1
    assert len(src.sleeps) == 6
    caps = [min(2.0, 0.5 * 2**i) for i in range(6)]
    assert all(c * 0.5 <= s <= c for s, c in zip(src.sleeps, caps, strict=True))


def test_bad_request_is_not_retried(srv):
    srv.faults.append(Fault("400"))
    src = make_source(srv)
    with pytest.raises(SourceError, match=r"xian.*2019-02.*r000128_c000064") as ei:
        src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert not isinstance(ei.value, QuotaExhaustedError)
    assert srv.counters.requests == 1 and src.sleeps == []


def test_permission_denied_is_a_credentials_error(srv):
    srv.faults.append(Fault("403"))
    src = make_source(srv)
    with pytest.raises(CredentialsError, match="earthengine authenticate"):
        src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert srv.counters.requests == 1


def test_expired_or_revoked_credentials_say_so(srv, monkeypatch):
    """google.auth's RefreshError('invalid_grant: Token has been expired or revoked.') used to
    be reported as 'check the recipe settings'."""
    from google.auth.exceptions import RefreshError

    src = make_source(srv)

    def refuse(*a, **k):  # type: ignore[no-untyped-def]
        raise RefreshError("invalid_grant: Token has been expired or revoked.",
                           {"error": "invalid_grant"})

    monkeypatch.setattr(ee.data, "computePixels", refuse)
    with pytest.raises(CredentialsError, match=r"expired or were revoked: run `.venv/bin/"
                                               r"earthengine authenticate` again"):
        src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert src.sleeps == []  # not retried


def test_computation_timeout_splits(srv):
    srv.faults.append(Fault("400", message="Computation timed out."))
    src = make_source(srv)
    res = src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert_matches(res, expected_block(block_grid(GRID, BLOCK), MONTH))
    assert res.meta["splits"] == 1 and srv.counters.ok_requests == 2


def test_memory_limit_splits_and_stitches(srv):
    srv.max_request_pixels = BLOCK.n_pixels // 3
    src = make_source(srv)
    res = src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert_matches(res, expected_block(block_grid(GRID, BLOCK), MONTH))
    ok = [e for e in srv.counters.log if e["ok"]]
    assert len(ok) == 4 and res.meta["splits"] == 3  # 128x64 -> 2 x 64x64 -> 4 x 32x64
    assert srv.counters.pixels == BLOCK.n_pixels
    assert src.sleeps == []  # splitting is not a retry


def test_oversize_response_is_split(srv):
    grid = AoiGrid(32649, 10.0, 650040.0, 3795060.0, 1000, 1000)
    big = Block(0, 0, 1000, 1000)  # 58 B/px * 1000^2 > 48 MB
    src = make_source(srv)
    res = src.fetch_block("xian", grid, big, MONTH, Recipe())
    assert srv.counters.log[0]["ok"] is False and srv.counters.ok_requests == 2
    exp = expected_block(block_grid(grid, big), MONTH)
    np.testing.assert_array_equal(res.s1, exp["s1"])
    np.testing.assert_array_equal(res.s2_count, exp["s2_count"])


def test_quota_errors(srv):
    srv.persistent_fault = Fault("quota", message="Earth Engine quota exceeded for project test.")
    src = make_source(srv)
    with pytest.raises(QuotaExhaustedError, match="rerun"):
        src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert srv.counters.requests == 1
    srv.reset_counters()
    # Google's generic 429 text is a rate limit: retried, then a resumable SourceError that
    # says to lower the concurrency -- not "quota exhausted"
    srv.persistent_fault = Fault("429", message="Resource has been exhausted (e.g. check quota).")
    with pytest.raises(SourceError, match=r"lower sentinel\.gee\.concurrency") as ei:
        make_source(srv, max_retries=3).fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert not isinstance(ei.value, QuotaExhaustedError)
    assert srv.counters.requests == 4
    srv.persistent_fault = Fault("429")  # plain rate limiting that never clears
    with pytest.raises(SourceError) as ei:
        make_source(srv, max_retries=2).fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert not isinstance(ei.value, QuotaExhaustedError)


def test_concurrent_fetches_are_thread_safe(srv):
    blocks = [Block(c, r, 64, 64) for r in (0, 64, 128) for c in (0, 64, 128, 192)]
    srv.faults += [Fault("429") for _ in range(3)]
    src = make_source(srv)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda b: src.fetch_block("xian", GRID, b, MONTH, Recipe()),
                                blocks))
    for b, r in zip(blocks, results, strict=True):
        assert_matches(r, expected_block(block_grid(GRID, b), MONTH))
    st = src.stats
    assert st["retries"] == 3 and st["pixels"] == 12 * 64 * 64
    assert st["requests"] == srv.counters.requests + srv.counters.value_requests
    assert srv.counters.value_requests == 1


# --------------------------------------------------------------------------- environment


def test_no_credentials_message(monkeypatch, tmp_path):
    for var in ("EE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "EE_API_URL",
                "EE_PROJECT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    with pytest.raises(CredentialsError) as ei:
        GeeSource(project="p")
    msg = str(ei.value)
    assert "earthengine authenticate" in msg and "EE_SERVICE_ACCOUNT_KEY" in msg
    assert "source: local" in msg
    monkeypatch.setenv("EE_SERVICE_ACCOUNT_KEY", str(tmp_path / "missing.json"))
    with pytest.raises(CredentialsError, match=r"EE_SERVICE_ACCOUNT_KEY.*missing\.json"):
        GeeSource(project="p")
    bad = tmp_path / "key.json"
    bad.write_text('{"type": "service_account", "private_key": "SECRET-DO-NOT-PRINT"}')
    monkeypatch.setenv("EE_SERVICE_ACCOUNT_KEY", str(bad))
    with pytest.raises(CredentialsError) as ei:
        GeeSource(project="p")
    assert "SECRET" not in str(ei.value)


def test_from_config_and_env_url(srv, monkeypatch):
    from pipeline.config import GeeConfig, SentinelConfig

    monkeypatch.setenv("EE_API_URL", srv.url)
    monkeypatch.delenv("EE_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(CredentialsError, match=r"sentinel\.gee\.project"):
        GeeSource.from_config(SentinelConfig(source="gee"))
    monkeypatch.setenv("EE_PROJECT", "from-env")
    cfg = SentinelConfig(source="gee", gee=GeeConfig(max_retries=2, backoff_base_s=0.01))
    src = GeeSource.from_config(cfg, sleep=lambda s: None)
    assert src.project == "from-env" and src.max_retries == 2 and src.api_url == srv.url
    src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe.from_config(cfg))
    assert srv.counters.ok_requests == 1


# --------------------------------------------------------------------------- resume with the driver

_CHILD = r"""
import sys, json
import ee.deprecation
ee.deprecation._FetchDataCatalogStac = lambda: {}
from pipeline.sentinel.sources.gee import GeeSource
from pipeline.sentinel.model import Block, Recipe
from pipeline.grid import AoiGrid
from pipeline.sentinel.fetch import run_month
a = json.loads(sys.argv[1])
src = GeeSource(project="test", max_retries=0)
run_month(src, "xian", AoiGrid.from_dict(a["grid"]), [Block(*b) for b in a["blocks"]],
          a["month"], Recipe(), a["store"], a["ledger"], concurrency=1)
"""


def _store_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_kill_mid_run_and_rerun_is_byte_identical(srv, tmp_path):
    sentinel = pytest.importorskip("pipeline.sentinel.fetch")
    from pipeline.io.mosaic import init_mosaic

    grid = AoiGrid(32649, 10.0, 650040.0, 3795060.0, 192, 128)
    blocks = [Block(c, r, 64, 64) for r in (0, 64) for c in (0, 64, 128)]
    months = ["2019-01", MONTH]
    for name in ("a", "b"):
        init_mosaic(tmp_path / f"{name}.zarr", grid, months, chunk_px=64, aoi="xian")
    # reference: one uninterrupted run
    src = make_source(srv)
    sentinel.run_month(src, "xian", grid, blocks, MONTH, Recipe(), tmp_path / "a.zarr",
                       tmp_path / "ledger_a", concurrency=2)
    # interrupted run in a child process: SIGKILL while the 4th block is in flight
    srv.reset_counters()
    srv.faults = [Fault("none"), Fault("none"), Fault("none"), Fault("slow", delay_s=60)]
    args = {"grid": grid.to_dict(), "blocks": [[b.col0, b.row0, b.width, b.height] for b in blocks],
            "month": MONTH, "store": str(tmp_path / "b.zarr"), "ledger": str(tmp_path / "ledger_b")}
    env = {**os.environ, "EE_API_URL": srv.url, "PYTHONPATH": str(Path(__file__).parents[2])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(args)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while srv.counters.requests < 4 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, child.stdout.read().decode() if child.stdout else ""
    child.send_signal(signal.SIGKILL)
    child.wait()
    done_before = [e for e in srv.counters.log if e["ok"]]
    assert len(done_before) == 3
    finished = {(e["grid"]["affineTransform"]["translateX"],
                 e["grid"]["affineTransform"]["translateY"]) for e in done_before}
    # rerun in-process: only the 3 unfinished blocks are requested
    srv.reset_counters()
    srv.faults.clear()
    sentinel.run_month(make_source(srv), "xian", grid, blocks, MONTH, Recipe(),
                       tmp_path / "b.zarr", tmp_path / "ledger_b", concurrency=2)
    again = {(e["grid"]["affineTransform"]["translateX"],
              e["grid"]["affineTransform"]["translateY"]) for e in srv.counters.log}
    assert srv.counters.requests == 3 and not (again & finished)
    a, b = _store_bytes(tmp_path / "a.zarr"), _store_bytes(tmp_path / "b.zarr")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)


def test_module_has_no_toplevel_ee_import():
    for f in Path(gee_mod.__file__).parent.glob("*.py"):
        src = f.read_text()
        assert "\nimport ee" not in src and "\nfrom ee" not in src, f


def test_quota_mid_month_resumes_without_repeating_blocks(srv, tmp_path):
    sentinel = pytest.importorskip("pipeline.sentinel.fetch")
    from pipeline.io.mosaic import init_mosaic

    grid = AoiGrid(32649, 10.0, 650040.0, 3795060.0, 128, 128)
    blocks = [Block(c, r, 64, 64) for r in (0, 64) for c in (0, 64)]
    init_mosaic(tmp_path / "m.zarr", grid, [MONTH], chunk_px=64, aoi="xian")
    srv.faults = [Fault("none"), Fault("none")]
    srv.persistent_fault = Fault("quota", message="Earth Engine quota exceeded.")
    with pytest.raises(QuotaExhaustedError, match="rerun"):
        sentinel.run_month(make_source(srv), "xian", grid, blocks, MONTH, Recipe(),
                           tmp_path / "m.zarr", tmp_path / "ledger", concurrency=1)
    first = [e["grid"]["affineTransform"] for e in srv.counters.log if e["ok"]]
    assert len(first) == 2
    srv.reset_counters()
    srv.persistent_fault = None
    summary = sentinel.run_month(make_source(srv), "xian", grid, blocks, MONTH, Recipe(),
                                 tmp_path / "m.zarr", tmp_path / "ledger", concurrency=2)
    second = [e["grid"]["affineTransform"] for e in srv.counters.log]
    assert len(second) == 2 and not any(a in first for a in second)
    assert summary["blocks_skipped"] == 2 and summary["blocks_done"] == 2
    assert summary["s2_product"] == "L2A"
    # end to end: what the mosaic holds is the fake's known answer on the AOI grid
    from pipeline.io.mosaic_read import read_footprint_cube

    cube = read_footprint_cube(tmp_path / "m.zarr", 0, 0, 128)
    exp = expected_block(block_grid(grid, Block(0, 0, 128, 128)), MONTH)
    np.testing.assert_allclose(cube["x"][0, :12], exp["s2"], atol=6e-5, equal_nan=True)
    np.testing.assert_allclose(cube["x"][0, 12:], exp["s1"], atol=1e-5)
    np.testing.assert_array_equal(cube["counts"][0, 0], exp["s2_count"])
    np.testing.assert_array_equal(cube["counts"][0, 1], exp["s1_count"])


def test_no_credentials_fails_without_probing_the_metadata_server(monkeypatch, tmp_path):
    """Nothing configured: the clear message comes at once, with no connection attempt to the
    cloud metadata server (169.254.169.254 / metadata.google.internal)."""
    import socket

    for var in ("EE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "EE_API_URL",
                "NO_GCE_CHECK", "GCE_METADATA_HOST", "GCE_METADATA_IP",
                "EE_USE_METADATA_SERVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    tried: list[object] = []

    def connect(self, address):  # type: ignore[no-untyped-def]
        tried.append(address)
        raise OSError("no network in tests")

    def getaddrinfo(host, *a, **k):  # type: ignore[no-untyped-def]
        tried.append(host)
        raise OSError("no network in tests")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(CredentialsError, match="no Earth Engine credentials found"):
        GeeSource(project="p")
    assert tried == []


def test_adc_credential_types_are_accepted(monkeypatch, tmp_path):
    """$GOOGLE_APPLICATION_CREDENTIALS may be gcloud's authorized_user ADC file or a
    workload-identity external_account config, not only a service-account key."""
    from pipeline.sentinel.sources.gee.auth import resolve_credentials

    adc = tmp_path / "application_default_credentials.json"
    adc.write_text(json.dumps({
        "type": "authorized_user", "client_id": "id.apps.googleusercontent.com",
        "client_secret": "s", "refresh_token": "r", "quota_project_id": "my-ee-project",
    }))
    monkeypatch.delenv("EE_SERVICE_ACCOUNT_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    creds, project = resolve_credentials(ee, None)
    assert type(creds).__module__ == "google.oauth2.credentials" and project == "my-ee-project"
    # a user's refresh token is not refreshed with the Earth Engine scope forced (Google
    # answers invalid_scope): loaded without scopes, as google.auth.default() does
    assert creds.scopes is None
    token = tmp_path / "token.txt"
    token.write_text("subject-token")
    wif = tmp_path / "wif.json"
    wif.write_text(json.dumps({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/"
                    "providers/q",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {"file": str(token)},
    }))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(wif))
    creds, _ = resolve_credentials(ee, None)
    assert "identity_pool" in type(creds).__module__


def test_persistent_computation_timeout_is_bounded(srv):
    """A block Earth Engine can never compute in time fails after a bounded number of serial
    requests (max_split_depth + 1), never splitting below min_block_px."""
    grid = AoiGrid(32649, 10.0, 650040.0, 3795060.0, 640, 640)
    big = Block(0, 0, 640, 640)
    srv.faults += [Fault("400", message="Computation timed out.")] * 20
    src = make_source(srv)
    with pytest.raises(SourceError, match=r"after 3 split\(s\).*Computation timed out"):
        src.fetch_block("xian", grid, big, MONTH, Recipe())
    assert srv.counters.requests == 4  # 640 -> 320 -> 160 -> 80 px, depth-first, then stop
    sides = [e["grid"]["dimensions"] for e in srv.counters.log]
    assert min(min(d["width"], d["height"]) for d in sides) >= src.min_block_px


def test_a_request_timed_out_twice_is_split_not_repeated(srv):
    srv.faults += [Fault("slow", delay_s=1.5), Fault("slow", delay_s=1.5)]
    src = make_source(srv, timeout_s=0.5)
    res = src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert_matches(res, expected_block(block_grid(GRID, BLOCK), MONTH))
    assert res.meta["splits"] == 1 and srv.counters.ok_requests == 2  # two halves
    assert len(src.sleeps) == 1  # one retry at the same size, then smaller requests


# the texts Earth Engine really answers (public issue threads: Xee #202-style quota errors,
# "Too many concurrent aggregations" in geemap / se.plan reports)
PER_MINUTE = ("Quota exceeded for quota metric 'Number of read requests' and limit 'Number of "
              "read requests per minute per user' of service 'earthengine.googleapis.com' for "
              "consumer 'project_number:599401802498'.")


@pytest.mark.parametrize("status,message", [
    ("429", PER_MINUTE),
    ("429", "Too many concurrent aggregations."),
    ("403", PER_MINUTE),
])
def test_rate_and_concurrency_limits_are_retried(srv, status, message):
    srv.faults += [Fault(status, message=message), Fault(status, message=message)]
    src = make_source(srv)
    res = src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert_matches(res, expected_block(block_grid(GRID, BLOCK), MONTH))
    assert res.meta["retries"] == 2 and len(src.sleeps) == 2


@pytest.mark.parametrize("status,message", [
    ("403", "Request denied: custom quota exceeded for EECU-seconds per day."),
    ("429", "Quota exceeded for quota metric 'EECU-seconds' and limit 'EECU-seconds per day "
            "per project' of service 'earthengine.googleapis.com'."),
])
def test_daily_compute_quota_stops_resumably_at_once(srv, status, message):
    srv.persistent_fault = Fault(status, message=message)
    src = make_source(srv)
    with pytest.raises(QuotaExhaustedError, match="resume"):
        src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert srv.counters.requests == 1 and src.sleeps == []


def test_too_heavy_scene_count_is_a_source_error(srv):
    srv.faults.append(Fault("400", message="User memory limit exceeded.", endpoint="value"))
    src = make_source(srv)
    with pytest.raises(SourceError, match="could not count the month's scenes"):
        src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())


def test_restricted_mode_stops_resumably_and_keeps_finished_blocks(srv, tmp_path):
    """Over its noncommercial quota a project gets HTTP 200 answers with the restricted-mode
    header. The block in flight is kept (its answer is valid), no further request starts, and
    the rerun resumes with the remaining blocks."""
    sentinel = pytest.importorskip("pipeline.sentinel.fetch")
    from pipeline.io.mosaic import init_mosaic

    grid = AoiGrid(32649, 10.0, 650040.0, 3795060.0, 128, 128)
    blocks = [Block(c, r, 64, 64) for r in (0, 64) for c in (0, 64)]
    init_mosaic(tmp_path / "m.zarr", grid, [MONTH], chunk_px=64, aoi="xian")
    srv.restricted_after = 2
    # the client's own UserWarning stays
    with pytest.warns(UserWarning, match="restricted mode"), \
            pytest.raises(QuotaExhaustedError, match=r"restricted mode.*rerun"):
        sentinel.run_month(make_source(srv), "xian", grid, blocks, MONTH, Recipe(),
                           tmp_path / "m.zarr", tmp_path / "ledger", concurrency=1)
    assert srv.counters.requests == 2 and srv.counters.ok_requests == 2
    srv.reset_counters()
    srv.restricted_after = None
    summary = sentinel.run_month(make_source(srv), "xian", grid, blocks, MONTH, Recipe(),
                                 tmp_path / "m.zarr", tmp_path / "ledger", concurrency=2)
    assert srv.counters.requests == 2
    assert summary["blocks_skipped"] == 2 and summary["blocks_done"] == 2


def test_restricted_mode_can_continue_one_request_at_a_time(srv, tmp_path, caplog):
    """sentinel.gee.restricted_mode: continue: Earth Engine only slows restricted projects
    down, so the month finishes; requests that start after the flag run one at a time, with
    one warning that says so."""
    import logging
    import threading

    from pipeline.io.mosaic import init_mosaic
    from pipeline.sentinel.fetch import run_month
    from pipeline.sentinel.sources.gee import client as gee_client

    grid = AoiGrid(32649, 10.0, 650040.0, 3795060.0, 256, 256)
    blocks = [Block(c, r, 64, 64) for r in range(0, 256, 64) for c in range(0, 256, 64)]
    init_mosaic(tmp_path / "m.zarr", grid, [MONTH], chunk_px=64, aoi="xian")
    srv.restricted_after = 2
    src = make_source(srv, restricted_mode="continue")
    base = gee_client._restricted_count()
    real = src._ee.data.computePixels
    active, peak, late = [0], [0], [0]
    lock = threading.Lock()

    def counting(*a, **k):  # type: ignore[no-untyped-def]
        tracked = gee_client._restricted_count() > base  # started after the flag
        with lock:
            if tracked:
                active[0] += 1
                late[0] += 1
                peak[0] = max(peak[0], active[0])
        try:
            return real(*a, **k)
        finally:
            if tracked:
                with lock:
                    active[0] -= 1

    src._ee.data.computePixels = counting
    try:
        with pytest.warns(UserWarning, match="restricted mode"), \
                caplog.at_level(logging.WARNING):
            summary = run_month(src, "xian", grid, blocks, MONTH, Recipe(), tmp_path / "m.zarr",
                                tmp_path / "ledger", concurrency=4)
    finally:
        src._ee.data.computePixels = real
    assert summary["blocks_done"] == 16 and srv.counters.ok_requests == 16
    assert late[0] >= 8 and peak[0] == 1  # after the flag: one request at a time
    assert caplog.text.count("continuing one request at a time") == 1
    with pytest.raises(SourceError, match="restricted_mode"):
        make_source(srv, restricted_mode="pause")


def test_the_client_is_served_the_v1_api_as_real_earth_engine(srv):
    """earthengine-api asks for the v1 discovery document; the fake serves that version (it
    used to serve the wheel's v1alpha document whatever was asked), so every request path is
    the v1 path real Earth Engine sees."""
    src = make_source(srv)
    src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert srv.discovery_versions and set(srv.discovery_versions) == {"v1"}
    assert srv.paths and all(p.startswith("/v1/projects/") for p in srv.paths), srv.paths[:3]


def test_initialisation_does_not_hang_on_a_silent_earth_engine(srv):
    """ee.Initialize's discovery request is bounded by the source's timeout: an Earth Engine
    that does not answer fails the job (CredentialsError naming the project) instead of
    hanging it."""
    import time

    srv.discovery_delay_s = 5.0  # the fake is shared by the module's tests: reset below
    t0 = time.monotonic()
    try:
        with pytest.raises(CredentialsError, match=r"initialisation failed for project 'test'"):
            make_source(srv, timeout_s=0.5)
        assert time.monotonic() - t0 < 4.5
    finally:
        srv.discovery_delay_s = 0.0


def test_restricted_mode_header_absent_means_no_stop(srv):
    """An empty quota-status header (what an unrestricted project gets) changes nothing."""
    srv.restricted_after = None
    src = make_source(srv)
    for _ in range(3):
        src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert srv.counters.ok_requests == 3


def test_month_whose_l2a_scenes_lack_cloud_layers_falls_back_to_l1c(srv):
    """Every L2A scene of the month lacks a cloud-probability match: the inner join drops them
    all. The scene count counts joined scenes, so the month is composited from L1C instead of
    failing with Earth Engine's band-less 400 on every rerun."""
    srv.scenes = lambda month: {"L2A": 4, "L2A_matched": 0, "L1C": 4, "S1": 3}
    src = make_source(srv)
    res = src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    assert res.meta["s2_product"] == "L1C" and res.meta["s2_scenes"] == 4
    assert_matches(res, expected_block(block_grid(GRID, BLOCK), MONTH, product="L1C"))
    src = make_source(srv)
    res = src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe(allow_l1c_fallback=False))
    assert res.meta["s2_product"] is None and res.meta["s2_scenes"] == 0
    assert_matches(res, expected_block(block_grid(GRID, BLOCK), MONTH, product=None))


def test_empty_join_composite_keeps_its_12_bands(srv):
    """Even when the composite is asked for with no usable scene (the scene count and the
    composite see different moments of the catalogue), the S2 part keeps its 12 bands: all
    masked, count 0, S1 unaffected."""
    srv.scenes = lambda month: {"L2A": 4, "L2A_matched": 0, "L1C": 0, "S1": 3}
    src = make_source(srv)
    image, bands = block_image(src._ee, GRID, BLOCK, MONTH, Recipe(), "L2A", True)
    data = src._ee.data.computePixels({"expression": image, "fileFormat": "NPY",
                                       "bandIds": bands, "grid": block_grid(GRID, BLOCK)})
    fields = decode_npy(bytes(data), bands, BLOCK.height, BLOCK.width)
    assert all((fields[b] == NODATA_FILL).all() for b in S2_BANDS)  # unmasked, never 0
    res = to_block_result(fields, BLOCK.height, BLOCK.width)
    assert np.isnan(res.s2).all() and not res.s2_count.any()
    exp = expected_block(block_grid(GRID, BLOCK), MONTH)
    np.testing.assert_array_equal(res.s1, exp["s1"])


# --------------------------------------------------------------------------- per-band validity,
# scene edges, one observation per datatake / pass, S1 in linear power, workload tags


def _centres(block):
    from tests.fake_ee import grid_centres

    return grid_centres(block_grid(GRID, block))


def test_masked_pixels_are_nan_per_band_never_zero(srv):
    """Earth Engine's NPY output returns masked pixels as 0. A band masked in every observation
    (B1 / B9 footprints, VH of a VV-only pass) must come back NaN in that band only, never as
    reflectance 0 or 0 dB, while the pixel's other bands keep their values."""
    from tests.fake_ee import band_masked

    srv.masked_form = "zero"
    res = make_source(srv).fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    x, y = _centres(BLOCK)
    seen = res.s2_count > 0
    b1 = band_masked("B1", x, y) & seen
    assert b1.any()
    assert np.isnan(res.s2[0][b1]).all() and np.isfinite(res.s2[1][b1]).all()
    vh = band_masked("VH", x, y)
    assert vh.any() and np.isnan(res.s1[1][vh]).all() and np.isfinite(res.s1[0][vh]).all()
    assert not (res.s2 == 0).any() and not (res.s1 == 0).any()


def test_scene_edges_are_masked(srv):
    """At granule edges B8A / B9 are masked while the other bands carry values: with the
    catalogue's edge mask those pixels are no clear observation (count 0, all bands NaN)."""
    from tests.fake_ee import edge_zone

    res = make_source(srv).fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    x, y = _centres(BLOCK)
    edge = edge_zone(x, y)
    assert edge.any()
    assert not res.s2_count[edge].any() and np.isnan(res.s2[:, edge]).all()


def test_overlapping_granules_and_slices_count_once(srv):
    """Pixels covered by two MGRS granules of one datatake (or two slices of one S1 pass) are
    one observation: their counts follow the same law as the rest of the block."""
    from tests.fake_ee import fake_values, overlap_zone

    res = make_source(srv).fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    x, y = _centres(BLOCK)
    ov = overlap_zone(x, y)
    assert ov.any() and (~ov).any()
    assert res.s1_count.max() == fake_values("s1_count", MONTH, x, y).max()
    assert res.s2_count.max() <= 4  # 1 + (m + x + y) % 4 datatakes at most
    tree, text, _ = offline_graph()
    assert '"DATATAKE_IDENTIFIER"' in text
    assert find_calls(tree, "ImageCollection.mosaic")
    # an S1 pass is one satellite's absolute orbit (properties of COPERNICUS/S1_GRD), not a
    # relative orbit on a UTC day: a pass crossing 00:00 UTC is one observation
    keys = [json.dumps(a) for a in find_calls(tree, "Element.get")]
    assert any('"orbitNumber_start"' in k for k in keys)
    assert any('"platform_number"' in k for k in keys)
    assert "YYYY-MM-dd" not in text


def test_s1_linear_mean_is_taken_in_linear_power_from_s1_grd_float(srv):
    """The linear mean averages S1_GRD_FLOAT (linear power) and converts once to dB; the fake
    answers linear values to an expression that forgets the conversion."""
    res = make_source(srv).fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    exp = expected_block(block_grid(GRID, BLOCK), MONTH)
    np.testing.assert_array_equal(res.s1, exp["s1"])
    assert S1_GRD_FLOAT in srv.counters.log[-1]["ids"] and S1_GRD not in srv.counters.log[-1]["ids"]
    res_db = make_source(srv).fetch_block("xian", GRID, BLOCK, MONTH, Recipe(s1_mean="db"))
    np.testing.assert_array_equal(res_db.s1, exp["s1"])
    assert S1_GRD in srv.counters.log[-1]["ids"]


def test_every_request_carries_the_aoi_month_workload_tag(srv):
    from ee import _state

    from pipeline.sentinel.sources.gee.client import workload_tag

    src = make_source(srv)
    src.fetch_block("xian", GRID, BLOCK, MONTH, Recipe())
    src.fetch_block("xian", GRID, BLOCK, "2019-03", Recipe())
    assert [e["workloadTag"] for e in srv.counters.log] == ["fusu-xian-2019-02",
                                                            "fusu-xian-2019-03"]
    assert srv.counters.value_tags == ["fusu-xian-2019-02", "fusu-xian-2019-03"]
    assert src._ee.data.getWorkloadTag() in ("", None)  # the process-wide tag is restored
    for aoi in ("Xi'an Old Town", "_x_", "a" * 80, "é"):
        tag = workload_tag(aoi, "2019-02")
        assert _state._WorkloadTag().validate(tag) == tag and len(tag) <= 63


def test_response_size_limit_counts_one_mask_byte_per_band(srv):
    """Earth Engine's 48 MB limit counts a mask byte per band and pixel: 840x840 px of the full
    response is 40.9 MB of values but 52.2 MB with masks and is refused; the planner's block
    side at the hard limit fits."""
    from pipeline.sentinel.blocks import REQUEST_BYTES_PER_PX, block_size_px

    grid = AoiGrid(32649, 10.0, 650040.0, 3795060.0, 1024, 1024)
    src = make_source(srv)
    image, bands = block_image(src._ee, grid, Block(0, 0, 840, 840), MONTH, Recipe(), "L2A",
                               True)
    with pytest.raises(ee.EEException, match="Total request size"):
        src._ee.data.computePixels({"expression": image, "fileFormat": "NPY", "bandIds": bands,
                                    "grid": block_grid(grid, Block(0, 0, 840, 840))})
    side = block_size_px(REQUEST_BYTES_PER_PX, 50_331_648)
    res = src.fetch_block("xian", grid, Block(0, 0, side, side), MONTH, Recipe())
    assert res.meta["splits"] == 0 and res.meta["requests"] == 1


def test_scl_cloud_mask_on_earth_engine(srv):
    """s2_mask 'scl': the L2A SCL band decides (configured classes), no join, no L1C
    fallback (L1C has no SCL)."""
    make_source(srv)
    recipe = Recipe(s2_mask="scl", scl_mask_classes=(3, 8, 9))
    tree, text, _ = offline_graph(recipe)
    assert not find_calls(tree, "Join.saveFirst") and '"SCL"' in text
    remaps = find_calls(tree, "Image.remap")
    assert remaps and all(literal(r["from"]) == [3, 8, 9] and literal(r["to"]) == [1, 1, 1]
                          for r in remaps)
    srv.scenes = lambda month: {"L2A": 0, "L1C": 4, "S1": 3}
    src = make_source(srv)
    assert src.s2_product("xian", GRID, MONTH, recipe) is None
    assert src.s2_product("xian", GRID, MONTH, Recipe()) == "L1C"
    srv.scenes = lambda month: {"L2A": 4, "L1C": 4, "S1": 3}
    res = make_source(srv).fetch_block("xian", GRID, BLOCK, MONTH, recipe)
    assert_matches(res, expected_block(block_grid(GRID, BLOCK), MONTH))


def test_a_month_with_a_cover_keeps_earth_engines_values_on_it(srv, tmp_path):
    # Earth Engine computes whole rectangles (a request is one); the month job keeps its
    # values on the footprints' pixels and stores the rest as unobserved, as for the scene
    # sources, so the stores of every source agree
    from pipeline.io.mosaic import init_mosaic
    from pipeline.io.mosaic_read import read_footprint_cube
    from pipeline.sentinel.fetch import run_month
    from pipeline.sentinel.model import FootprintCover

    grid = AoiGrid(32649, 10.0, 650040.0, 3795060.0, 192, 128)
    blocks = [Block(c, r, 64, 64) for r in (0, 64) for c in (0, 64, 128)]
    cover = FootprintCover.of([5, 70, 150], [3, 40, 90], 30)
    for name in ("whole", "part"):
        init_mosaic(tmp_path / f"{name}.zarr", grid, [MONTH], chunk_px=64, aoi="xian")
    run_month(make_source(srv), "xian", grid, blocks, MONTH, Recipe(), tmp_path / "whole.zarr",
              tmp_path / "ledger_whole", concurrency=2)
    srv.reset_counters()
    summary = run_month(make_source(srv), "xian", grid, blocks, MONTH, Recipe(),
                        tmp_path / "part.zarr", tmp_path / "ledger_part", concurrency=2,
                        cover=cover)
    # only the blocks a footprint reaches into are requested; the others are unobserved
    reached = [b for b in blocks if cover.block_mask(b).any()]
    assert srv.counters.requests == len(reached) == 4 < len(blocks)
    assert summary["blocks_uncovered"] == 2 and summary["s2_product"] == "L2A"
    whole = read_footprint_cube(tmp_path / "whole.zarr", 0, 0, (grid.height, grid.width))
    part = read_footprint_cube(tmp_path / "part.zarr", 0, 0, (grid.height, grid.width))
    keep = cover.mask(0, 0, grid.width, grid.height)
    assert 0 < keep.sum() < keep.size
    for k in ("x", "counts"):
        np.testing.assert_array_equal(part[k][..., keep], whole[k][..., keep], err_msg=k)
    assert (whole["counts"][..., keep] > 0).any()
    assert (part["counts"][..., ~keep] == 0).all() and np.isnan(part["x"][..., ~keep]).all()
    assert (whole["counts"][..., ~keep] > 0).any()
