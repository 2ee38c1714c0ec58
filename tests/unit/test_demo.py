"""Tests of the synthetic demo generator (pipeline/demo/city.py) and the demo_inputs stage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from shapely.geometry import box

from pipeline.aoi import AoiDates, AoiSpec
from pipeline.config import DemoConfig
from pipeline.demo import city as demo
from pipeline.demo import city_plan as plan
from pipeline.demo import drivers as demo_inputs
from pipeline.demo import noise
from pipeline.errors import ConfigError

SMALL = DemoConfig(size_m=800.0, gsd_m=2.0, seed=7)


@pytest.fixture(scope="module")
def default_polygons() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    return demo.city_polygons(DemoConfig())


def _aoi(tmp: Path, name: str = "demo", generated: bool = True) -> AoiSpec:
    return AoiSpec(
        name=name,
        city="democity",
        t1=dt.date(2019, 8, 14),
        t2=dt.date(2020, 8, 18),
        images=AoiDates(t1=str(tmp / "hr_t1.tif"), t2=str(tmp / "hr_t2.tif")),
        annotations=AoiDates(t1=str(tmp / "labels_t1.gpkg"), t2=str(tmp / "labels_t2.gpkg")),
        generated=generated,
    )


def _area_changed(t1: gpd.GeoDataFrame, t2: gpd.GeoDataFrame) -> float:
    """Changed area (m2) computed geometrically: labelled area minus same-class overlap."""
    same = 0.0
    for k in range(1, 18):
        a = shapely.union_all(t1.geometry[t1["class"] == k].values)
        b = shapely.union_all(t2.geometry[t2["class"] == k].values)
        same += a.intersection(b).area
    total = max(t1.geometry.area.sum(), t2.geometry.area.sum())
    return total - same


# ----------------------------------------------------------------------------- polygons


def test_default_city_has_all_17_classes_in_both_dates(default_polygons) -> None:
    t1, t2 = default_polygons
    assert sorted(set(t1["class"])) == list(range(1, 18))
    assert sorted(set(t2["class"])) == list(range(1, 18))
    assert t1.crs.to_epsg() == 32649
    assert t1.geometry.is_valid.all() and t2.geometry.is_valid.all()


def test_default_city_covers_the_square_without_overlaps(default_polygons) -> None:
    t1, _ = default_polygons
    cfg = DemoConfig()
    x0, y0 = cfg.origin
    square = box(x0, y0 - cfg.size_m, x0 + cfg.size_m, y0)
    union = shapely.union_all(t1.geometry.values)
    # clean partition: no overlaps, nearly full cover (small unlabelled gaps are background)
    assert union.area == pytest.approx(t1.geometry.area.sum(), rel=1e-6)
    assert 0.97 < union.area / square.area <= 1.0 + 1e-9
    assert square.buffer(1e-6).contains(union)


def test_default_change_fraction_within_10_to_30_percent(default_polygons) -> None:
    t1, t2 = default_polygons
    area = DemoConfig().size_m ** 2
    frac = _area_changed(t1, t2) / area
    assert 0.10 <= frac <= 0.30
    assert frac == pytest.approx(demo.change_fraction(t1, t2, area), abs=0.005)


@pytest.mark.parametrize("target", [0.1, 0.3])
def test_change_fraction_follows_config(target: float) -> None:
    cfg = DemoConfig(size_m=1600.0, change_fraction=target)
    t1, t2 = demo.city_polygons(cfg)
    frac = _area_changed(t1, t2) / cfg.size_m**2
    assert frac == pytest.approx(target, abs=0.04)


def test_changes_are_realistic_transitions(default_polygons) -> None:
    t1, t2 = default_polygons
    pairs = set(zip(t1["class"], t2["class"], strict=True)) - {(k, k) for k in range(18)}
    assert pairs  # something changed
    for a, b in pairs:
        assert b in plan._TRANSITIONS[a] or (a == 4 and b == 8), (a, b)
    assert (4, 3) in pairs  # cropland -> residential (urban expansion)
    # roads and water never change
    fixed = t1["class"].isin([1, 2, 16]).to_numpy()
    assert (t1["class"].to_numpy()[fixed] == t2["class"].to_numpy()[fixed]).all()


@pytest.mark.parametrize(
    "cfg", [SMALL, DemoConfig(size_m=600.0, seed=0), DemoConfig(size_m=600.0, seed=5)]
)
def test_annotations_carry_bowtie_and_overlap_defects(cfg: DemoConfig) -> None:
    a1, a2 = demo.annotation_polygons(cfg)
    for ann in (a1, a2):
        bow = ann[ann["defect"] == "bowtie"]
        assert len(bow) == 1
        g = bow.geometry.iloc[0]
        assert not g.is_valid
        fixed = shapely.make_valid(g)
        assert fixed.geom_type == "MultiPolygon" and len(fixed.geoms) == 2
        assert fixed.area > 300.0
        ov = ann[ann["defect"] == "overlap"]
        assert len(ov) == 3
        clean = ann[ann["defect"] == ""]
        tree = shapely.STRtree(clean.geometry.values)
        for geom in ov.geometry:
            hits = tree.query(geom, predicate="intersects")
            overlap = sum(geom.intersection(clean.geometry.iloc[i]).area for i in hits)
            assert overlap > 50.0  # really overlaps other polygons
    assert set(a1.loc[a1["defect"] == "bowtie", "class"]) == {17}
    assert set(a2.loc[a2["defect"] == "bowtie", "class"]) == {6}


def test_polygons_deterministic_and_seed_dependent() -> None:
    a1, _ = demo.annotation_polygons(SMALL)
    b1, _ = demo.annotation_polygons(SMALL)
    c1, _ = demo.annotation_polygons(DemoConfig(size_m=800.0, gsd_m=2.0, seed=8))
    assert list(shapely.to_wkb(a1.geometry.values)) == list(shapely.to_wkb(b1.geometry.values))
    assert a1["class"].tolist() == b1["class"].tolist()
    assert list(shapely.to_wkb(a1.geometry.values)) != list(shapely.to_wkb(c1.geometry.values))


# ----------------------------------------------------------------------------- rasterising


def test_rasterize_classes_repairs_and_smallest_wins() -> None:
    bowtie = demo._bowtie(15.0, 5.0, 6.0, 6.0)  # triangles left/right of x=15 around y=5
    gdf = gpd.GeoDataFrame(
        {"class": [9, 3, 17]},
        geometry=[box(2, 2, 8, 8), box(0, 0, 20, 10), bowtie],  # small park before big block
        crs="EPSG:32649",
    )
    out = demo.rasterize_classes(gdf, Affine(1, 0, 0, 0, -1, 10), (10, 20))
    assert out.dtype == np.uint8 and out.shape == (10, 20)
    assert (out[3:7, 3:7] == 9).all()  # smaller park wins although it comes first
    assert out[0, 0] == 3 and out[9, 19] == 3
    assert out[5, 13] == 17 and out[5, 16] == 17  # both repaired bow-tie triangles
    assert out[2, 15] == 3  # outside the triangles (above the crossing point's wedge)


def test_rasterize_classes_background_zero_outside() -> None:
    gdf = gpd.GeoDataFrame({"class": [4]}, geometry=[box(0, 0, 5, 5)], crs="EPSG:32649")
    out = demo.rasterize_classes(gdf, Affine(1, 0, 0, 0, -1, 10), (10, 10))
    assert out[9, 0] == 4 and out[0, 9] == 0
    assert int((out == 4).sum()) == 25


def test_value_noise_depends_only_on_coordinates() -> None:
    xs = np.arange(0.0, 50.0, 0.5)
    ys = np.arange(0.0, 30.0, 0.5)
    full = noise.value_noise(xs, ys, 6.0, 3)
    part = noise.value_noise(xs[10:], ys[4:], 6.0, 3)
    assert full.flags.c_contiguous and full.dtype == np.float32
    np.testing.assert_array_equal(full[4:, 10:], part)
    assert full.min() >= 0.0 and full.max() < 1.0 and full.std() > 0.05


def test_grids_t2_shift() -> None:
    cfg = DemoConfig(t2_shift_px=(3.0, -2.0))
    g1, g2 = demo.demo_grids(cfg)
    assert (g1.width, g1.height) == (7200, 7200) == (g2.width, g2.height)
    assert g1.transform == Affine(0.5, 0, 650000.0, 0, -0.5, 3795000.0)
    col, row = ~g1.transform @ (g2.transform.c, g2.transform.f)
    assert (col, row) == pytest.approx((3.0, -2.0))
    assert len(list(g1.windows(512))) == 15 * 15


# ----------------------------------------------------------------------------- stage


@pytest.fixture(scope="module")
def stage_outputs(tmp_path_factory) -> tuple[AoiSpec, dict]:
    tmp = tmp_path_factory.mktemp("demo")
    aoi = _aoi(tmp)
    summary = demo_inputs.demo_inputs(aoi, SMALL, window_px=128)
    return aoi, summary


def test_stage_writes_georeferenced_images(stage_outputs) -> None:
    aoi, summary = stage_outputs
    g1, g2 = demo.demo_grids(SMALL)
    for path, grid in ((aoi.images.t1, g1), (aoi.images.t2, g2)):
        with rasterio.open(path) as src:
            assert src.count == 3 and src.dtypes == ("uint8",) * 3
            assert src.crs.to_epsg() == 32649
            assert src.transform == grid.transform
            assert (src.width, src.height) == (400, 400)
            assert src.nodata == 0
            assert src.profile["tiled"] and src.compression.name.lower() == "deflate"
            img = src.read()
            mask = src.dataset_mask()
        valid = (img > 0).any(0)
        assert ((img > 0).all(0) == valid).all()  # nodata is all-bands 0, valid pixels >= 1
        assert ((mask > 0) == valid).all()
        assert valid.mean() > 0.95
        assert img[:, valid].std() > 15  # textured, not flat
    with rasterio.open(aoi.images.t1) as a, rasterio.open(aoi.images.t2) as b:
        col, row = ~a.transform @ (b.transform.c, b.transform.f)
        assert (col, row) == pytest.approx(SMALL.t2_shift_px)
        assert a.read(1)[0, :].min() > 0  # T1 covers the square fully
        t2 = b.read(1)
        assert t2[-1, -1] == 0  # south-east no-data corner of T2
        assert t2[:, -1].max() == 0  # T2 shifted 3 px east: last column beyond the city
    assert summary["classes_t1"] == list(range(1, 18))


def test_stage_writes_readable_annotations(stage_outputs) -> None:
    aoi, summary = stage_outputs
    for path in (aoi.annotations.t1, aoi.annotations.t2):
        gdf = gpd.read_file(path)
        assert gdf.crs.to_epsg() == 32649
        assert np.issubdtype(gdf["class"].dtype, np.integer)
        assert gdf["class"].between(1, 17).all()
        assert (~gdf.geometry.is_valid).sum() == 1  # the bow-tie survives the round trip
    assert 0.10 <= summary["change_fraction"] <= 0.30
    assert not list(Path(aoi.images.t1).parent.glob(".*tmp*"))  # no temporaries left


def test_image_follows_the_polygons(stage_outputs) -> None:
    aoi, _ = stage_outputs
    ann = gpd.read_file(aoi.annotations.t1)
    g1, _ = demo.demo_grids(SMALL)
    truth = demo.rasterize_classes(ann, g1.transform, (g1.height, g1.width))
    with rasterio.open(aoi.images.t1) as src:
        img = src.read().astype(float)
    means = {k: img[:, truth == k].mean(axis=1) for k in (1, 2, 14) if (truth == k).sum() > 50}
    assert means[2][2] > means[2][0]  # water is bluish
    if 14 in means:
        assert means[14][1] > means[14][0] and means[14].sum() < means[1].sum() + 60


def test_stage_is_deterministic(stage_outputs, tmp_path: Path) -> None:
    aoi, _ = stage_outputs
    again = _aoi(tmp_path)
    demo_inputs.demo_inputs(again, SMALL, window_px=128)
    for a, b in ((aoi.images.t1, again.images.t1), (aoi.images.t2, again.images.t2)):
        with rasterio.open(a) as x, rasterio.open(b) as y:
            np.testing.assert_array_equal(x.read(), y.read())
        assert Path(a).read_bytes() == Path(b).read_bytes()
    ga, gb = gpd.read_file(aoi.annotations.t2), gpd.read_file(again.annotations.t2)
    assert ga["class"].tolist() == gb["class"].tolist()
    assert list(shapely.to_wkb(ga.geometry.values)) == list(shapely.to_wkb(gb.geometry.values))


def test_stage_rejects_non_generated_aoi(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="generated"):
        demo_inputs.demo_inputs(_aoi(tmp_path, generated=False), SMALL)
    assert not (tmp_path / "hr_t1.tif").exists()


def test_t2_content_is_shifted_by_the_configured_pixels(stage_outputs) -> None:
    """T2 pixel (c, r) shows T1 pixel (c + dx, r + dy): aligning by the shift matches best."""
    aoi, _ = stage_outputs
    assert SMALL.t2_shift_px == (3.0, -2.0)
    with rasterio.open(aoi.images.t1) as a, rasterio.open(aoi.images.t2) as b:
        x = a.read().astype(float).mean(0)
        y = b.read().astype(float).mean(0)

    def corr(p: np.ndarray, q: np.ndarray) -> float:
        m = (p > 0) & (q > 0)
        return float(np.corrcoef(p[m], q[m])[0, 1])

    aligned = corr(y[2:, :-3], x[:-2, 3:])
    assert aligned > 0.7
    assert aligned > corr(x, y) + 0.1
    assert aligned > corr(y[:-2, 3:], x[2:, :-3]) + 0.1
