"""Expansion adapters on tiny self-made fixtures: index (CSV / GeoJSON / GeoParquet), pairs,
OSCD, SpaceNet 7, AOI templates; dates, duplicate ids and the no-georeferencing error."""

from __future__ import annotations

import datetime as dt
import json
import math
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
from pipeline.expand.datasets import read_samples
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
    assert idx.loc["p1", "gsd_m"] == 2.0
    # 1e-5 degree pixels at 34.3 N are 0.92 m x 1.11 m on the ground (geodesic, WGS84)
    assert idx.loc["p3", "gsd_m"] == pytest.approx(math.sqrt(0.9205 * 1.1092), rel=2e-3)
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
    # Web Mercator metres are not ground metres: the pixel's size on the ground at its latitude
    lat = math.radians(30.59)
    assert s.hr_crs == "EPSG:3857" and s.gsd_m == pytest.approx(4.7773 * math.cos(lat), rel=5e-3)
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


def test_forced_encoding_contradicted_by_the_data_is_refused(tmp_path: Path) -> None:
    """expand.oscd_change_encoding '0-1' on OSCD's 1/2 labels would turn every no-change pixel
    into change: refused, with the pixel counts and the encoding the data look like."""
    make_oscd(tmp_path, label_values=(1, 2))
    with pytest.raises(InputError, match=r"values \[2\].*'0-1'.*1: 108 px, 2: 12 px.*'1-2'"):
        _index("oscd", tmp_path, oscd_change_encoding="0-1")
    assert set(_index("oscd", tmp_path, oscd_change_encoding="1-2")["label_encoding"]) == {"1-2"}


def test_label_shape_must_match_the_image(tmp_path: Path) -> None:
    make_oscd(tmp_path)
    lab = tmp_path / "abudhabi" / "cm" / "abudhabi-cm.tif"
    write_tif(lab, "EPSG:32640", 230000.0, 2700000.0, 10.0, 11, 10, count=1, value=1)
    with pytest.raises(InputError, match=r"abudhabi.*11x10 px but its image is 12x10"):
        _index("oscd", tmp_path)


def test_every_adapter_records_the_label_encoding(tmp_path: Path) -> None:
    """Pairs (and the index) detect their labels' convention: 0/255 masks say '0-255'."""
    root = make_pairs(tmp_path / "pairs")
    lab_dir = root / "label"
    for f in sorted((root / "t1").glob("*.tif")):
        import rasterio

        with rasterio.open(f) as src:
            h, w, t = src.height, src.width, src.transform
        mask = np.zeros((1, h, w), np.uint8)
        mask[0, 0, 0] = 255
        write_tif(lab_dir / f.name, "EPSG:32649", t.c, t.f, t.a, w, h, count=1, value=mask)
    idx = _index("pairs", root)
    assert set(idx["label_encoding"]) == {"0-255"}


def test_index_path_that_is_a_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"is a folder: point expand\.path at the index file"):
        _index("index", tmp_path)


def test_oscd_split_lists_are_read(tmp_path: Path) -> None:
    make_oscd(tmp_path)
    (tmp_path / "train.txt").write_text("abudhabi,beihai,bercy")
    (tmp_path / "test.txt").write_text("brasilia,lasvegas\n")
    idx = _index("oscd", tmp_path).set_index("sample_id")
    assert idx.loc["abudhabi", "source_split"] == "train"
    assert idx.loc["lasvegas", "source_split"] == "test"


def test_months_before_sentinel_are_reported_or_clipped(tmp_path: Path, caplog) -> None:
    """A LEVIR-style 2008 t1: 84 months before Sentinel-2, reported; clip_to_sentinel starts
    the series at 2015-06."""
    import logging

    from pipeline.expand.adapters import SampleRecord, build_sample_index

    rec = SampleRecord("old", "EPSG:32649", (650000.0, 3790000.0, 650256.0, 3790256.0),
                       (dt.date(2008, 6, 10), dt.date(2016, 1, 5)), 0.5, 512, 512, {})
    with caplog.at_level(logging.WARNING):
        idx = build_sample_index((rec,), "levir")
    assert idx.loc[0, "months_before_s2"] == 84 and idx.loc[0, "month_first"] == "2008-06"
    assert "84 month(s) before Sentinel-2" in caplog.text and "clip_to_sentinel" in caplog.text
    clipped = build_sample_index((rec,), "levir", clip_to_sentinel=True)
    assert clipped.loc[0, "month_first"] == "2015-06" and clipped.loc[0, "n_months"] == 8


def test_dynamicearthnet_layout(tmp_path: Path) -> None:
    """One multi-date sample per cube over its labelled months, the AOI-level split of the
    file that lists it, monthly labels kept per month, the mediatum hyphen spelling found."""
    from tests.expand_helpers import make_dynamicearthnet

    make_dynamicearthnet(tmp_path)
    idx = _index("dynamicearthnet", tmp_path).set_index("sample_id")
    assert list(idx.index) == ["1330_3107_13", "2196_3885_13"]
    a = idx.loc["1330_3107_13"]
    assert (a.month_first, a.month_last, a.n_months) == ("2018-01", "2019-12", 24)
    assert a.source_split == "train" and idx.loc["2196_3885_13", "source_split"] == "test"
    assert a.hr_crs == "EPSG:32610" and a.gsd_m == 3.0 and a.size_px == 32
    assert a.label_encoding == "den-onehot"
    files = json.loads(a.files)
    assert sorted(files["labels"]) == ["2018-01", "2018-02", "2019-12"]
    assert all(Path(p).is_file() for p in files["labels"].values())
    b = json.loads(idx.loc["2196_3885_13", "files"])  # hyphenated label folder
    assert "2196_3885_13-17N" in b["labels"]["2018-01"]
    from pipeline.expand.datasets.dynamicearthnet import read_den_label

    lab = read_den_label(files["labels"]["2019-12"])
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {0, 1}


def test_dynamicearthnet_plan_uses_the_extent_rule(tmp_path: Path, caplog) -> None:
    import logging

    from pipeline.config import FootprintsConfig, SentinelConfig
    from pipeline.expand.drivers import expand_index
    from pipeline.layout import Layout
    from tests.expand_helpers import make_dynamicearthnet

    make_dynamicearthnet(tmp_path / "den")
    cfg = ExpandConfig(adapter="dynamicearthnet", path=str(tmp_path / "den"), plan_only=True)
    with caplog.at_level(logging.WARNING):
        exp = expand_index(cfg, FootprintsConfig(), SentinelConfig(), Layout(tmp_path / "out"),
                           "den")
    # a plan-only run says what it wrote and what it did not build
    assert "plan only (expand.plan_only: true): wrote" in caplog.text
    assert "nothing was fetched and no cube was built" in caplog.text
    # 32 px x 3 m = 96 m cubes + 320 m a side -> 74 px at 10 m (the 5x rule would give 48 px
    # here, but 15 km for the real 1024 px cubes)
    assert set(exp.index["fp_size_px"]) == {74} and exp.plan["totals"]["groups"] == 2
    assert exp.plan["totals"]["group_months"] == 2 * 24


def test_xbd_pairs_are_placed_by_their_label_coordinates(tmp_path: Path, caplog) -> None:
    """xBD PNGs carry no georeferencing; the affine fitted to the labels' pixel / lon-lat
    building vertices places the image; a pair without buildings is a counted skip."""
    import logging

    from pipeline.expand.datasets.xbd import read_xbd_change, xbd_transform
    from tests.expand_helpers import make_xbd

    make_xbd(tmp_path)
    with caplog.at_level(logging.WARNING):
        idx = _index("xbd", tmp_path)
    assert list(idx["sample_id"]) == ["hurricane-harvey_00000001"]
    assert "1 xBD pairs have no building" in caplog.text
    s = idx.iloc[0]
    b = json.loads(s.hr_bounds)
    assert s.hr_crs == "EPSG:4326" and s.source_split == "train" and s.gsd_m == 1.24
    np.testing.assert_allclose(b, [-95.5, 29.8 - 64e-5, -95.5 + 64e-5, 29.8], atol=1e-9)
    assert (s.t1, s.t2) == ("2017-07-01", "2017-08-31") and s.label_encoding == "xbd-damage"
    files = json.loads(s.files)
    tr = xbd_transform(json.loads(Path(files["label_post"]).read_text()))
    np.testing.assert_allclose(tr, [1e-5, 0, -95.5, 0, -1e-5, 29.8], atol=1e-12)
    chg = read_xbd_change(files["label_post"], 64, 64)
    assert chg[45, 35] == 1 and chg[10, 10] == 0 and chg[5, 50] == 255 and chg[63, 0] == 0


def test_xbd_plan_only_reports_footprints_and_costs(tmp_path: Path) -> None:
    """Plan-only on the xBD fixture: the 64 px x ~1 m tile gets the scale rule (5x), placed in
    its UTM zone, with request and byte estimates."""
    from pipeline.config import FootprintsConfig, SentinelConfig
    from pipeline.expand.drivers import expand_index
    from pipeline.layout import Layout
    from tests.expand_helpers import make_xbd

    make_xbd(tmp_path / "xbd")
    cfg = ExpandConfig(adapter="xbd", path=str(tmp_path / "xbd"), plan_only=True)
    lay = Layout(tmp_path / "out")
    exp = expand_index(cfg, FootprintsConfig(), SentinelConfig(), lay, "xbd")
    plan = json.loads(lay.expand_plan().read_text())
    t = plan["totals"]
    assert t["samples"] == 1 and t["group_months"] == 2 and t["requests"] >= 2
    assert t["bytes_est"] > 0 and plan["footprint_mode"] == "scale" and plan["warnings"] == []
    fp = int(exp.index["fp_size_px"].iloc[0])
    assert 25 <= fp <= 40  # 5 x ~61 m (64 px x 1e-5 deg at 29.8 N) / 10 m
    assert int(exp.index["grid_epsg"].iloc[0]) == 32615  # Houston: UTM 15N
