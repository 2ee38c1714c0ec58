"""STAC source: static catalogues (disk, HTTP) and a STAC API on loopback servers read by the
real clients (pystac, pystac-client, GDAL /vsicurl), equivalence with the local archive path,
provider conventions (asset keys, offsets, signing) and faults."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from pipeline.errors import SourceError
from pipeline.io.scenes import write_s1_scene
from pipeline.io.stac_catalog import write_scene_catalog
from pipeline.sentinel.model import Block, Recipe
from pipeline.sentinel.sources.local import local_source
from pipeline.sentinel.sources.stac import stac_source
from pipeline.sentinel.sources.stac_items import baseline_offset
from pipeline.sentinel.sources.stac_profiles import PROFILES
from tests.fake_stac import FakeStac, Fault
from tests.sentinel_helpers import GRID, SX0, SY0, write_scene

pytest.importorskip("pystac_client")

BLOCK = Block(0, 0, 64, 64)
MONTH = "2020-03"
S1_TR = Affine(10.0, 0.0, SX0, 0.0, -10.0, SY0)


def _archive(root: Path) -> Path:
    write_scene(root, 3, 0.1)
    write_scene(root, 13, 0.3, cloud_left_half=True, scl_cloud_left_half=True)
    vv = np.full((120, 120), 0.05, np.float32)
    vh = vv / 5
    vh[:, :30] = np.nan
    write_s1_scene(root, dt.datetime(2020, 3, 4, 10), GRID.crs, S1_TR, vv, vh, units="linear",
                   relative_orbit=84)
    write_s1_scene(root, dt.datetime(2020, 3, 16, 10), GRID.crs, S1_TR, vv * 2, None,
                   units="linear", orbit_pass="DESCENDING", relative_orbit=91)
    write_scene_catalog(root)
    return root


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _archive(tmp_path_factory.mktemp("stac_archive"))


@pytest.fixture(scope="module")
def local(archive: Path):  # type: ignore[no-untyped-def]
    return local_source(archive).fetch_block("t", GRID, BLOCK, MONTH, Recipe())


@pytest.fixture
def server(archive: Path):  # type: ignore[no-untyped-def]
    with FakeStac(archive, page_size=2) as srv:
        srv.items = srv.items_from_catalog(archive / "catalog.json")
        yield srv


def _api_source(srv: FakeStac, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("collections", {"s1": "sentinel-1-rtc"})
    kw.setdefault("backoff_base_s", 0.01)
    return stac_source(srv.api, **kw)


def _fresh(srv: FakeStac) -> FakeStac:
    """Another server on the same archive (other port: URLs GDAL has not cached)."""
    other = FakeStac(srv.root, page_size=srv.page_size).start()
    other.items = other.items_from_catalog(srv.root / "catalog.json")
    return other


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    for k in ("s2", "s2_count", "s1", "s1_count"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)


# --------------------------------------------------------------------------- equivalence


def test_static_catalogue_on_disk_equals_the_local_archive(archive: Path, local) -> None:  # type: ignore[no-untyped-def]
    src = stac_source(archive)  # the folder holding catalog.json
    res = src.fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    _same(res, local)
    assert res.meta["s2_cloud_layers"] == {"s2cloudless": 2, "scl": 0}  # L1C paired
    assert res.meta["skipped_items"] == [] and res.meta["empty_searches"] == []
    # VH missing west of the scene's column 30 (grid column 6) in the only scene with VH
    assert local.s1_count.max() == 2 and np.isnan(local.s1[1][:, :6]).all()
    assert np.isfinite(local.s1[1][:, 6:]).all() and np.isfinite(local.s1[0]).all()


def test_api_search_pages_and_range_reads_equal_the_local_archive(server: FakeStac,
                                                                    local) -> None:  # type: ignore[no-untyped-def]
    src = _api_source(server)
    res = src.fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    _same(res, local)
    # 2 L2A + 2 L1C + 2 S1 items at 2 per page: one search request per collection
    assert server.counters.search_requests == 3
    gets = [e for e in server.counters.log if e["path"].startswith("/files/")
            and e["method"] == "GET"]
    assert gets and all(e["range"] and e["status"] == 206 for e in gets)  # range reads only
    # a second block of the same month searches nothing again
    n = server.counters.search_requests
    src.fetch_block("t", GRID, Block(0, 0, 32, 32), MONTH, Recipe())
    assert server.counters.search_requests == n


def test_search_follows_every_page(server: FakeStac) -> None:
    server.page_size = 1
    src = _api_source(server)
    scenes = src.s2_scenes(MONTH, GRID)
    assert len(scenes) == 2 and all(s.products == ("L2A", "L1C") for s in scenes)
    # 2 L2A + 2 L1C items, one per page: 2 pages each, plus the empty last page never asked
    assert server.counters.search_requests == 4


def test_static_catalogue_over_http_equals_the_local_archive(server: FakeStac, archive: Path,
                                                              local) -> None:  # type: ignore[no-untyped-def]
    src = stac_source(server.file_url(archive / "catalog.json"))
    _same(src.fetch_block("t", GRID, BLOCK, MONTH, Recipe()), local)


def test_scenes_of_a_block_are_read_concurrently_with_the_same_result(archive: Path,
                                                                       local) -> None:  # type: ignore[no-untyped-def]
    """item_concurrency overlaps the scene reads of one block (an object store's latency is
    hidden) and composites in order: the same arrays as one scene at a time."""
    peaks = {}
    for n in (1, 4):
        with FakeStac(archive, latency_s=0.01) as srv:  # a fresh port: nothing cached
            srv.items = srv.items_from_catalog(archive / "catalog.json")
            res = _api_source(srv, item_concurrency=n).fetch_block("t", GRID, BLOCK, MONTH,
                                                                   Recipe())
            peaks[n] = srv.counters.max_files_in_flight
        _same(res, local)
        assert res.meta["s2_scenes_used"] == 2 and res.meta["s1_scenes"] == 2
    assert peaks[1] == 1 and peaks[4] >= 2


# --------------------------------------------------------------------------- provider shapes


def test_items_follow_earth_search_and_planetary_computer_shapes(archive: Path) -> None:
    l2a = json.loads(next((archive / "sentinel-2-l2a").glob("*/*.json")).read_text())
    assert l2a["id"].startswith("S2A_49SGU_202003") and l2a["id"].endswith("_0_L2A")
    keys = set(l2a["assets"])
    assert {"coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir",
            "nir08", "nir09", "swir16", "swir22"} <= keys and "cirrus" not in keys
    rb = l2a["assets"]["red"]["raster:bands"][0]
    assert rb["scale"] == 0.0001 and rb["nodata"] == 0 and rb["data_type"] == "uint16"
    assert l2a["assets"]["red"]["type"].endswith("profile=cloud-optimized")
    for prop in ("s2:processing_baseline", "s2:datatake_id", "earthsearch:boa_offset_applied",
                 "view:sun_azimuth", "proj:epsg", "grid:code"):
        assert prop in l2a["properties"]
    assert any("projection" in e for e in l2a["stac_extensions"])
    l1c = json.loads(next((archive / "sentinel-2-l1c").glob("*/*.json")).read_text())
    assert "cirrus" in l1c["assets"] and l1c["id"].endswith("_L1C")
    s1 = json.loads(next((archive / "sentinel-1-rtc").glob("*/*.json")).read_text())
    assert set(s1["assets"]) <= {"vv", "vh"} and s1["properties"]["sat:orbit_state"] in (
        "ascending", "descending")


def test_baseline_offset_rules() -> None:
    es, pc = PROFILES["earth-search"], PROFILES["planetary-computer"]
    new = {"s2:processing_baseline": "05.10"}
    assert baseline_offset(new | {"earthsearch:boa_offset_applied": True}, es) == 0.0
    assert baseline_offset(new | {"earthsearch:boa_offset_applied": False}, es) == -1000.0
    assert baseline_offset(new, pc) == -1000.0  # Planetary Computer never harmonises
    assert baseline_offset({"s2:processing_baseline": "03.01"}, pc) == 0.0
    assert baseline_offset({}, es) == 0.0


def _pc_items(srv: FakeStac) -> list[dict]:
    """The server's items in Planetary Computer's layout: B01.. / SCL asset keys, no L1C."""
    from pipeline.sentinel.sources.stac_profiles import _ES_KEYS

    back = {v: k for k, v in _ES_KEYS.items()}
    out = []
    for it in srv.items:
        if it["collection"] == "sentinel-2-l1c":
            continue
        it = copy.deepcopy(it)
        if it["collection"] == "sentinel-2-l2a":
            it["assets"] = {back[k]: a for k, a in it["assets"].items()}
            it["properties"].pop("earthsearch:boa_offset_applied", None)
        out.append(it)
    return out


def test_planetary_computer_items_are_signed_and_masked_with_scl(server: FakeStac) -> None:
    server.items = _pc_items(server)
    signed: list[str] = []

    def signer(href: str) -> str:
        signed.append(href)
        return href + "?sig=fake"

    src = _api_source(server, profile="planetary-computer", signer=signer, collections=None)
    res = src.fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    assert res.meta["s2_product"] == "L2A" and res.meta["s2_cloud_layers"]["scl"] == 1
    # the scene without SCL has no cloud layer (no L1C on this provider): a counted skip
    assert res.meta["s2_scenes_skipped"]["no_cloud_layer"] == 1
    assert (res.s2_count[:, :34] == 0).all() and (res.s2_count[:, 38:] == 1).all()
    files = [e for e in server.counters.log if e["path"].startswith("/files/")]
    assert signed and files and all(e["query"] == "sig=fake" for e in files)
    assert res.s1_count.max() == 2  # sentinel-1-rtc is the profile's own S1 collection


def _c1_items(srv: FakeStac, offset: float | None) -> list[dict]:
    """The server's L2A items in Earth Search Collection-1 layout (sentinel-2-c1-l2a): ids
    ``S2A_T49SGU_<YYYYMMDD>T<HHMMSS>_L2A``, baseline 05.10, no boa_offset_applied property,
    no L1C; the band assets' raster:bands offset set to ``offset`` (None: left as written)."""
    out = []
    for it in srv.items:
        if it["collection"] != "sentinel-2-l2a":
            continue
        it = copy.deepcopy(it)
        props = it["properties"]
        stamp = props["datetime"].replace("-", "").replace(":", "")[:15]
        it["id"] = f"S2A_T{props['grid:code'].removeprefix('MGRS-')}_{stamp}_L2A"
        it["collection"] = "sentinel-2-c1-l2a"
        props.pop("earthsearch:boa_offset_applied", None)
        props["s2:processing_baseline"] = "05.10"
        for key, a in it["assets"].items():
            if offset is not None and key != "scl" and a.get("raster:bands"):
                a["raster:bands"][0]["offset"] = offset
        out.append(it)
    return out


def test_earth_search_collection_1_reads_offsets_from_raster_bands(server: FakeStac,
                                                                   archive: Path) -> None:
    from pipeline.sentinel.sources.stac_items import item_offset_dn, s2_scenes_from_items

    c1 = PROFILES["earth-search-c1"]
    keys = [c1.s2_keys[b] for b in ("B02", "B04")]
    stated = _c1_items(server, -0.1)
    assert stated[0]["id"].startswith("S2A_T49SGU_202003") and stated[0]["id"].endswith("_L2A")
    assert item_offset_dn(stated[0], keys, c1) == -1000.0  # the COGs keep the offset
    mixed = copy.deepcopy(stated[0])
    mixed["assets"]["red"]["raster:bands"][0]["offset"] = 0.0
    with pytest.raises(SourceError, match="different raster:bands offsets"):
        item_offset_dn(mixed, keys, c1)
    scenes = s2_scenes_from_items(stated, [], c1, lambda h: h, [])
    assert [sc.offsets for sc in scenes] == [{"L2A": -1000.0}] * 2
    assert all(sc.products == ("L2A",) for sc in scenes)

    # the archive's DNs carry no offset and its assets say 0: baseline 05.10 must not
    # subtract 1000 when raster:bands says otherwise -> the local SCL recipe, pixel for pixel
    server.items = _c1_items(server, None)
    src = _api_source(server, profile="earth-search-c1", collections=None)
    cols = src.provider.collections
    assert cols["s2_l2a"] == "sentinel-2-c1-l2a" and not cols["s2_l1c"]
    res = src.fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    ref = local_source(archive).fetch_block("t", GRID, BLOCK, MONTH, Recipe(s2_mask="scl"))
    for k in ("s2", "s2_count"):
        np.testing.assert_array_equal(getattr(res, k), getattr(ref, k), err_msg=k)
    assert res.meta["s2_cloud_layers"] == {"s2cloudless": 0, "scl": 1}
    assert res.meta["s2_scenes_skipped"]["no_cloud_layer"] == 1
    assert res.meta["empty_searches"] == []  # the c1 collection was searched


def test_wrong_offset_flags_are_caught_by_the_pixels(tmp_path: Path) -> None:
    """Earth Search marks some harmonised COGs 'earthsearch:boa_offset_applied: false'
    (its issues #66, #71): the source checks such items' B12 pixels and reads them with
    offset 0, while items that really carry the offset keep -1000. Both scenes hold the same
    reflectance (0.02), so the month's mean is 0.02; trusting the flags gives -0.03."""
    from pipeline.io.scenes import L2A_FILE_BANDS, NATIVE_RES_M, write_s2_scene
    from tests.sentinel_helpers import band_array, transforms

    root = tmp_path / "es"
    for day, value, extra in ((3, 0.02, {}), (13, 0.12, {"offsets": {"L2A": -1000}})):
        bands = {b: band_array(value, b) for b in L2A_FILE_BANDS}
        bands["SCL"] = np.full((60, 60), 4, np.uint8)
        write_s2_scene(root, dt.datetime(2020, 3, day, 3, 25), "49SGU", GRID.crs, transforms(),
                       {"L2A": bands}, extra=extra)
    write_scene_catalog(root)
    # the harmonised scene's item as Earth Search publishes it: baseline 04.00, flag false,
    # raster:bands offset -0.1
    path = next(p for p in (root / "sentinel-2-l2a").glob("*/*.json") if "20200303" in p.name)
    item = json.loads(path.read_text())
    item["properties"]["s2:processing_baseline"] = "04.00"
    for a in item["assets"].values():
        for rb in a.get("raster:bands", []):
            if "scale" in rb:
                rb["offset"] = -0.1
    path.write_text(json.dumps(item))
    assert NATIVE_RES_M["B12"] == 20

    src = stac_source(root, collections={"s1": ""})
    res = src.fetch_block("t", GRID, BLOCK, MONTH, Recipe(s2_mask="scl"))
    assert src.provider.offset_checks == 2 and res.meta["offset_corrected"] == [item["id"]]
    assert (res.s2_count == 2).all()
    np.testing.assert_allclose(res.s2, 0.02, atol=1e-6)
    trusting = stac_source(root, collections={"s1": ""}, verify_offsets=False)
    res = trusting.fetch_block("t", GRID, BLOCK, MONTH, Recipe(s2_mask="scl"))
    np.testing.assert_allclose(res.s2, -0.03, atol=1e-6)
    assert res.meta["offset_corrected"] == [] and trusting.provider.offset_checks == 0


def test_offset_check_trusts_the_flag_when_the_pixels_cannot_tell() -> None:
    from pipeline.sentinel.sources.stac_items import dn_shows_offset_removed

    rng = np.random.default_rng(0)
    harmonised = rng.integers(50, 4000, 5000).astype(np.float32)  # water .. bright soil
    carrying = harmonised + 1000.0
    bright = rng.integers(2000, 6000, 5000).astype(np.float32)  # a desert: harmonised or not?
    assert dn_shows_offset_removed(harmonised)
    assert not dn_shows_offset_removed(carrying)
    assert not dn_shows_offset_removed(bright)  # no evidence: the flag decides
    assert not dn_shows_offset_removed(np.full(500, 100.0, np.float32))  # too few pixels
    nodata = np.concatenate([np.zeros(5000, np.float32), carrying])
    assert not dn_shows_offset_removed(nodata)  # nodata 0 is not a dark pixel


# --------------------------------------------------------------------------- bad input, faults


def test_empty_search_is_recorded_never_silent(server: FakeStac) -> None:
    src = _api_source(server)
    res = src.fetch_block("t", GRID, BLOCK, "2020-05", Recipe())
    assert res.meta["s2_product"] is None and not res.s2_count.any()
    assert res.meta["empty_searches"] == ["sentinel-2-l2a", "sentinel-2-l1c", "sentinel-1-rtc"]


def test_item_missing_a_band_asset_is_a_recorded_skip(server: FakeStac) -> None:
    victim = next(it for it in server.items if it["collection"] == "sentinel-2-l2a")
    del victim["assets"]["swir22"]
    res = _api_source(server).fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    assert {"item": victim["id"], "sensor": "s2", "cause": "missing_asset",
            "why": "no asset swir22"} in res.meta["skipped_items"]
    assert (res.s2_count <= 1).all()  # the other scene is still used


def test_skips_and_empty_searches_reach_the_month_summary(server: FakeStac,
                                                          tmp_path: Path) -> None:
    """What a block records (skipped items, empty searches, cloud layers) survives the ledger
    marker into the month summary a user reads."""
    from pipeline.io.jsonfile import read_json
    from pipeline.io.mosaic import init_mosaic
    from pipeline.sentinel.fetch import run_month

    victim = next(it for it in server.items if it["collection"] == "sentinel-2-l2a")
    del victim["assets"]["swir22"]
    store, ledger = tmp_path / "m.zarr", tmp_path / "ledger"
    init_mosaic(store, GRID, [MONTH], chunk_px=32, aoi="t")
    blocks = [Block(0, 0, 32, 32), Block(32, 0, 32, 32)]
    summary = run_month(_api_source(server, collections={"s1": "sentinel-1-grd-none"}), "t",
                        GRID, blocks, MONTH, Recipe(), store, ledger, concurrency=1,
                        summary_path=tmp_path / "summary.json")
    assert summary["skipped_items"] == [{"item": victim["id"], "sensor": "s2",
                                         "cause": "missing_asset", "why": "no asset swir22"}]
    assert summary["empty_searches"] == ["sentinel-1-grd-none"]
    assert read_json(tmp_path / "summary.json")["skipped_items"] == summary["skipped_items"]
    marker = read_json(next(ledger.glob("r*.json")))
    assert marker["s2_cloud_layers"] == {"s2cloudless": 1, "scl": 0}


@pytest.mark.parametrize(("status", "text"), [("404", "missing on the server"),
                                              ("403", "planetary-computer")])
def test_refused_asset_names_the_asset_and_the_fix(server: FakeStac, status: str,
                                                   text: str) -> None:
    server.faults.append(Fault("/files/s2/", status, times=-1))
    with pytest.raises(SourceError, match=text) as err:
        _api_source(server, max_retries=1).fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    assert "http://127.0.0.1" in str(err.value) and ".tif" in str(err.value)


def test_search_429_and_5xx_are_retried_a_bounded_number_of_times(server: FakeStac) -> None:
    server.faults += [Fault("/api/search", "429"), Fault("/api/search", "503")]
    src = _api_source(server)
    assert len(src.s2_scenes(MONTH, GRID)) == 2 and src.provider.retries.n == 2
    server.faults.append(Fault("/api/search", "500", times=-1))
    with pytest.raises(SourceError, match="failed after 2 retries"):
        _api_source(server, max_retries=2).s2_scenes(MONTH, GRID)
    server.faults.clear()
    server.faults.append(Fault("/api/search", "400", times=-1))
    with pytest.raises(SourceError, match=r"failed after 0 retries.*HTTP 400, which is not "
                                          r"retried: check the URL, the collection ids"):
        _api_source(server, max_retries=5).s2_scenes(MONTH, GRID)


def test_search_retries_honour_retry_after(server: FakeStac) -> None:
    """429 with Retry-After: 1 waits that second (the backoff alone would be 10 ms), as
    urllib3's Retry does for pystac-client."""
    import time

    server.faults.append(Fault("/api/search", "429", retry_after_s=1))
    src = _api_source(server)
    t0 = time.monotonic()
    assert len(src.s2_scenes(MONTH, GRID)) == 2
    assert time.monotonic() - t0 >= 0.95 and src.provider.retries.n == 1


def test_broken_catalogues_are_not_called_transient(tmp_path: Path, server: FakeStac) -> None:
    """A malformed catalog.json and a 404 catalogue say what is wrong, not 'rerun later'."""
    bad = tmp_path / "catalog.json"
    bad.write_text("{not json")
    with pytest.raises(SourceError, match="not valid STAC JSON") as err:
        stac_source(str(bad)).s2_scenes(MONTH, GRID)
    assert "rerun later" not in str(err.value)
    with pytest.raises(SourceError, match="HTTP 404, which is not retried") as err:
        stac_source(server.url + "/files/nope/catalog.json", max_retries=3).s2_scenes(MONTH, GRID)
    assert "after 0 retries" in str(err.value)


def test_unreachable_host_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that cannot be reached is reported as such (not 'the server kept failing')."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    with pytest.raises(SourceError, match="could not be reached"):
        stac_source(f"http://127.0.0.1:{port}/api", max_retries=0).s2_scenes(MONTH, GRID)


def test_cog_503_is_retried_by_gdal_and_persisting_fails_clearly(server: FakeStac,
                                                                 local) -> None:  # type: ignore[no-untyped-def]
    server.faults.append(Fault("/files/s2/", "503", times=3))
    res = _api_source(server, max_retries=4).fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    _same(res, local)
    assert sum(e["status"] == 503 for e in server.counters.log) == 3
    with _fresh(server) as other:  # new URLs: GDAL caches what it has read per URL
        other.faults.append(Fault("/files/s1/", "503", times=-1))
        with pytest.raises(SourceError, match="rerun to resume"):
            _api_source(other, max_retries=1).fetch_block("t", GRID, BLOCK, MONTH, Recipe())


def test_truncated_cog_is_an_error_naming_it(server: FakeStac) -> None:
    server.faults.append(Fault("/files/s2/", "truncate", times=-1))
    with pytest.raises(SourceError, match="could not be read"):
        _api_source(server, max_retries=0).fetch_block("t", GRID, BLOCK, MONTH, Recipe())


def test_a_rerun_fetches_only_the_missing_blocks(server: FakeStac, tmp_path: Path) -> None:
    from pipeline.io.mosaic import init_mosaic
    from pipeline.sentinel.fetch import run_month

    store, ledger = tmp_path / "m.zarr", tmp_path / "ledger"
    init_mosaic(store, GRID, [MONTH], chunk_px=32, aoi="t")
    blocks = [Block(c, r, 32, 32) for r in (0, 32) for c in (0, 32)]
    with _fresh(server) as broken:  # the first run loses S1 half-way
        broken.faults.append(Fault("/files/s1/", "404", times=-1))
        with pytest.raises(SourceError):
            run_month(_api_source(broken, max_retries=0), "t", GRID, blocks, MONTH, Recipe(),
                      store, ledger, concurrency=1)
    first = run_month(_api_source(server), "t", GRID, blocks, MONTH, Recipe(), store, ledger,
                      concurrency=1)
    assert first["blocks_done"] == 4 and first["blocks_skipped"] == 0
    n = server.counters.file_requests
    again = run_month(_api_source(server), "t", GRID, blocks, MONTH, Recipe(), store, ledger,
                      concurrency=1)
    assert again["blocks_skipped"] == 4 and server.counters.file_requests == n


def test_s2_query_filters_items_before_any_read(server: FakeStac, archive: Path) -> None:
    """sentinel.stac.s2_query goes to the API's item search (and filters static catalogues the
    same way): an overcast scene is never listed, so none of its bytes are read."""
    cloudy = next(it for it in server.items if it["collection"].startswith("sentinel-2"))
    for it in server.items:
        if it["id"].rsplit("_", 1)[0] == cloudy["id"].rsplit("_", 1)[0]:
            it["properties"]["eo:cloud_cover"] = 95.0
    q = {"eo:cloud_cover": {"lt": 80}}
    scenes = _api_source(server, s2_query=q).s2_scenes(MONTH, GRID)
    assert len(scenes) == 1 and cloudy["id"].rsplit("_", 1)[0] not in scenes[0].id
    search = [e for e in server.counters.log if e["path"] == "/api/search"]
    assert search  # the API path does not filter locally: the server applied the query
    static = stac_source(archive, s2_query={"eo:cloud_cover": {"gte": 0}})
    assert len(static.s2_scenes(MONTH, GRID)) == 2
    with pytest.raises(SourceError, match="unknown operators"):
        stac_source(archive, s2_query={"eo:cloud_cover": {"below": 3}})


def test_search_timeout_is_retried(server: FakeStac) -> None:
    """A search answer slower than sentinel.stac.timeout_s is a timeout: retried, then fine."""
    server.faults.append(Fault("/api/search", "slow", times=1, delay_s=2.0))
    src = _api_source(server, timeout_s=0.5)
    assert len(src.s2_scenes(MONTH, GRID)) == 2 and src.provider.retries.n == 1


def test_refused_l1c_falls_back_to_scl(tmp_path: Path) -> None:
    """Earth Search's L1C is requester-pays: without AWS credentials its reads are refused
    (403). L2A scenes with an SCL layer are then masked with it (recorded), instead of failing
    the month; the result equals the SCL recipe on the same scenes."""
    write_scene(tmp_path, 3, 0.1, scl_cloud_left_half=False)
    write_scene(tmp_path, 13, 0.3, cloud_left_half=True, scl_cloud_left_half=True)
    write_scene_catalog(tmp_path)
    want = local_source(tmp_path).fetch_block("t", GRID, BLOCK, MONTH, Recipe(s2_mask="scl"))
    with FakeStac(tmp_path) as srv:
        srv.items = srv.items_from_catalog(tmp_path / "catalog.json")
        srv.faults.append(Fault("/files/s2/", "403", times=-1, contains="/L1C/"))
        src = _api_source(srv, max_retries=0)
        res = src.fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    assert res.meta["s2_cloud_layers"] == {"s2cloudless": 0, "scl": 2}
    assert len(res.meta["l1c_refused"]) == 2
    np.testing.assert_array_equal(res.s2, want.s2)
    np.testing.assert_array_equal(res.s2_count, want.s2_count)


@pytest.mark.parametrize(("href", "why"), [
    ("file:///etc/passwd", "local path in a remote catalogue"),
    ("/tmp/elsewhere/B01.tif", "local path in a remote catalogue"),
    ("/vsicurl/https://example.com/B01.tif", "GDAL virtual path"),
    ("/vsis3/bucket/B01.tif", "GDAL virtual path"),
    ("http://169.254.169.254/latest/meta-data/B01.tif", "non-public host '169.254.169.254'"),
    ("http://10.1.2.3/B01.tif", "non-public host"),
    ("http://localhost:9/B01.tif", "non-public host 'localhost'"),
    ("ftp://example.com/B01.tif", "scheme 'ftp'"),
    ("s3://bucket/B01.tif", "scheme 's3'"),
])
def test_a_remote_catalogue_never_chooses_what_is_read(server: FakeStac, href: str,
                                                      why: str) -> None:
    """An API item whose asset href is a local file, a GDAL virtual path, a private / cloud
    metadata address or an unknown scheme is refused with the item and the href named, before
    anything is read (issue: a catalogue chose local files, exit 0)."""
    item = next(it for it in server.items if it["collection"] == "sentinel-2-l2a")
    item["assets"]["blue"]["href"] = href
    before = server.counters.file_requests
    # earth-search-c1 (Earth Search's layout) names no cloud scheme; earth-search allows s3
    kw = ({"profile": "earth-search-c1", "collections": {"s2_l2a": "sentinel-2-l2a",
                                                         "s1": "sentinel-1-rtc"}}
          if href.startswith("s3") else {})
    with pytest.raises(SourceError, match=why) as err:
        _api_source(server, **kw).fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    assert item["id"] in str(err.value) and href in str(err.value)
    assert server.counters.file_requests == before


def test_href_policy_of_static_catalogues_and_allowed_hosts(tmp_path: Path) -> None:
    from pipeline.errors import HrefRefusedError
    from pipeline.sentinel.sources.stac_items import href_checker

    root = tmp_path / "cat"
    check = href_checker(str(root / "catalog.json"))
    inside = str(root / "s2" / "x" / "B01.tif")
    assert check(inside) == inside and check("file://" + inside) == "file://" + inside
    assert check("https://sentinel-cogs.s3.us-west-2.amazonaws.com/a/B01.tif")
    for bad in (str(root / ".." / ".." / "etc" / "B01.tif"), str(tmp_path / "other.tif"),
                "/vsizip/" + inside):
        with pytest.raises(HrefRefusedError):
            check(bad)
    api = href_checker("http://127.0.0.1:8000/api", ("s3",), ("10.0.0.5",))
    assert api("http://127.0.0.1:9000/files/B01.tif")  # the catalogue's own host
    assert api("http://10.0.0.5:9000/b/B01.tif") and api("s3://sentinel-s2-l1c/B01.jp2")
    with pytest.raises(HrefRefusedError, match="allow_hosts"):
        api("http://10.0.0.6/B01.tif")
    assert href_checker("https://x.org/api", (), ("*",))("http://192.168.1.1/a.tif")


def test_month_summary_retries_are_true(server: FakeStac, tmp_path: Path) -> None:
    """Retried searches and retried COG reads are counted in the month summary (it used to
    say retries: 0 whatever was retried)."""
    from pipeline.io.mosaic import init_mosaic
    from pipeline.sentinel.fetch import run_month

    server.faults += [Fault("/api/search", "503", times=1),
                      Fault("/files/s2/", "503", times=2)]
    store = tmp_path / "m.zarr"
    init_mosaic(store, GRID, [MONTH], chunk_px=32, aoi="t")
    summary = run_month(_api_source(server, max_retries=4), "t", GRID, [Block(0, 0, 32, 32)],
                        MONTH, Recipe(), store, tmp_path / "ledger", concurrency=1)
    assert summary["search_retries"] == 1
    assert summary["retries"] == 3  # the search's 1 + GDAL's 2 COG retries
    assert sum(e["status"] == 503 for e in server.counters.log) == 3


def test_skips_heal_once_the_catalogue_is_fixed(server: FakeStac, tmp_path: Path) -> None:
    """A month fetched while an item lacked a band asset keeps a skipped block; once the
    catalogue is fixed, running the month again (its summary removed, as ``--forcerun`` or
    the skip retry does) fetches it anew, because the listing keys the ledger, and gives the
    clean build's bytes; an unchanged catalogue resumes. (Stale blocks used to stay until the
    ledger folder was deleted by hand.)"""
    import copy

    from pipeline.io.mosaic import init_mosaic
    from pipeline.io.mosaic_read import read_footprint_cube
    from pipeline.sentinel.fetch import run_month

    blocks = [Block(0, 0, 32, 32), Block(32, 0, 32, 32), Block(0, 32, 32, 32),
              Block(32, 32, 32, 32)]

    def month(store: Path, ledger: Path, summary: Path) -> dict:
        if not store.exists():
            init_mosaic(store, GRID, [MONTH], chunk_px=32, aoi="t")
        return run_month(_api_source(server), "t", GRID, blocks, MONTH, Recipe(), store,
                         ledger, concurrency=2, summary_path=summary)

    clean = month(tmp_path / "clean.zarr", tmp_path / "clean", tmp_path / "clean.json")
    assert clean["skipped_items"] == []
    good = copy.deepcopy(server.items)
    victim = next(it for it in server.items if it["collection"] == "sentinel-2-l2a")
    del victim["assets"]["swir22"]
    store, ledger, summary = tmp_path / "m.zarr", tmp_path / "ledger", tmp_path / "m.json"
    broken = month(store, ledger, summary)
    assert broken["skipped_items"] == [{"item": victim["id"], "sensor": "s2",
                                        "cause": "missing_asset", "why": "no asset swir22"}]
    summary.unlink()
    again = month(store, ledger, summary)  # same catalogue: resumes
    assert again["blocks_done"] == 0 and again["blocks_skipped"] == 4
    server.items = good  # the provider fixed the item
    summary.unlink()  # snakemake --forcerun sentinel_month
    fixed = month(store, ledger, summary)
    assert fixed["blocks_done"] == 4 and fixed["skipped_items"] == []
    a = read_footprint_cube(store, 0, 0, 64)
    b = read_footprint_cube(tmp_path / "clean.zarr", 0, 0, 64)
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["counts"], b["counts"])


def test_a_changed_listing_refetches_a_resumed_month(server: FakeStac, tmp_path: Path) -> None:
    """A month interrupted after some blocks (no summary yet) whose catalogue then changed
    does not keep the blocks fetched from the old listing: the listing keys the ledger."""
    from pipeline.io.mosaic import init_mosaic
    from pipeline.sentinel.fetch import run_month

    store, ledger = tmp_path / "m.zarr", tmp_path / "ledger"
    init_mosaic(store, GRID, [MONTH], chunk_px=32, aoi="t")
    first = [Block(0, 0, 32, 32)]
    run_month(_api_source(server), "t", GRID, first, MONTH, Recipe(), store, ledger)
    gone = next(it for it in server.items if it["collection"] == "sentinel-2-l2a")
    server.items = [it for it in server.items if it is not gone]  # an item was withdrawn
    both = [*first, Block(32, 0, 32, 32)]
    s = run_month(_api_source(server), "t", GRID, both, MONTH, Recipe(), store, ledger)
    assert s["blocks_done"] == 2 and s["blocks_skipped"] == 0


def test_months_with_skipped_items_are_retried_a_bounded_number_of_runs(
    server: FakeStac, tmp_path: Path
) -> None:
    """The parse-time rule: a month whose items were skipped is run again by the next
    workflow runs (counted in its ledger) until sentinel.stac.skip_retry_runs runs have
    retried it; each retry re-lists the month (resuming its blocks while the catalogue is
    unchanged); a month without skips is never retried."""
    from pipeline.io.mosaic import init_mosaic
    from pipeline.sentinel.fetch import mark_retry, months_to_retry, run_month

    victim = next(it for it in server.items if it["collection"] == "sentinel-2-l2a")
    del victim["assets"]["swir22"]
    store, ledger, summary = tmp_path / "m.zarr", tmp_path / "ledger", tmp_path / "m.json"
    init_mosaic(store, GRID, [MONTH], chunk_px=32, aoi="t")
    seen = []
    for _ in range(5):
        s = run_month(_api_source(server), "t", GRID, [Block(0, 0, 32, 32)], MONTH, Recipe(),
                      store, ledger, summary_path=summary)
        seen.append((s["skip_retries"], s["blocks_done"]))
        retry = months_to_retry({MONTH: (summary, ledger)}, max_runs=2)
        if not retry:
            break
        assert retry == {MONTH: [f"item {victim['id']} skipped"]}
        mark_retry(ledger)  # what the Snakefile does at parse time
        summary.unlink()
    assert seen == [(0, 1), (1, 0), (2, 0)]  # the first fetch and two (resumed) retries
    clean = tmp_path / "clean.json"
    clean.write_text('{"skipped_items": [], "empty_searches": []}')
    assert months_to_retry({"2020-04": (clean, tmp_path / "l4"),
                            "2020-05": (tmp_path / "none.json", tmp_path / "l5")}, 2) == {}
    # an empty search is retried too (a month searched before the provider ingested it)
    empty = tmp_path / "empty.json"
    empty.write_text('{"empty_searches": ["sentinel-1-rtc"], "n_scenes": {"s2": 4, "s1": 0}}')
    assert months_to_retry({"2020-06": (empty, tmp_path / "l6")}, 2) == {
        "2020-06": ["search of sentinel-1-rtc empty"]}
    # an empty L2A search whose month the L1C search filled is complete: not retried
    l1c = tmp_path / "l1c.json"
    l1c.write_text('{"empty_searches": ["sentinel-2-l2a"], "n_scenes": {"s2": 3, "s1": 2}}')
    assert months_to_retry({"2019-08": (l1c, tmp_path / "l8")}, 2) == {}
    mark_retry(tmp_path / "l6")
    mark_retry(tmp_path / "l6")
    assert months_to_retry({"2020-06": (empty, tmp_path / "l6")}, 2) == {}  # bounded


def test_a_month_whose_items_were_all_lost_fails_instead_of_coming_out_empty(
        server: FakeStac, tmp_path: Path) -> None:
    """Every S2 item lacks a band asset (a profile that cannot read the catalogue): the month
    used to come out as an empty series with exit status 0; now its job fails naming the
    sensor and the causes, and sentinel.allow_lost_items builds it empty with the causes
    counted in the summary."""
    from pipeline.io.mosaic import init_mosaic
    from pipeline.sentinel.fetch import run_month

    s2 = [it for it in server.items if it["collection"].startswith("sentinel-2")]
    assert s2
    for it in s2:
        it["assets"].pop("swir22", None)
    store, summary = tmp_path / "m.zarr", tmp_path / "m.json"
    init_mosaic(store, GRID, [MONTH], chunk_px=32, aoi="t")
    with pytest.raises(SourceError, match=r"AOI t month 2020-03: every S2 item the catalogue "
                                          r"listed was lost \(missing_asset: \d+; items .*"
                                          r"allow_lost_items"):
        run_month(_api_source(server), "t", GRID, [Block(0, 0, 32, 32)], MONTH, Recipe(),
                  store, tmp_path / "ledger", summary_path=summary)
    assert not summary.exists()
    s = run_month(_api_source(server), "t", GRID, [Block(0, 0, 32, 32)], MONTH, Recipe(),
                  store, tmp_path / "ledger2", summary_path=summary, allow_lost=True)
    assert s["n_scenes"]["s2"] == 0 and s["lost_items"]["s2"] == {"missing_asset": len(s2)}
    assert s["lost_items"]["s1"] == {}


def test_preflight_checks_the_source_once_before_the_build(server: FakeStac,
                                                           tmp_path: Path) -> None:
    """What a build needs from its source is checked before any HR stage runs: the API
    answers and lists the configured collections; a wrong collection, an unreachable host
    (named) and a missing Planetary Computer package each fail with one message."""
    import sys

    from pipeline.config import SentinelConfig
    from pipeline.sentinel.sources import preflight

    def cfg(**stac):  # type: ignore[no-untyped-def]
        return SentinelConfig.model_validate({"source": "stac", "stac": {
            "url": server.api, "s1_collection": "sentinel-1-rtc", "backoff_base_s": 0.01,
            "max_retries": 1, **stac}})

    preflight(cfg(), [("AOI 'a'", None), ("AOI 'b'", None)])  # the loopback API answers
    with pytest.raises(SourceError, match=r"AOI 'a': the Sentinel source cannot be used: STAC "
                                          r"API .* has no collection 'sentinel-2-l2x'"):
        preflight(cfg(s2_l2a_collection="sentinel-2-l2x"), [("AOI 'a'", None)])
    with pytest.raises(SourceError, match=r"the host 127\.0\.0\.1:9 could not be reached"):
        preflight(cfg(url="http://127.0.0.1:9/api"), [("AOI 'a'", None)])
    sys.modules["planetary_computer"] = None  # type: ignore[assignment]  # not installed
    try:
        with pytest.raises(SourceError, match=r"pip install planetary-computer"):
            preflight(cfg(profile="planetary-computer"), [("AOI 'a'", None)])
    finally:
        del sys.modules["planetary_computer"]
    preflight(cfg(), [])  # nothing left to fetch: nothing checked


def test_s1_comes_from_a_second_catalogue_when_the_first_has_none(
        server: FakeStac, tmp_path: Path) -> None:
    """Earth Search has no calibrated S1: by default S1 is read from Planetary Computer's
    sentinel-1-rtc (sentinel.stac.s1_catalog). Two loopback APIs, one with only the S2 items
    (Earth Search layout) and one with only the S1 RTC items (Planetary Computer layout), give
    the same S1 composite as one catalogue holding both."""
    s2_only = FakeStac(server.root, page_size=2).start()
    s1_only = FakeStac(server.root, page_size=2).start()
    try:
        s2_only.items = [it for it in server.items if it["collection"].startswith("sentinel-2")]
        s1_only.items = [it for it in server.items if it["collection"] == "sentinel-1-rtc"]
        assert s2_only.items and s1_only.items
        both = _api_source(server).fetch_block("t", GRID, BLOCK, MONTH, Recipe())
        split = stac_source(s2_only.api, collections={}, backoff_base_s=0.01,
                            s1_catalog=s1_only.api, s1_signer=lambda h: h)
        got = split.fetch_block("t", GRID, BLOCK, MONTH, Recipe())
        assert int(got.s1_count.max()) > 0
        np.testing.assert_array_equal(got.s1, both.s1)
        np.testing.assert_array_equal(got.s1_count, both.s1_count)
        np.testing.assert_array_equal(got.s2, both.s2)
        assert s1_only.counters.search_requests > 0  # S1 was searched in the second API
        # without the second catalogue the same API gives no S1 (Earth Search's case)
        alone = stac_source(s2_only.api, collections={}, backoff_base_s=0.01)
        assert int(alone.fetch_block("t", GRID, BLOCK, MONTH, Recipe()).s1_count.max()) == 0
    finally:
        s2_only.stop()
        s1_only.stop()


def test_the_default_configuration_reads_s1_from_planetary_computer(archive: Path) -> None:
    """A plan of a real AOI with the default configuration has S2 (Earth Search) and S1
    (Planetary Computer sentinel-1-rtc, signed); a static catalogue keeps its own S1, an
    explicit s1_collection or s1_catalog: null turns the second catalogue off."""
    from pipeline.config import SentinelConfig
    from pipeline.sentinel.sources import stac_kwargs
    from pipeline.sentinel.sources.stac import StacCatalog
    from pipeline.sentinel.sources.stac_profiles import DEFAULT_URLS

    default = StacCatalog(**stac_kwargs(SentinelConfig(), None))
    assert default.catalog == DEFAULT_URLS["earth-search"]
    assert default.collections["s2_l2a"] == "sentinel-2-l2a" and not default.collections["s1"]
    assert default.s1_catalog is not None
    assert default.s1_catalog.catalog == DEFAULT_URLS["planetary-computer"]
    assert default.s1_catalog.collections["s1"] == "sentinel-1-rtc"
    assert default.s1_catalog.profile.s1_units == "linear"  # gamma0 power, averaged linearly
    for off in ({"s1_catalog": None}, {"s1_collection": "my-s1"}):
        cfg = SentinelConfig.model_validate({"stac": off})
        assert StacCatalog(**stac_kwargs(cfg, None)).s1_catalog is None
    static = StacCatalog(**stac_kwargs(SentinelConfig(), str(archive)))
    assert static.static and static.s1_catalog is None
    # the plan says where each sensor comes from
    from pipeline.sentinel.sources import sensor_sources

    plan = sensor_sources(SentinelConfig(), None)
    assert plan == {"s2": f"{DEFAULT_URLS['earth-search']} (sentinel-2-l2a)",
                    "s1": f"{DEFAULT_URLS['planetary-computer']} (sentinel-1-rtc)"}
    none = SentinelConfig.model_validate({"stac": {"s1_catalog": None}})
    assert sensor_sources(none, None)["s1"] is None
    # a generated archive whose catalogue a later job writes (sentinel_init may run first)
    later = sensor_sources(SentinelConfig(), str(archive / "not-yet"))
    assert later["s2"].startswith(f"{archive / 'not-yet'}/catalog.json")
