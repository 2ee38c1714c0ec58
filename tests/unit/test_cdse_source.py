"""The CDSE profile end to end on loopback servers: a STAC API answering items shaped like real
CDSE items, their JPEG2000 assets on moto's S3 server, read by the real clients (pystac-client,
GDAL ``/vsis3/`` with path-style requests and signed keys). The composite must equal the local
archive's, pixel for pixel: the JP2s are lossless copies of the archive's band files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import SourceError
from pipeline.sentinel.model import Block, Recipe
from pipeline.sentinel.sources.local import local_source
from pipeline.sentinel.sources.stac import StacCatalog, stac_source
from tests.fake_cdse import KEY_ID, SECRET, FakeCdseS3, cdse_items
from tests.fake_stac import FakeStac
from tests.sentinel_helpers import GRID
from tests.unit.test_stac_source import BLOCK, MONTH, _archive

pytest.importorskip("moto")
pytest.importorskip("pystac_client")


@pytest.fixture(scope="module")
def cdse(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    archive = _archive(tmp_path_factory.mktemp("cdse_archive"))
    with FakeCdseS3() as s3, FakeStac(archive, page_size=2) as api:
        api.items = items = cdse_items(archive / "catalog.json", s3,
                                       tmp_path_factory.mktemp("cdse_jp2"), api.file_url)
        yield archive, s3, api, items


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


def _source(api: FakeStac, s3: FakeCdseS3, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("collections", {"s1": "sentinel-1-rtc"})  # S1: the archive's own items
    return stac_source(api.api, profile="cdse", s3_endpoint=s3.endpoint, backoff_base_s=0.01,
                       **kw)


def test_cdse_items_on_s3_give_the_local_archives_composite(cdse, keys) -> None:  # type: ignore[no-untyped-def]
    archive, s3, api, items = cdse
    s2 = [it for it in items if it["collection"].startswith("sentinel-2")]
    assert s2 and all(a["href"].startswith("s3://eodata/Sentinel-2/MSI/")
                      and a["href"].endswith(".jp2") for it in s2 for a in it["assets"].values())
    # L1C and L2A of one acquisition have different ids, as on CDSE
    assert {it["id"].rsplit("_", 1)[0].replace("MSIL1C", "MSIL2A") for it in s2} \
        != {it["id"] for it in s2}
    src = _source(api, s3)
    res = src.fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    ref = local_source(archive).fetch_block("t", GRID, BLOCK, MONTH, Recipe())
    for k in ("s2", "s2_count", "s1", "s1_count"):
        np.testing.assert_array_equal(getattr(res, k), getattr(ref, k), err_msg=k)
    # both L2A scenes were paired with their L1C (by acquisition): s2cloudless on L1C bands
    assert res.meta["s2_cloud_layers"] == {"s2cloudless": 2, "scl": 0}
    assert res.meta["skipped_items"] == [] and np.isfinite(res.s2).any()


def test_the_scl_recipe_reads_the_20m_scl_asset(cdse, keys) -> None:  # type: ignore[no-untyped-def]
    archive, s3, api, _ = cdse
    res = _source(api, s3).fetch_block("t", GRID, Block(0, 0, 48, 48), MONTH,
                                       Recipe(s2_mask="scl"))
    ref = local_source(archive).fetch_block("t", GRID, Block(0, 0, 48, 48), MONTH,
                                            Recipe(s2_mask="scl"))
    for k in ("s2", "s2_count"):
        np.testing.assert_array_equal(getattr(res, k), getattr(ref, k), err_msg=k)
    assert res.meta["s2_cloud_layers"]["scl"] == 1


def test_without_s3_keys_the_preflight_says_where_to_get_them(
        cdse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, s3, api, _ = cdse
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    cat = StacCatalog(api.api, profile="cdse", s3_endpoint=s3.endpoint)
    with pytest.raises(SourceError, match=r"AWS_ACCESS_KEY_ID.*eodata-s3keysmanager"):
        cat.preflight()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    cat.preflight()  # the landing page and both S2 collections answer


def test_a_missing_jp2_names_the_asset(cdse, keys) -> None:  # type: ignore[no-untyped-def]
    import copy

    _, s3, api, items = cdse
    broken = copy.deepcopy(items)
    s2 = next(it for it in broken if it["collection"] == "sentinel-2-l2a")
    href = s2["assets"]["B04_10m"]["href"]
    s2["assets"]["B04_10m"]["href"] = href.replace("_B04_10m.jp2", "_B04_10m_gone.jp2")
    api.items = broken
    try:
        with pytest.raises(SourceError, match=r"/vsis3/eodata/.*B04_10m_gone\.jp2.*missing"):
            _source(api, s3).fetch_block("t", GRID, Block(0, 0, 16, 16), MONTH, Recipe())
    finally:
        api.items = items


def test_s3_endpoint_setting_is_checked() -> None:
    from pipeline.io.scenes import s3_endpoint_options

    assert s3_endpoint_options("https://eodata.dataspace.copernicus.eu") == {
        "AWS_S3_ENDPOINT": "eodata.dataspace.copernicus.eu", "AWS_HTTPS": "YES",
        "AWS_VIRTUAL_HOSTING": "FALSE", "CPL_AWS_AUTODETECT_EC2": "NO"}
    assert s3_endpoint_options("http://127.0.0.1:9000")["AWS_HTTPS"] == "NO"
    with pytest.raises(SourceError, match="s3_endpoint"):
        s3_endpoint_options("ftp://x")


def test_reads_stay_under_cdses_connection_cap(cdse) -> None:  # type: ignore[no-untyped-def]
    """CDSE allows an account 4 concurrent connections (its Quotas page): a month job's
    blocks x scenes per block stay within it, whatever the generic defaults say."""
    from pipeline.config import SentinelConfig
    from pipeline.sentinel.month import month_concurrency

    _, s3, api, _ = cdse
    assert StacCatalog(api.api, profile="cdse", s3_endpoint=s3.endpoint,
                       item_concurrency=8).item_concurrency == 4
    for stac, want in (({}, 1), ({"item_concurrency": 2}, 2), ({"item_concurrency": 1}, 4),
                       ({"item_concurrency": 1, "concurrency": 3}, 3)):
        cfg = SentinelConfig.model_validate({"stac": {"profile": "cdse", **stac}})
        blocks = month_concurrency(cfg, 2)
        assert blocks == want and blocks * min(cfg.stac.item_concurrency, 4) <= 4
    # other profiles keep their configured concurrency
    assert month_concurrency(SentinelConfig.model_validate({}), 2) == 8


def test_gdal_network_cache_is_cleared_between_fakes(tmp_path: Path) -> None:
    # GDAL answers a URL it read before from its per-process cache: a later fake serving other
    # bytes under the same URL (a port reused, the fixed ``eodata`` bucket) is not even asked
    # until the cache is cleared, which every FakeCdseS3 does when it starts
    import rasterio

    from tests.fake_cdse import clear_gdal_network_cache

    served = tmp_path / "served"
    served.mkdir()

    def write(value: int) -> None:
        with rasterio.open(served / "x.tif", "w", driver="GTiff", width=4, height=4, count=1,
                           dtype="uint8", crs="EPSG:32649",
                           transform=rasterio.Affine(10, 0, 0, 0, -10, 0)) as ds:
            ds.write(np.full((1, 4, 4), value, np.uint8))

    write(7)
    size = (served / "x.tif").stat().st_size
    # as the pipeline reads (pipeline.io.scenes): no folder listing (with one, the open hung
    # against this in-process server)
    with FakeStac(served) as api, rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        url = "/vsicurl/" + api.file_url(served / "x.tif")
        with rasterio.open(url) as ds:
            assert ds.read(1)[0, 0] == 7
        write(9)  # the same size, other pixels
        assert (served / "x.tif").stat().st_size == size
        with rasterio.open(url) as ds:
            assert ds.read(1)[0, 0] == 7  # GDAL's cache, not the server
        clear_gdal_network_cache()
        with rasterio.open(url) as ds:
            assert ds.read(1)[0, 0] == 9
