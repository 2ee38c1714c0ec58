"""Annotations that cover nothing fail with the numbers instead of exiting 0 with all-background
labels; multi-layer files are read from their polygon layer or the named one (issue: outputs
you can trust, item 4)."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import shapely

from pipeline.config import LabelsConfig
from pipeline.errors import InputError, LabelError
from pipeline.hr.drivers import label_aoi
from tests.labels_helpers import EPSG, make_tiny_aoi, px_box

COVER = [(px_box(0, 0, 0, 0, 16, 16), 4), (px_box(0, 1, 0, 0, 16, 16), 3)]


def _shifted(features: list, dx: float) -> list:
    return [(shapely.affinity.translate(g, dx, 0), v) for g, v in features]


def test_polygons_far_off_the_image_fail_before_writing(tmp_path: Path) -> None:
    far = _shifted(COVER, 100_000.0)  # 100 km east
    aoi, layout = make_tiny_aoi(tmp_path, far, COVER)
    with pytest.raises(LabelError, match="no polygon touches the image") as info:
        label_aoi(aoi, LabelsConfig(), layout, progress=False)
    assert "T1 annotations" in str(info.value) and "CRS" in str(info.value)
    assert not layout.labels_index("tiny").exists()
    assert not list(layout.labels_dir("tiny", "t1").glob("*.tif"))


def test_polygons_in_the_wrong_crs_fail(tmp_path: Path) -> None:
    aoi, layout = make_tiny_aoi(tmp_path, COVER, COVER)
    # the same coordinates declared in the neighbouring UTM zone: hundreds of km away
    path = Path(aoi.annotations.t2)  # type: ignore[union-attr]
    gdf = gpd.read_file(path)
    gdf.set_crs("EPSG:32650", allow_override=True).to_file(path, driver="GPKG")
    with pytest.raises(LabelError, match=r"T2 annotations .* no polygon touches"):
        label_aoi(aoi, LabelsConfig(), layout, progress=False)


def test_coverage_below_the_limits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sliver = [(px_box(0, 0, 0, 0, 1, 1), 4)]  # 1 px of 512 valid px per date
    aoi, layout = make_tiny_aoi(tmp_path, sliver, sliver)
    with caplog.at_level(logging.WARNING):
        label_aoi(aoi, LabelsConfig(), layout, progress=False)
    assert "only 0.20 % of the valid pixels are labelled" in caplog.text
    layout.labels_index("tiny").unlink()
    with pytest.raises(LabelError, match=r"label 1 of 512 valid pixels \(0\.20 %, limit 50"):
        label_aoi(aoi, LabelsConfig(min_coverage=0.5), layout, progress=False)


def test_unknown_classes_mapped_to_background_cover_nothing(tmp_path: Path) -> None:
    aoi, layout = make_tiny_aoi(tmp_path, [(px_box(0, 0, 0, 0, 16, 16), 99)], COVER)
    with pytest.raises(LabelError, match="label 0 of 512"):
        label_aoi(aoi, LabelsConfig(unknown_classes="background"), layout, progress=False)


def test_multi_layer_geopackage_reads_the_polygon_layer(tmp_path: Path) -> None:
    aoi, layout = make_tiny_aoi(tmp_path, COVER, COVER)
    path = Path(aoi.annotations.t1)  # type: ignore[union-attr]
    polys = gpd.read_file(path)
    # a points layer written first (e.g. survey points), the polygons after it
    layered = tmp_path / "layered.gpkg"
    pts = gpd.GeoDataFrame({"class": [1]}, geometry=[shapely.Point(650001, 3795001)], crs=EPSG)
    pts.to_file(layered, layer="points", driver="GPKG")
    polys.to_file(layered, layer="landuse", driver="GPKG")
    spec = aoi.model_copy(update={"annotations": aoi.annotations.model_copy(  # type: ignore[union-attr]
        update={"t1": str(layered)})})
    label_aoi(spec, LabelsConfig(), layout, progress=False)
    with rasterio.open(layout.labels_dir("tiny", "t1") / "tiny_r000_c001.tif") as ds:
        assert (ds.read(1) == 3).all()
    named = spec.model_copy(update={"annotation_layer": "nope"})
    layout.labels_index("tiny").unlink()
    with pytest.raises(InputError, match=r"no layer 'nope' \(layers: \['points', 'landuse'\]\)"):
        label_aoi(named, LabelsConfig(), layout, progress=False)
