"""STAC metadata (pipeline.dataset.stac_collection + stages.stac): structure, extensions,
offline validation.

pystac's validator needs the JSON schemas; the core Item / Collection schemas ship with pystac
(``pystac.validation.local_validator``), extension schemas do not. So the core is validated
with pystac's own validator against the bundled schemas (the socket guard in conftest fails the
test if anything tries the network), and the projection / label extension fields are checked
by hand against the extension specs' required fields.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import pandas as pd
import pystac
import pytest
import shapely
from pystac.validation.stac_validator import JsonSchemaSTACValidator

from pipeline.aoi import AoiSpec
from pipeline.config import SplitsConfig
from pipeline.dataset.drivers import assemble_dataset, stac_collection
from pipeline.layout import Layout
from tests.splits_helpers import HR_GSD, HR_PX, make_native_aoi

warnings.filterwarnings("ignore", message=".*Zarr V3 specification.*")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, Path]:
    lay = Layout(tmp_path_factory.mktemp("stac"))
    make_native_aoi(lay, "xa", "xian", nrow=4, ncol=4)
    spec = AoiSpec(name="xa", city="xian", t1="2019-08-14", t2="2019-10-18", template=True)
    assemble_dataset([spec], SplitsConfig(mode="random"), lay)
    return lay, stac_collection([spec], lay, dataset="demo")


def test_collection_is_self_contained_with_one_item_per_patch(built) -> None:
    lay, path = built
    assert path == lay.stac_dir() / "collection.json"
    coll = pystac.Collection.from_file(str(path))
    items = list(coll.get_items())
    idx = pd.read_parquet(lay.index(), columns=["patch_id", "split"])
    assert sorted(i.id for i in items) == sorted(idx["patch_id"])
    assert coll.id == "demo"
    on_disk = json.loads(path.read_text())
    assert not any(link["rel"] == "self" for link in on_disk["links"])  # self-contained
    for link in on_disk["links"]:
        assert not link["href"].startswith("/"), link  # relative links only
    item = next(i for i in items if i.id == "xa_r001_c002")
    d = item.to_dict()
    for asset in d["assets"].values():
        assert asset["href"].startswith("../../"), asset
    for key in ("hr_t1", "hr_t2", "label_t1", "label_t2", "change_bin", "change_fromto",
                "sentinel"):
        assert Path(item.assets[key].get_absolute_href()).exists(), key
    assert item.assets["sentinel"].media_type == "application/vnd+zarr"
    assert item.assets["label_t1"].roles == ["labels"]


def test_item_dates_projection_and_labels(built) -> None:
    _, path = built
    coll = pystac.Collection.from_file(str(path))
    item = coll.get_item("xa_r001_c002", recursive=True)
    d = item.to_dict()
    p = d["properties"]
    assert p["datetime"] is None
    assert p["start_datetime"] == "2019-08-14T00:00:00Z"
    assert p["end_datetime"] == "2019-10-18T00:00:00Z"
    assert p["gsd"] == HR_GSD
    assert p["fusu:split"] in {"train", "val", "test"}
    assert p["fusu:months"] == ["2019-08", "2019-09", "2019-10"]
    # projection extension
    assert any("projection" in e for e in d["stac_extensions"])
    assert p["proj:code"] == "EPSG:32649"
    assert p["proj:shape"] == [HR_PX, HR_PX]
    x0, y0 = 650000.0 + 2 * HR_PX * HR_GSD, 3795000.0 - 1 * HR_PX * HR_GSD
    assert p["proj:transform"] == pytest.approx([HR_GSD, 0, x0, 0, -HR_GSD, y0])
    assert d["assets"]["sentinel"]["proj:code"] == "EPSG:32649"
    # label extension (required: label:properties, label:classes, label:description,
    # label:type)
    assert any("label" in e for e in d["stac_extensions"])
    assert p["label:type"] == "raster"
    assert p["label:properties"] is None
    assert p["label:classes"] == [{"name": None, "classes": list(range(18))}]
    assert "4=Cropland" in p["label:description"]
    assert "segmentation" in p["label:tasks"]
    # geometry is the lon/lat patch and contains the footprint's centre offset info
    geom = shapely.geometry.shape(d["geometry"])
    assert geom.is_valid and 112 < geom.centroid.x < 114
    fp = p["fusu:footprint"]
    assert fp["size_px"] == 20 and fp["grid_crs"] == "EPSG:32649"
    ext = coll.extent.temporal.intervals[0]
    assert ext[0] == dt.datetime(2019, 8, 14, tzinfo=dt.UTC)


def test_core_schemas_validate_offline(built) -> None:
    _, path = built
    coll = pystac.Collection.from_file(str(path))
    v = JsonSchemaSTACValidator()
    version = pystac.get_stac_version()
    assert v.validate_core(coll.to_dict(), pystac.STACObjectType.COLLECTION, version)
    for item in coll.get_items():
        assert v.validate_core(item.to_dict(), pystac.STACObjectType.ITEM, version,
                               item.get_self_href())


def test_core_validation_catches_a_broken_item(built) -> None:
    _, path = built
    coll = pystac.Collection.from_file(str(path))
    d = next(coll.get_items()).to_dict()
    del d["properties"]["start_datetime"]  # datetime null requires start/end
    with pytest.raises(pystac.errors.STACValidationError):
        JsonSchemaSTACValidator().validate_core(d, pystac.STACObjectType.ITEM,
                                                pystac.get_stac_version())


def test_rerun_replaces_the_catalogue(built) -> None:
    lay, path = built
    (lay.stac_dir() / "stale.json").write_text("{}")
    spec = AoiSpec(name="xa", city="xian", t1="2019-08-14", t2="2019-10-18", template=True)
    stac_collection([spec], lay, dataset="demo")
    assert not (lay.stac_dir() / "stale.json").exists()
    assert pystac.Collection.from_file(str(path)).id == "demo"
