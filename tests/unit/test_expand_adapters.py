"""Expansion adapters on tiny self-made fixtures: index (CSV / GeoJSON / GeoParquet), pairs,
OSCD, SpaceNet 7, AOI templates; dates, duplicate ids and the no-georeferencing error."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from pipeline.config import ExpandConfig
from pipeline.errors import ConfigError, InputError
from pipeline.expand.adapters import (
    build_sample_index,
    change_to_binary,
    detect_change_encoding,
    parse_date,
)
from pipeline.io.change_datasets import read_samples
from tests.expand_helpers import make_levir, make_oscd, make_pairs, make_spacenet7, write_tif


def _index(adapter: str, path: Path | str, **kw) -> gpd.GeoDataFrame:
    cfg = ExpandConfig(adapter=adapter, path=str(path), **kw)
    return build_sample_index(read_samples(cfg), "ds")


def test_parse_date_forms() -> None:
    assert parse_date("2020-03-05", "x") == dt.date(2020, 3, 5)
    assert parse_date("20200305", "x") == dt.date(2020, 3, 5)
    assert parse_date("2020-03", "x") == dt.date(2020, 3, 1)
    assert parse_date("2020-03-05T10:00:00Z", "x") == dt.date(2020, 3, 5)
    with pytest.raises(InputError, match="missing"):
        parse_date("", "row 3")
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        parse_date("05/03/2020", "row 3")


def test_index_csv_mixed_crs_and_paths(tmp_path: Path) -> None:
    img = write_tif(tmp_path / "imgs" / "a1.tif", "EPSG:32650", 500000.0, 3400000.0, 0.5, 40, 40)
    (tmp_path / "index.csv").write_text(
        "id,minx,miny,maxx,maxy,crs,t1,t2,hr_t1,city\n"
        "a,500000,3399980,500020,3400000,EPSG:32650,2019-01-10,2019-03-02,imgs/a1.tif,wuhan\n"
        "b,114.30,30.50,114.31,30.51,4326,2019-05-01,2019-05-20,,wuhan\n"
    )
    idx = _index("index", tmp_path / "index.csv")
    assert list(idx["sample_id"]) == ["a", "b"]
    assert list(idx["hr_crs"]) == ["EPSG:32650", "EPSG:4326"]
    a, b = idx.iloc[0], idx.iloc[1]
    assert (a.month_first, a.month_last, a.n_months) == ("2019-01", "2019-03", 3)
    assert (b.month_first, b.month_last, b.n_months) == ("2019-05", "2019-05", 1)
    assert a.hr_t1 == str(img) and a.size_px == 40 and a.gsd_m == 0.5
    assert np.isnan(b.gsd_m) and b.size_px == 0 and b.hr_t1 == ""
    # geometry is WGS84 and lies where the native bounds are
    assert idx.crs.to_epsg() == 4326
    assert idx.geometry.iloc[1].bounds == pytest.approx((114.30, 30.50, 114.31, 30.51))
    # UTM 50N easting 500 km = the zone's central meridian, 117 E
    assert idx.geometry.iloc[0].centroid.x == pytest.approx(117.0, abs=1e-3)


def test_index_geojson_and_geoparquet_multi_date(tmp_path: Path) -> None:
    g = gpd.GeoDataFrame(
        {"id": ["x1", "x2"], "t1": ["2018-06-01", "2018-01-15"], "t2": ["2018-08-30", ""],
         "dates": ["", "2018-01-15;2018-04-01;2018-12-31"],
         "crs": ["EPSG:4326", ""]},  # a stray crs column never overrides the file's CRS
        geometry=[shapely.box(651000, 3795000, 651100, 3795100),
                  shapely.box(652000, 3795000, 652100, 3795100)],
        crs="EPSG:32649",
    )
    g.to_file(tmp_path / "idx.geojson", driver="GeoJSON")
    g.to_parquet(tmp_path / "idx.parquet")
    for f in ("idx.geojson", "idx.parquet"):
        idx = _index("index", tmp_path / f)
        x2 = idx.set_index("sample_id").loc["x2"]
        assert json.loads(x2.dates) == ["2018-01-15", "2018-04-01", "2018-12-31"]
        assert (x2.t1, x2.t2, x2.n_months) == ("2018-01-15", "2018-12-31", 12)
        assert set(idx["hr_crs"]) == {"EPSG:32649"}


def test_index_missing_dates_and_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "missing.csv").write_text(
        "id,minx,miny,maxx,maxy,crs,t1,t2\na,0,0,10,10,EPSG:32650,2019-01-01,\n")
    with pytest.raises(InputError, match=r"row 1 \(id 'a'\).*date is missing"):
        _index("index", tmp_path / "missing.csv")
    (tmp_path / "dup.csv").write_text(
        "id,minx,miny,maxx,maxy,crs,t1,t2\n"
        "a,0,0,10,10,EPSG:32650,2019-01-01,2019-02-01\n"
        "a,20,0,30,10,EPSG:32650,2019-01-01,2019-02-01\n")
    with pytest.raises(InputError, match=r"duplicate sample ids \['a'\]"):
        _index("index", tmp_path / "dup.csv")
    (tmp_path / "nocrs.csv").write_text(
        "id,minx,miny,maxx,maxy,t1,t2\na,0,0,10,10,2019-01-01,2019-02-01\n")
    with pytest.raises(InputError, match=r"no georeferencing.*sidecar"):
        _index("index", tmp_path / "nocrs.csv")
    (tmp_path / "swap.csv").write_text(
        "id,minx,miny,maxx,maxy,crs,t1,t2\na,0,0,10,10,EPSG:32650,2019-03-01,2019-02-01\n")
    with pytest.raises(InputError, match="before t1"):
        _index("index", tmp_path / "swap.csv")


def test_pairs_folder_mixed_crs_and_dates_json(tmp_path: Path) -> None:
    make_pairs(tmp_path, dates="json")
    # a third pair in geographic coordinates (mixed CRSs within one dataset)
    write_tif(tmp_path / "t1" / "p3.tif", "EPSG:4326", 113.5, 34.3, 1e-5, 20, 20)
    write_tif(tmp_path / "t2" / "p3.tif", "EPSG:4326", 113.5, 34.3, 1e-5, 20, 20)
    d = json.loads((tmp_path / "dates.json").read_text())
    d["p3"] = {"t1": "2021-01-01", "t2": "2021-06-30"}
    (tmp_path / "dates.json").write_text(json.dumps(d))
    idx = _index("pairs", tmp_path).set_index("sample_id")
    assert list(idx.index) == ["p1", "p2", "p3"]
    assert idx.loc["p1", "hr_crs"] == "EPSG:32649" and idx.loc["p3", "hr_crs"] == "EPSG:4326"
    assert idx.loc["p1", "gsd_m"] == 2.0 and np.isnan(idx.loc["p3", "gsd_m"])
    files = json.loads(idx.loc["p1", "files"])
    assert files["t1"].endswith("t1/p1.tif") and files["label"].endswith("label/p1.tif")
    assert idx.loc["p1", "n_months"] == 1 and idx.loc["p2", "n_months"] == 2
    assert idx.loc["p3", "n_months"] == 6


def test_pairs_missing_dates_listed(tmp_path: Path) -> None:
    make_pairs(tmp_path)
    (tmp_path / "dates.csv").write_text("id,t1,t2\np1,2020-03-02,2020-03-25\n")
    with pytest.raises(InputError, match=r"no dates for pairs \['p2'\].*dates.csv"):
        _index("pairs", tmp_path)
    # a '*' row gives every pair the same dates
    (tmp_path / "dates.csv").write_text("id,t1,t2\n*,2020-01-01,2020-02-01\n")
    idx = _index("pairs", tmp_path)
    assert set(idx["t1"]) == {"2020-01-01"}


def test_no_georeferencing_levir_png_and_plain_tif(tmp_path: Path) -> None:
    make_levir(tmp_path / "levir")
    (tmp_path / "levir" / "dates.csv").write_text("id,t1,t2\n*,2002-01-01,2018-01-01\n")
    with pytest.raises(InputError, match=r"train_1\.png.*no georeferencing.*LEVIR-CD.*"
                       r"sidecar.*adapter: index.*never invents"):
        _index("pairs", tmp_path / "levir")
    write_tif(tmp_path / "plain" / "t1" / "a.tif", None, 0, 0, 1, 8, 8)
    write_tif(tmp_path / "plain" / "t2" / "a.tif", None, 0, 0, 1, 8, 8)
    with pytest.raises(InputError, match=r"a\.tif.*no georeferencing"):
        _index("pairs", tmp_path / "plain")


@pytest.mark.parametrize("values,expected", [((1, 2), "1-2"), ((0, 1), "0-1")])
def test_oscd_layout_and_label_encodings(tmp_path: Path, values, expected) -> None:
    make_oscd(tmp_path, label_values=values)
    idx = _index("oscd", tmp_path).set_index("sample_id")
    assert list(idx.index) == ["abudhabi", "lasvegas"]
    a = idx.loc["abudhabi"]
    assert a.hr_crs == "EPSG:32640" and a.gsd_m == 10.0 and (a.width_px, a.height_px) == (12, 10)
    assert (a.t1, a.t2, a.n_months) == ("2016-01-20", "2018-03-28", 27)
    assert a.label_encoding == expected and a.city == "abudhabi"
    assert a.hr_t1.endswith("abudhabi/imgs_1")
    assert json.loads(a.files)["label"].endswith("abudhabi-cm.tif")
    assert idx.loc["lasvegas", "hr_crs"] == "EPSG:32611"


def test_oscd_encoding_helpers_and_missing_dates(tmp_path: Path) -> None:
    assert detect_change_encoding([1, 2], "auto", "x") == "1-2"
    assert detect_change_encoding([1], "auto", "x") == "0-1"
    assert detect_change_encoding([0, 1], "1-2", "x") == "1-2"  # explicit wins
    with pytest.raises(InputError, match="oscd_change_encoding"):
        detect_change_encoding([3, 7], "auto", "x")
    lab = np.array([[0, 1, 2]])
    np.testing.assert_array_equal(change_to_binary(lab, "1-2"), [[255, 0, 1]])
    np.testing.assert_array_equal(change_to_binary(lab, "0-1"), [[0, 1, 255]])
    make_oscd(tmp_path)
    (tmp_path / "lasvegas" / "dates.txt").unlink()
    with pytest.raises(InputError, match=r"lasvegas.*dates\.txt.*date_1"):
        _index("oscd", tmp_path)


def test_spacenet7_multi_date(tmp_path: Path) -> None:
    make_spacenet7(tmp_path)
    idx = _index("spacenet7", tmp_path)
    assert len(idx) == 1
    s = idx.iloc[0]
    assert json.loads(s.dates) == ["2018-01-01", "2018-02-01", "2019-06-01"]
    assert (s.month_first, s.month_last, s.n_months) == ("2018-01", "2019-06", 18)
    assert s.hr_crs == "EPSG:3857" and np.isnan(s.gsd_m)  # Web Mercator units are not metres
    files = json.loads(s.files)
    assert len(files["images"]) == 3 and len(files["labels"]) == 3
    assert files["labels"][0].endswith("_Buildings.geojson")
    lon, lat = idx.geometry.iloc[0].centroid.coords[0]
    assert 120.4 < lon < 120.6 and 30.4 < lat < 30.6


def test_aoi_templates_plan_only(tmp_path: Path) -> None:
    idx = _index("aoi", "aoi/fusu-beilin.yaml", plan_only=True)
    # Beilin extent ~5.98 x 5.77 km -> 23 x 22 patches of 256 m
    assert len(idx) == 23 * 22
    assert idx["sample_id"].iloc[0] == "fusu-beilin_r000_c000"
    assert set(idx["n_months"]) == {25}
    with pytest.raises(ConfigError, match="plan_only"):
        read_samples(ExpandConfig(adapter="aoi", path="aoi/fusu-beilin.yaml"))


def test_missing_paths_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        _index("pairs", tmp_path / "nope")
    with pytest.raises(InputError, match="no OSCD city folders"):
        _index("oscd", tmp_path)
    with pytest.raises(InputError, match="no SpaceNet 7 AOI folders"):
        _index("spacenet7", tmp_path)
