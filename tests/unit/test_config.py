"""Config schema: documented defaults, unknown keys, ranges, AOI validation."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from pipeline.aoi import load_aoi, month_range
from pipeline.config import Config, json_schema, load_config, parse_section
from pipeline.config_doc import render
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_config_yaml_is_the_rendered_schema() -> None:
    assert (REPO / "config/config.yaml").read_text() == render(), (
        "config/config.yaml is stale: run `python -m pipeline.config_doc > config/config.yaml`"
    )


def test_schema_json_is_current() -> None:
    assert json.loads((REPO / "config/schema.json").read_text()) == json_schema(), (
        "config/schema.json is stale: run `python -m pipeline.config --write-schema`"
    )


def test_defaults_load_and_roundtrip() -> None:
    cfg = load_config(yaml.safe_load((REPO / "config/config.yaml").read_text()))
    assert cfg == Config()
    assert cfg.section("tile")["patch_size_px"] == 512


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'tile\.patch_sise_px'"):
        load_config({"tile": {"patch_sise_px": 256}})
    with pytest.raises(ConfigError, match=r"unknown key 'bogus'"):
        load_config({"bogus": 1})


def test_ranges_checked() -> None:
    with pytest.raises(ConfigError, match=r"sentinel\.gee\.concurrency"):
        load_config({"sentinel": {"gee": {"concurrency": 41}}})
    with pytest.raises(ConfigError, match=r"cloud_probability_threshold"):
        load_config({"sentinel": {"cloud_probability_threshold": 140}})


def test_split_ratios_must_sum_to_one() -> None:
    with pytest.raises(ConfigError, match="sum to 1"):
        load_config({"splits": {"ratios": {"train": 0.8, "val": 0.1, "test": 0.2}}})


def test_dataset_name_slug() -> None:
    with pytest.raises(ConfigError, match="not a safe name"):
        load_config({"dataset": "my data/set"})


def test_footprint_overrides_exclusive() -> None:
    with pytest.raises(ConfigError, match="at most one"):
        load_config({"footprints": {"size_px": 128, "size_m": 1280}})


def test_parse_section() -> None:
    assert parse_section("tile", {"patch_size_px": 256}).patch_size_px == 256
    with pytest.raises(ConfigError, match="config section 'tile'"):
        parse_section("tile", {"patch_size_px": 2})


def _write_aoi(tmp_path: Path, **over: object) -> Path:
    raw = {
        "name": "x",
        "city": "c",
        "t1": "2018-08-15",
        "t2": "2020-08-15",
        "images": {"t1": "a.tif", "t2": "b.tif"},
        "annotations": {"t1": "a.gpkg", "t2": "b.gpkg"},
    }
    raw.update(over)
    p = tmp_path / "aoi.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.parametrize("bad", ["my aoi", "a/b", "../x", "Caps", ""])
def test_aoi_name_must_be_safe(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match=r"AOI name|name"):
        load_aoi(_write_aoi(tmp_path, name=bad))


def test_aoi_t2_after_t1(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be after t1"):
        load_aoi(_write_aoi(tmp_path, t1="2020-08-15", t2="2018-08-15"))


def test_aoi_missing_file_and_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_aoi(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="required unless 'template: true'"):
        load_aoi(_write_aoi(tmp_path, images=None))


def test_months_inclusive() -> None:
    assert month_range(dt.date(2018, 8, 1), dt.date(2020, 8, 31))[::24] == ["2018-08", "2020-08"]
    assert len(month_range(dt.date(2018, 8, 1), dt.date(2020, 8, 31))) == 25
    assert month_range(dt.date(2019, 12, 30), dt.date(2020, 1, 2)) == ["2019-12", "2020-01"]


def test_bundled_aoi_files_are_valid() -> None:
    files = sorted((REPO / "aoi").glob("*.yaml"))
    specs = [load_aoi(p) for p in files]
    names = {s.name for s in specs}
    assert {
        "demo",
        "fusu-beilin",
        "fusu-yanta",
        "fusu-xincheng",
        "fusu-lianhu",
        "fusu-xiuzhou",
    } <= names
    for s in specs:
        if s.name.startswith("fusu-"):
            assert s.template and len(s.months) == 25 and s.extent_wgs84 is not None


def test_city_and_class_schema_are_safe_path_components() -> None:
    import pytest

    from pipeline.aoi import AoiSpec
    from pipeline.config import load_config
    from pipeline.errors import ConfigError

    base = {"name": "a", "t1": "2019-01-01", "t2": "2020-01-01", "template": True}
    for bad in ("../../victim", "x/y", "..", ".git", "a\\b", ""):
        with pytest.raises(ValueError, match="folder name"):
            AoiSpec.model_validate(base | {"city": bad})
    assert AoiSpec.model_validate(base | {"city": "Xi'an"}).city == "Xi'an"
    with pytest.raises(ConfigError, match=r"labels\.class_schema"):
        load_config({"labels": {"class_schema": "../fusu17"}})


def test_json_outputs_follow_the_umask(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import stat

    from pipeline.io.atomic import FILE_MODE
    from pipeline.io.jsonfile import write_json

    write_json(tmp_path / "a.json", {"x": 1})
    mode = stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode)
    assert mode == FILE_MODE and mode & 0o044  # group/other can read under the usual umask


def test_template_aois_build_nothing_and_say_so() -> None:
    from pipeline.aoi import load_aoi
    from pipeline.config import check_buildable
    from pipeline.errors import ConfigError

    cfg = load_config({})
    tpl, demo = load_aoi("aoi/fusu-beilin.yaml"), load_aoi("aoi/demo.yaml")
    files = {tpl.name: "aoi/fusu-beilin.yaml", demo.name: "aoi/demo.yaml"}
    assert check_buildable(cfg, {demo.name: demo}, files) == []
    lines = check_buildable(cfg, {tpl.name: tpl, demo.name: demo}, files)
    assert lines == [f"AOI {tpl.name!r} (aoi/fusu-beilin.yaml) is a template: nothing is built "
                     "for it (fill in 'images' and 'annotations' and set 'template: false' to "
                     "build it)"]
    with pytest.raises(ConfigError, match=r"every AOI of this run is a template.*plan_only: "
                                          r"true"):
        check_buildable(cfg, {tpl.name: tpl}, files)
    planned = load_config({"expand": {"adapter": "aoi", "path": "aoi/fusu-beilin.yaml",
                                      "plan_only": True}})
    assert len(check_buildable(planned, {tpl.name: tpl}, files)) == 1  # the expansion builds
