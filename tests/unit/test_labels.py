"""Labels: class mapping, geometry repair, overlap rules, rasterization, stage run + bad inputs."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize

from pipeline.classes import load_schema
from pipeline.config import LabelsConfig
from pipeline.errors import InputError, LabelError, PipelineError
from pipeline.hr.drivers import label_aoi
from pipeline.hr.labels import (
    apply_nodata,
    burn_order,
    class_histogram,
    histogram_columns,
    label_patch,
    map_class_values,
    parse_class_mapping,
    prepare_polygons,
    rasterize_patch,
    repair_geometries,
)
from pipeline.io.tables import read_class_mapping
from pipeline.io.vector import read_annotations
from tests.labels_helpers import EPSG, SIZE, make_tiny_aoi, patch_transform, px_box

SCHEMA = load_schema("fusu17")
# 20 x 20 px grid, 1 m pixels, upper-left (1000, 2000)
TR = Affine(1.0, 0.0, 1000.0, 0.0, -1.0, 2000.0)
SHAPE = (20, 20)


def gdf_of(features: list[tuple[object, object]], crs: str = EPSG, attr: str = "class"):
    return gpd.GeoDataFrame(
        {attr: [v for _, v in features]}, geometry=[g for g, _ in features], crs=crs
    )


def burn(features, rule="smallest", tr=TR, shape=SHAPE, all_touched=False, crs=EPSG):
    polys = prepare_polygons(gdf_of(features, crs=crs), "class", EPSG, SCHEMA, overlap_rule=rule)
    return rasterize_patch(polys, tr, shape, all_touched=all_touched), polys


def box_px(c0, r0, c1, r1, tr=TR):
    """Box from pixel edges (col, row) on grid ``tr``."""
    x0, y0 = tr @ (c0, r0)
    x1, y1 = tr @ (c1, r1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


# --------------------------------------------------------------------------- rasterization


def test_rasterize_square_known_answer() -> None:
    out, _ = burn([(box_px(2, 3, 5, 7), 4)])
    expected = np.zeros(SHAPE, np.uint8)
    expected[3:7, 2:5] = 4
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8


@pytest.mark.parametrize("all_touched", [False, True])
def test_rasterize_matches_rasterio_whole_grid(all_touched: bool) -> None:
    rng = np.random.default_rng(3)
    feats = []
    for v in (1, 3, 7, 11, 14):  # disjoint circles -> order does not matter
        cx, cy = rng.uniform(1003, 1017), rng.uniform(1983, 1997)
        feats.append((shapely.Point(cx, cy).buffer(rng.uniform(1.5, 3.5)), v))
    # a polygon much larger than the grid (exercises the STRtree query + clipping)
    big = shapely.Polygon([(900, 1900), (1100, 1900), (1100, 1990.3), (900, 1990.3)])
    feats.append((big.difference(shapely.box(1000, 1980, 1020, 2000).buffer(-0.0)), 17))
    feats = [f for f in feats if not f[0].is_empty]
    # make them disjoint for a rule-independent reference
    geoms, vals = [], []
    acc = shapely.Polygon()
    for g, v in feats:
        g2 = g.difference(acc)
        acc = acc.union(g)
        if not g2.is_empty:
            geoms.append(g2)
            vals.append(v)
    # all_touched lets neighbours share edge pixels: burn in file order like the reference
    ours, _ = burn(list(zip(geoms, vals, strict=True)), rule="last", all_touched=all_touched)
    ref = rasterize(
        list(zip(geoms, vals, strict=True)),
        out_shape=SHAPE,
        transform=TR,
        fill=0,
        dtype=np.uint8,
        all_touched=all_touched,
    )
    np.testing.assert_array_equal(ours, ref)
    assert len(np.unique(ours)) >= 4


def test_rasterize_big_polygon_clipped_equals_unclipped() -> None:
    # huge, many-vertex polygon: clipping to the patch must not change the burn
    big = shapely.Point(1010.3, 1990.7).buffer(500, quad_segs=256)
    hole = shapely.Point(1008.2, 1991.1).buffer(4.3)
    poly = big.difference(hole)
    ours, _ = burn([(poly, 9)])
    ref = rasterize([(poly, 9)], out_shape=SHAPE, transform=TR, fill=0, dtype=np.uint8)
    np.testing.assert_array_equal(ours, ref)
    assert (ours == 0).sum() > 20  # the hole is there


def test_rasterize_only_local_polygons() -> None:
    far = shapely.box(5000, 5000, 5010, 5010)
    out, polys = burn([(far, 3)])
    assert len(polys) == 1
    assert (out == 0).all()


# --------------------------------------------------------------------------- overlap rules

BIG = box_px(0, 0, 10, 10)
SMALL = box_px(2, 2, 5, 5)


@pytest.mark.parametrize("small_first", [True, False])
def test_overlap_smallest_wins_regardless_of_order(small_first: bool) -> None:
    feats = [(SMALL, 5), (BIG, 3)] if small_first else [(BIG, 3), (SMALL, 5)]
    out, _ = burn(feats, rule="smallest")
    assert (out[2:5, 2:5] == 5).all()
    assert out[0, 0] == 3 and out[9, 9] == 3
    assert (out == 5).sum() == 9 and (out == 3).sum() == 100 - 9


@pytest.mark.parametrize("small_first, winner", [(True, 3), (False, 5)])
def test_overlap_last_wins(small_first: bool, winner: int) -> None:
    feats = [(SMALL, 5), (BIG, 3)] if small_first else [(BIG, 3), (SMALL, 5)]
    out, _ = burn(feats, rule="last")
    assert (out[2:5, 2:5] == winner).all()


def test_overlap_smallest_tie_later_feature_wins() -> None:
    a, b = box_px(0, 0, 6, 6), box_px(3, 3, 9, 9)  # equal areas
    out, _ = burn([(a, 1), (b, 2)], rule="smallest")
    assert out[4, 4] == 2
    out, _ = burn([(b, 2), (a, 1)], rule="smallest")
    assert out[4, 4] == 1


def test_overlap_priority_rule() -> None:
    # traffic land (1) has the highest priority in fusu17, above residential (3)
    out, _ = burn([(SMALL, 3), (BIG, 1)], rule="priority")
    assert (out[:10, :10] == 1).all()


def test_burn_order_permutations() -> None:
    vals = np.array([3, 5, 1], np.uint8)
    areas = np.array([10.0, 1.0, 10.0])
    np.testing.assert_array_equal(burn_order(vals, areas, "last"), [0, 1, 2])
    np.testing.assert_array_equal(burn_order(vals, areas, "smallest"), [0, 2, 1])
    np.testing.assert_array_equal(burn_order(vals, areas, "priority", SCHEMA), [1, 0, 2])
    with pytest.raises(ValueError):
        burn_order(vals, areas, "priority")


# --------------------------------------------------------------------------- geometry repair


def test_bowtie_repaired_and_burned(caplog: pytest.LogCaptureFixture) -> None:
    bowtie = shapely.Polygon([(1002, 1998), (1010, 1990), (1010, 1998), (1002, 1990)])
    assert not bowtie.is_valid
    with caplog.at_level(logging.INFO, logger="pipeline.hr.labels"):
        out, polys = burn([(bowtie, 6)])
    assert polys.stats["repaired"] == 1
    assert "1 invalid geometries repaired" in caplog.text
    fixed = shapely.make_valid(bowtie)
    ref = rasterize([(fixed, 6)], out_shape=SHAPE, transform=TR, fill=0, dtype=np.uint8)
    np.testing.assert_array_equal(out, ref)
    # both triangles of the bow-tie are burned (left and right lobes)
    assert out[4, 3] == 6 and out[4, 9] == 6
    assert abs((out == 6).sum() - fixed.area) <= 8


def test_repair_keeps_polygonal_parts_drops_rest() -> None:
    geoms = np.array(
        [
            shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)]),  # bow-tie
            shapely.Polygon(),  # empty
            shapely.LineString([(0, 0), (1, 1)]),
            None,
            shapely.GeometryCollection([shapely.box(0, 0, 1, 1), shapely.Point(5, 5)]),
        ],
        dtype=object,
    )
    out, n = repair_geometries(geoms)
    assert n == 1
    kinds = [shapely.get_type_id(g) for g in out]
    assert kinds[0] == 6 and kinds[4] == 6
    assert shapely.is_empty(out[1]) and shapely.is_empty(out[2]) and shapely.is_empty(out[3])


def test_prepare_drops_empty_and_non_polygon() -> None:
    feats = [
        (box_px(0, 0, 2, 2), 1),
        (shapely.Polygon(), 2),
        (shapely.Point(1005, 1995), 3),
        (shapely.LineString([(1000, 2000), (1010, 1990)]), 4),
    ]
    polys = prepare_polygons(gdf_of(feats), "class", EPSG, SCHEMA)
    assert len(polys) == 1
    assert polys.stats["dropped_non_polygon"] == 2
    assert polys.stats["dropped_empty"] == 1
    assert polys.stats["kept"] == 1


def test_reprojection_wgs84_polygons_onto_utm_grid() -> None:
    utm = [(box_px(2.25, 3.25, 9.25, 8.25), 2), (box_px(11.25, 11.25, 17.25, 18.25), 12)]
    ref, _ = burn(utm)
    wgs = gdf_of(utm).to_crs("EPSG:4326")
    assert wgs.crs.to_epsg() == 4326
    polys = prepare_polygons(wgs, "class", EPSG, SCHEMA)
    out = rasterize_patch(polys, TR, SHAPE)
    np.testing.assert_array_equal(out, ref)
    assert (out == 2).sum() == 7 * 5 and (out == 12).sum() == 6 * 7


def test_nodata_outside_imagery() -> None:
    polys = prepare_polygons(gdf_of([(box_px(0, 0, 20, 20), 4)]), "class", EPSG, SCHEMA)
    valid = np.ones(SHAPE, bool)
    valid[:, :5] = False
    out = label_patch(polys, TR, valid)
    assert (out[:, :5] == 255).all() and (out[:, 5:] == 4).all()
    lab = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError):
        apply_nodata(lab, np.ones((3, 3), bool))


def test_class_histogram() -> None:
    lab = np.array([[0, 1, 1], [17, 255, 255]], np.uint8)
    h = class_histogram(lab, SCHEMA)
    assert h.tolist() == [1, 2] + [0] * 15 + [1, 2]
    assert histogram_columns("t1", SCHEMA)[-1] == "t1_px_255"
    with pytest.raises(ValueError, match="outside"):
        class_histogram(np.array([[18]], np.uint8), SCHEMA)


# --------------------------------------------------------------------------- class mapping


def test_direct_mapping_codes_and_names() -> None:
    vals, unk = map_class_values([3, "3", 4.0, "orchard", "PARK", "Grass", 0], SCHEMA)
    assert vals.tolist() == [3, 3, 4, 8, 9, 17, 0]
    assert unk == {}


def test_mapping_csv_by_name_and_by_code(tmp_path: Path) -> None:
    csv = tmp_path / "map.csv"
    csv.write_text("source,target\nroad,Traffic land\nlake,2\n101,residential land\n102,9\n")
    mapping = parse_class_mapping(read_class_mapping(csv), SCHEMA)
    vals, _ = map_class_values(["Road", "LAKE", 101, "102", 101.0], SCHEMA, mapping)
    assert vals.tolist() == [1, 2, 3, 9, 3]
    # with a mapping, FUSU codes not in the CSV are unknown
    with pytest.raises(LabelError, match="class_mapping"):
        map_class_values([5], SCHEMA, mapping)


def test_unknown_classes_error_lists_values_and_counts() -> None:
    with pytest.raises(LabelError) as err:
        map_class_values(["foo", 3, "foo", 99, None, "bar", "foo"], SCHEMA, where="AOI 'x' T1")
    msg = str(err.value)
    assert "'foo' (3 features)" in msg
    assert "99 (1 features)" in msg
    assert "'bar' (1 features)" in msg
    assert "<missing> (1 features)" in msg
    assert "AOI 'x' T1" in msg and "unknown_classes: background" in msg


def test_unknown_classes_background_option(caplog: pytest.LogCaptureFixture) -> None:
    vals, unk = map_class_values(["foo", 3, "foo", 99], SCHEMA, unknown="background")
    assert vals.tolist() == [0, 3, 0, 0]
    assert unk == {"'foo'": 2, "99": 1}
    feats = [(box_px(0, 0, 4, 4), "foo"), (box_px(5, 5, 8, 8), 7)]
    with caplog.at_level(logging.WARNING, logger="pipeline.hr.labels"):
        polys = prepare_polygons(gdf_of(feats), "class", EPSG, SCHEMA, unknown="background")
    assert "'foo': 1" in caplog.text
    out = rasterize_patch(polys, TR, SHAPE)
    assert (out[:4, :4] == 0).all() and (out[5:8, 5:8] == 7).all()


def test_mapping_bad_targets_and_conflicts() -> None:
    with pytest.raises(LabelError, match="not a value or class name"):
        parse_class_mapping([("a", "greenbelt")], SCHEMA)
    with pytest.raises(LabelError, match="not a value or class name"):
        parse_class_mapping([("a", "18")], SCHEMA)
    with pytest.raises(LabelError, match="mapped to both"):
        parse_class_mapping([("a", "1"), ("A", "2")], SCHEMA)
    assert parse_class_mapping([("cloud", "no data")], SCHEMA) == {"cloud": 255}


# --------------------------------------------------------------------------- bad input files


@pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")
def test_read_annotations_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_annotations(tmp_path / "nope.gpkg", "class", what="AOI 'x' T1 annotations")
    junk = tmp_path / "junk.gpkg"
    junk.write_text("not a geopackage")
    with pytest.raises(InputError, match="cannot be read"):
        read_annotations(junk, "class")
    empty = tmp_path / "empty.gpkg"
    gdf_of([(box_px(0, 0, 1, 1), 1)]).iloc[:0].to_file(empty, driver="GPKG")
    with pytest.raises(InputError, match="no features"):
        read_annotations(empty, "class")
    noattr = tmp_path / "noattr.gpkg"
    gdf_of([(box_px(0, 0, 1, 1), 1)], attr="landuse").to_file(noattr, driver="GPKG")
    with pytest.raises(LabelError, match=r"no attribute 'class'.*landuse.*class_attribute"):
        read_annotations(noattr, "class")
    nocrs = tmp_path / "nocrs.geojson"
    gpd.GeoDataFrame({"class": [1]}, geometry=[box_px(0, 0, 1, 1)]).to_file(nocrs, driver="GeoJSON")
    # GeoJSON is WGS84 by definition: a file without CRS info still reads with EPSG:4326
    assert read_annotations(nocrs, "class").crs is not None
    nocrs_shp = tmp_path / "nocrs.shp"
    gpd.GeoDataFrame({"class": [1]}, geometry=[box_px(0, 0, 1, 1)]).to_file(nocrs_shp)
    with pytest.raises(InputError, match="no CRS"):
        read_annotations(nocrs_shp, "class")


def test_read_class_mapping_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_class_mapping(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("from,to\na,1\n")
    with pytest.raises(InputError, match="source,target"):
        read_class_mapping(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("source,target\n")
    with pytest.raises(InputError, match="no rows"):
        read_class_mapping(empty)
    hole = tmp_path / "hole.csv"
    hole.write_text("source,target\na,\n")
    with pytest.raises(InputError, match="line 2"):
        read_class_mapping(hole)


# --------------------------------------------------------------------------- stage


def _features():
    t1 = [
        (px_box(0, 0, 0, 0, 16, 16), 4),  # cropland over patch 0
        (px_box(0, 0, 4, 4, 8, 8), 3),  # residential inside it (smaller: wins)
        (px_box(0, 1, 0, 0, 8, 16), "Park"),  # left half of patch 1, by name
    ]
    t2 = [
        (px_box(0, 0, 0, 0, 16, 16), 3),
        (px_box(0, 1, 0, 0, 8, 16), 9),
        (shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), 2),  # bow-tie far away
    ]
    return t1, t2


def test_stage_labels_tiny_aoi(tmp_path: Path) -> None:
    t1, t2 = _features()
    aoi, layout = make_tiny_aoi(tmp_path, t1, t2, t2_nodata_cols=3, ann_crs="EPSG:4326")
    index = label_aoi(aoi, LabelsConfig(), layout, progress=False)
    assert index == layout.labels_index("tiny")
    df = pd.read_parquet(index)
    assert df["patch_id"].tolist() == ["tiny_r000_c000", "tiny_r000_c001"]
    p0 = layout.root / df.loc[0, "label_t1"]
    with rasterio.open(p0) as ds:
        lab = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255
        assert ds.crs.to_string() == EPSG
        assert ds.transform.almost_equals(patch_transform(0, 0))
        cmap = ds.colormap(1)
        assert cmap[8] == (184, 233, 134, 255) and cmap[2] == (8, 255, 230, 255)
        assert ds.compression is not None
    expected = np.full((SIZE, SIZE), 4, np.uint8)
    expected[4:8, 4:8] = 3
    np.testing.assert_array_equal(lab, expected)
    with rasterio.open(layout.root / df.loc[1, "label_t2"]) as ds:
        lab2 = ds.read(1)
    assert (lab2[:, :3] == 255).all()  # T2 HR no data
    assert (lab2[:, 3:8] == 9).all() and (lab2[:, 8:] == 0).all()
    # histograms
    assert df.loc[0, "t1_px_4"] == 256 - 16 and df.loc[0, "t1_px_3"] == 16
    assert df.loc[0, "t2_px_255"] == 3 * 16 and df.loc[0, "t2_px_3"] == 256 - 48
    assert df.loc[1, "t1_px_9"] == 128 and df.loc[1, "t1_px_0"] == 128
    cols = histogram_columns("t1", SCHEMA) + histogram_columns("t2", SCHEMA)
    assert (df[cols].sum(axis=1) == 2 * 256).all()

    # rerun with identical inputs: nothing rewritten
    mtime = p0.stat().st_mtime_ns
    label_aoi(aoi, LabelsConfig(), layout, progress=False)
    assert p0.stat().st_mtime_ns == mtime
    # interrupted run (index missing) reuses tifs; changed settings discard them
    index.unlink()
    label_aoi(aoi, LabelsConfig(), layout, progress=False)
    assert p0.stat().st_mtime_ns == mtime
    label_aoi(aoi, LabelsConfig(overlap_rule="last"), layout, progress=False)
    with rasterio.open(p0) as ds:
        assert (ds.read(1)[4:8, 4:8] == 3).all()  # residential is also later in the file
    assert pd.read_parquet(index).equals(df)


def test_stage_unknown_classes_leave_no_outputs(tmp_path: Path) -> None:
    t1, t2 = _features()
    t2 = [*t2, (px_box(0, 0, 0, 0, 2, 2), "greenbelt"), (px_box(0, 0, 0, 0, 2, 2), "greenbelt")]
    aoi, layout = make_tiny_aoi(tmp_path, t1, t2)
    with pytest.raises(LabelError, match=r"'greenbelt' \(2 features\)") as err:
        label_aoi(aoi, LabelsConfig(), layout, progress=False)
    assert "T2 annotations" in str(err.value) and "tiny" in str(err.value)
    assert not layout.labels_index("tiny").exists()
    assert not list(layout.aoi_dir("tiny").glob("labels/*/*.tif"))
    label_aoi(aoi, LabelsConfig(unknown_classes="background"), layout, progress=False)
    df = pd.read_parquet(layout.labels_index("tiny"))
    assert df.loc[0, "t2_px_0"] == 4  # greenbelt square -> background


def test_stage_class_mapping_csv(tmp_path: Path) -> None:
    csv = tmp_path / "map.csv"
    csv.write_text("source,target\nfarm,cropland\nhouse,3\ngarden,Orchard\n")
    t1 = [(px_box(0, 0, 0, 0, 16, 16), "farm"), (px_box(0, 0, 0, 0, 4, 4), "HOUSE")]
    t2 = [(px_box(0, 0, 0, 0, 16, 16), "garden")]
    aoi, layout = make_tiny_aoi(tmp_path, t1, t2, patches=((0, 0),), class_mapping=str(csv))
    label_aoi(aoi, LabelsConfig(), layout, progress=False)
    df = pd.read_parquet(layout.labels_index("tiny"))
    assert (df.loc[0, "t1_px_4"], df.loc[0, "t1_px_3"], df.loc[0, "t2_px_8"]) == (240, 16, 256)


def test_stage_bad_inputs(tmp_path: Path) -> None:
    t1, t2 = _features()
    aoi, layout = make_tiny_aoi(tmp_path, t1, t2)
    cfg = LabelsConfig()
    # template AOI
    tmpl = aoi.model_copy(update={"template": True, "annotations": None})
    with pytest.raises(InputError, match="template"):
        label_aoi(tmpl, cfg, layout, progress=False)
    # wrong class attribute
    with pytest.raises(LabelError, match="class_attribute"):
        label_aoi(
            aoi.model_copy(update={"class_attribute": "lu"}), cfg, layout, progress=False
        )
    # missing annotation file
    ann = aoi.annotations.model_copy(update={"t2": str(tmp_path / "gone.gpkg")})
    with pytest.raises(InputError, match=r"gone\.gpkg does not exist.*annotations"):
        label_aoi(aoi.model_copy(update={"annotations": ann}), cfg, layout, progress=False)
    # missing class mapping CSV
    with pytest.raises(InputError, match="class_mapping"):
        label_aoi(
            aoi.model_copy(update={"class_mapping": str(tmp_path / "m.csv")}),
            cfg,
            layout,
            progress=False,
        )
    # missing HR patch
    hr = layout.hr_dir("tiny", "t2") / "tiny_r000_c001.tif"
    hr.rename(hr.with_suffix(".bak"))
    with pytest.raises(InputError, match=r"T2 HR patch tiny_r000_c001.*does not exist"):
        label_aoi(aoi, cfg, layout, progress=False)
    assert not layout.labels_index("tiny").exists()
    hr.with_suffix(".bak").rename(hr)
    # tile index without the required columns
    idx = pd.read_parquet(layout.patches("tiny")).drop(columns=["hr_t2"])
    idx.to_parquet(layout.patches("tiny"))
    with pytest.raises(InputError, match=r"lacks columns \['hr_t2'\]"):
        label_aoi(aoi, cfg, layout, progress=False)
    layout.patches("tiny").unlink()
    with pytest.raises(PipelineError, match=r"patches\.parquet does not exist"):
        label_aoi(aoi, cfg, layout, progress=False)


def test_stage_empty_annotation_file(tmp_path: Path) -> None:
    t1, _ = _features()
    aoi, layout = make_tiny_aoi(tmp_path, t1, [(box_px(0, 0, 1, 1), 1)])
    gpd.read_file(aoi.annotations.t2).iloc[:0].to_file(aoi.annotations.t2, driver="GPKG")
    with pytest.raises(InputError, match=r"labels_t2\.gpkg has no features"):
        label_aoi(aoi, LabelsConfig(), layout, progress=False)


def test_stage_t2_patch_off_grid(tmp_path: Path) -> None:
    from pipeline.io.geotiff import write_patch_tif

    t1, t2 = _features()
    aoi, layout = make_tiny_aoi(tmp_path, t1, t2, patches=((0, 0),))
    hr = layout.hr_dir("tiny", "t2") / "tiny_r000_c000.tif"
    shifted = patch_transform(0, 0) @ Affine.translation(0.5, 0)
    write_patch_tif(hr, np.ones((3, SIZE, SIZE), np.uint8), shifted, EPSG, 0)
    with pytest.raises(InputError, match="not on the T1 patch grid"):
        label_aoi(aoi, LabelsConfig(), layout, progress=False)


def test_stage_no_patches_still_validates_classes(tmp_path: Path) -> None:
    t1, t2 = _features()
    aoi, layout = make_tiny_aoi(tmp_path, [*t1, (box_px(0, 0, 1, 1), 99)], t2)
    idx = gpd.read_parquet(layout.patches("tiny")).iloc[:0]
    idx.to_parquet(layout.patches("tiny"))
    with pytest.raises(LabelError, match=r"'?99'? \(1 features\)"):
        label_aoi(aoi, LabelsConfig(), layout, progress=False)
    label_aoi(aoi, LabelsConfig(unknown_classes="background"), layout, progress=False)
    assert len(pd.read_parquet(layout.labels_index("tiny"))) == 0
