"""`snakemake` builds the demo's Sentinel cube from a STAC API on loopback (the demo's generated
catalogue served by tests/fake_stac.py, read by pystac-client and GDAL over HTTP) and gets the
same cube as the default build from the catalogue on disk; and so does the `cdse` profile,
reading the same scenes as CDSE serves them (JPEG2000 in SAFE paths on moto's S3 server,
items shaped like real CDSE items: tests/fake_cdse.py); and ``source: gee`` gets the same cube
within float32 rounding from the fake Earth Engine that evaluates the recipe's expression graph
over the demo's scene files (tests/fake_ee_eval.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fake_ee import FakeEarthEngine
from tests.fake_stac import FakeStac
from tests.workflow.cluster_helpers import RESULTS, checksums, runner, write_workspace

pytestmark = pytest.mark.slow

SUMMARY = f"{RESULTS}/tiny/sentinel/tiny/summary.json"
#: the collections the loopback APIs have (the tiny demo's one month holds no L2A item: the
#: API still has the collection, and the preflight checks that it does)
ALL = {"sentinel-2-l2a", "sentinel-2-l1c", "sentinel-1-rtc"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The demo inputs and the default build (static catalogue on disk)."""
    ws = tmp_path_factory.mktemp("stac_wf") / "ws"
    write_workspace(ws)
    run = runner(ws)
    run.ok("--nolock", SUMMARY)
    assert (ws / "inputs" / "tiny" / "scenes" / "catalog.json").is_file()
    return ws, run


def _cube(ws: Path, results: str) -> dict[str, str]:
    root = ws / results / "tiny" / "sentinel" / "tiny.zarr"
    files = [p.relative_to(ws) for p in sorted(root.rglob("*")) if p.is_file()]
    return {str(Path(*Path(k).parts[1:])): v for k, v in checksums(ws, files).items()}


def _month(ws: Path, results: str) -> dict[str, Any]:
    return dict(json.loads(next((ws / results / "tiny" / "sentinel" / "tiny" / "months")
                                .glob("*.json")).read_text()))


def test_demo_sentinel_cube_from_a_loopback_stac_api_equals_the_static_build(
    built: tuple[Path, Any],
) -> None:
    ws, run = built
    archive = ws / "inputs" / "tiny" / "scenes"
    with FakeStac(archive) as srv:
        srv.items = srv.items_from_catalog(archive / "catalog.json")
        srv.collections = ALL
        other = "res_api"
        run.ok("--nolock", f"{other}/tiny/sentinel/tiny/summary.json", config={
            "results_dir": other,
            "sentinel": {"stac": {"url": srv.api, "s1_collection": "sentinel-1-rtc"}},
        })
        assert srv.counters.search_requests >= 3  # L2A, L1C and S1 searches of the month
        gets = [e for e in srv.counters.log
                if e["path"].startswith("/files/") and e["method"] == "GET"]
        assert gets and all(e["status"] == 206 for e in gets)  # COG range reads only
    month = _month(ws, other)
    assert month["source"] == "stac" and month["n_scenes"]["s2"] > 0
    assert month["n_scenes"]["s1"] > 0 and month["skipped_items"] == []
    assert _cube(ws, other) == _cube(ws, RESULTS)


def test_the_cdse_profile_builds_the_demo_from_a_loopback_s3_server(
    built: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("moto")
    from tests.fake_cdse import KEY_ID, SECRET, FakeCdseS3, cdse_items

    ws, run = built
    archive = ws / "inputs" / "tiny" / "scenes"
    other = "res_cdse"
    with FakeCdseS3() as s3, FakeStac(archive) as srv:
        srv.items = cdse_items(archive / "catalog.json", s3, tmp_path / "jp2", srv.file_url)
        assert any(it["collection"] == "sentinel-2-l1c" for it in srv.items)
        srv.collections = ALL
        stac = {"profile": "cdse", "url": srv.api, "s1_collection": "sentinel-1-rtc",
                "s3_endpoint": s3.endpoint}
        # without keys the build stops before any stage runs, saying where to get them
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        res = run.run("--nolock", f"{other}/tiny/sentinel/tiny/summary.json",
                      config={"results_dir": other, "sentinel": {"stac": stac}})
        assert res.returncode != 0 and "eodata-s3keysmanager" in res.stdout + res.stderr, \
            res.stderr[-3000:]
        assert not (ws / other / "tiny" / "sentinel").exists()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        run.ok("--nolock", f"{other}/tiny/sentinel/tiny/summary.json",
               config={"results_dir": other, "sentinel": {"stac": stac}})
    month = _month(ws, other)
    assert month["source"] == "stac" and month["n_scenes"]["s2"] > 0
    assert month["skipped_items"] == []
    assert _cube(ws, other) == _cube(ws, RESULTS)


def test_source_gee_builds_the_demo_cube_the_static_build_makes(
    built: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole Sentinel stage with ``source: gee``: the real client in every month job, the
    fake evaluating its graphs over the demo's scenes. Counts equal; stored S2 DN within 1 (a
    float32 ulp can move a DN's rounding), S1 within 8e-6 dB (docs/sources.md)."""
    import numpy as np

    from pipeline.io.mosaic_read import open_mosaic

    ws, run = built
    archive = ws / "inputs" / "tiny" / "scenes"
    other = "res_gee"
    with FakeEarthEngine(archive=archive) as srv:
        monkeypatch.setenv("EE_API_URL", srv.url)
        monkeypatch.setenv("EE_PROJECT", "test")
        run.ok("--nolock", f"{other}/tiny/sentinel/tiny/summary.json",
               config={"results_dir": other, "sentinel": {"source": "gee"}})
        assert srv.counters.ok_requests > 0 and srv.counters.value_requests > 0
    month = _month(ws, other)
    assert month["source"] == "gee"
    cubes = [ws / r / "tiny" / "sentinel" / "tiny.zarr" for r in (RESULTS, other)]
    with open_mosaic(cubes[0]) as a, open_mosaic(cubes[1]) as b:
        for k in ("s2_count", "s1_count"):
            np.testing.assert_array_equal(b[k].values, a[k].values, err_msg=k)
        assert a["s2_count"].values.max() > 0 and a["s1_count"].values.max() > 0
        s2a, s2b = a["s2"].values, b["s2"].values
        np.testing.assert_array_equal(np.isnan(s2b), np.isnan(s2a))
        np.testing.assert_allclose(s2b, s2a, rtol=0, atol=1.01e-4, equal_nan=True)
        np.testing.assert_allclose(b["s1"].values, a["s1"].values, rtol=0, atol=8e-6,
                                   equal_nan=True)
