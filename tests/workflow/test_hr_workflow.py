"""The HR rules through the snakemake CLI: dry run of tile + footprints, template refusal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.hr_helpers import aoi_spec, write_rgb
from tests.workflow.runner import Snakemake


def _dry_run(snakemake: Snakemake, tmp_path: Path, aois: list[str],
             *targets: str) -> subprocess.CompletedProcess[str]:
    return snakemake.run("-n", "--nolock", *targets, config={
        "results_dir": str(tmp_path / "res"), "aois": aois, "tile": {"patch_size_px": 16},
        "sentinel": {"source": "local"}},
        timeout=120)


def test_snakemake_rules_dry_run_and_template_request(tmp_path: Path,
                                                      snakemake: Snakemake) -> None:
    t1 = write_rgb(tmp_path / "t1.tif")
    t2 = write_rgb(tmp_path / "t2.tif")
    spec = aoi_spec(t1, t2, name="wfa")
    aoi_file = tmp_path / "wfa.yaml"
    # the local source needs the AOI's scene archive (checked when the Snakefile is parsed)
    doc = spec.model_dump(mode="json") | {"sentinel_archive": str(tmp_path)}
    aoi_file.write_text(json.dumps(doc))
    root = tmp_path / "res" / "demo" / "aois"
    ok = _dry_run(snakemake, tmp_path, [str(aoi_file)], str(root / "wfa" / "footprints.parquet"))
    assert ok.returncode == 0, ok.stderr[-3000:]
    out = ok.stdout + ok.stderr
    assert "rule tile:" in out and "rule footprints:" in out
    assert out.count("wildcards: aoi=wfa") == 2
    target = str(root / "fusu-beilin" / "patches.parquet")
    bad = _dry_run(snakemake, tmp_path, [str(aoi_file), "aoi/fusu-beilin.yaml"], target)
    assert bad.returncode != 0
    assert "'fusu-beilin' is a template and cannot be built" in bad.stdout + bad.stderr
