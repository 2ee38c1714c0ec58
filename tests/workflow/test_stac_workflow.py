"""`snakemake` builds the demo's Sentinel cube from a STAC API on loopback (the demo's generated
catalogue served by tests/fake_stac.py, read by pystac-client and GDAL over HTTP) and gets the
same cube as the default build from the catalogue on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fake_stac import FakeStac
from tests.workflow.cluster_helpers import RESULTS, checksums, runner, write_workspace

pytestmark = pytest.mark.slow

SUMMARY = f"{RESULTS}/tiny/sentinel/tiny/summary.json"


def test_demo_sentinel_cube_from_a_loopback_stac_api_equals_the_static_build(
    tmp_path: Path,
) -> None:
    import json

    ws = tmp_path / "ws"
    write_workspace(ws)
    run = runner(ws)
    run.ok("--nolock", SUMMARY)  # the demo inputs and the default build (static catalogue on disk)
    archive = ws / "inputs" / "tiny" / "scenes"
    assert (archive / "catalog.json").is_file()
    with FakeStac(archive) as srv:
        srv.items = srv.items_from_catalog(archive / "catalog.json")
        other = "res_api"
        run.ok("--nolock", f"{other}/tiny/sentinel/tiny/summary.json", config={
            "results_dir": other,
            "sentinel": {"stac": {"url": srv.api, "s1_collection": "sentinel-1-rtc"}},
        })
        assert srv.counters.search_requests >= 3  # L2A, L1C and S1 searches of the month
        gets = [e for e in srv.counters.log
                if e["path"].startswith("/files/") and e["method"] == "GET"]
        assert gets and all(e["status"] == 206 for e in gets)  # COG range reads only
    month = json.loads(next((ws / other / "tiny" / "sentinel" / "tiny" / "months")
                            .glob("*.json")).read_text())
    assert month["source"] == "stac" and month["n_scenes"]["s2"] > 0
    assert month["n_scenes"]["s1"] > 0 and month["skipped_items"] == []

    def cube(results: str) -> dict[str, str]:
        root = ws / results / "tiny" / "sentinel" / "tiny.zarr"
        files = [p.relative_to(ws) for p in sorted(root.rglob("*")) if p.is_file()]
        return {str(Path(*Path(k).parts[1:])): v for k, v in checksums(ws, files).items()}

    assert cube(other) == cube(RESULTS)
