"""What is knowable before the first job fails when the Snakefile is parsed, with a message
naming the file / key and the fix (issue: late failures, path traversal, bad dates)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hr_helpers import aoi_spec, write_rgb
from tests.workflow.runner import Snakemake


def _aoi_file(tmp_path: Path, **fields: object) -> Path:
    t1, t2 = write_rgb(tmp_path / "t1.tif"), write_rgb(tmp_path / "t2.tif")
    doc = aoi_spec(t1, t2, name="own").model_dump(mode="json") | fields
    path = tmp_path / "own.yaml"
    path.write_text(json.dumps(doc))
    return path


def _dry(snakemake: Snakemake, tmp_path: Path, aoi: Path, **config: object) -> str:
    out = snakemake.run("-n", config={"results_dir": str(tmp_path / "res"),
                                      "aois": [str(aoi)], **config})
    assert out.returncode != 0, "expected a parse-time failure"
    return out.stdout + out.stderr


def test_local_source_without_archive_fails_before_any_job(tmp_path: Path,
                                                           snakemake: Snakemake) -> None:
    local = {"source": "local"}
    aoi = _aoi_file(tmp_path)
    text = _dry(snakemake, tmp_path, aoi, sentinel=local)
    assert "AOI 'own'" in text and "no 'sentinel_archive'" in text and str(aoi) in text
    assert "Job stats" not in text  # nothing was planned
    missing = _aoi_file(tmp_path, sentinel_archive=str(tmp_path / "nowhere"))
    text = _dry(snakemake, tmp_path, missing, sentinel=local)
    assert "nowhere does not exist" in text


def test_stac_source_with_a_non_catalogue_archive_fails_before_any_job(
        tmp_path: Path, snakemake: Snakemake) -> None:
    """The default source reads static catalogues: an AOI archive folder without catalog.json
    is refused at parse time, naming the AOI file and the three ways out."""
    aoi = _aoi_file(tmp_path, sentinel_archive=str(tmp_path))
    text = _dry(snakemake, tmp_path, aoi)
    assert "holds no catalog.json" in text and str(aoi) in text and "Job stats" not in text


def test_earth_engine_only_cloud_mask_fails_at_parse_time(tmp_path: Path,
                                                          snakemake: Snakemake) -> None:
    aoi = _aoi_file(tmp_path, sentinel_archive=str(tmp_path))
    for source in ("local", "stac"):
        text = _dry(snakemake, tmp_path, aoi,
                    sentinel={"source": source, "s2_mask": "cloud_score_plus"})
        assert "'cloud_score_plus' exists only on Earth Engine" in text


@pytest.mark.parametrize("city", ["../../../../victim", "a/b", ".hidden"])
def test_city_cannot_escape_the_results_folder(tmp_path: Path, snakemake: Snakemake,
                                               city: str) -> None:
    aoi = _aoi_file(tmp_path, city=city, sentinel_archive=str(tmp_path))
    text = _dry(snakemake, tmp_path, aoi)
    assert "cannot be used as a folder name" in text and str(aoi) in text
    assert not (tmp_path.parent / "victim").exists()


def test_impossible_date_names_the_aoi_file(tmp_path: Path, snakemake: Snakemake) -> None:
    aoi = tmp_path / "bad.yaml"
    aoi.write_text("name: bad\ncity: bad\nt1: 2018-13-01\nt2: 2020-08-15\ntemplate: true\n")
    text = _dry(snakemake, tmp_path, aoi)
    assert f"AOI definition {aoi} has an invalid value" in text and "YYYY-MM-DD" in text
    assert "yaml/constructor.py" not in text  # no PyYAML frames
