"""The evaluating fake Earth Engine (tests/fake_ee_eval.py): known answers of the operations the
recipes use, built by the real earthengine-api client, and failures worded as Earth Engine's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ee = pytest.importorskip("ee")

from pipeline.errors import SourceError
from pipeline.sentinel.model import Block, Recipe
from pipeline.sentinel.sources.gee import GeeSource
from pipeline.sentinel.sources.gee import recipe as recipe_mod
from tests.equivalence_helpers import GRID, L2A_MONTH
from tests.fake_ee import FakeEarthEngine, evaluating_fake
from tests.fake_ee_eval import EEError, compute_pixels, compute_value

#: a 6 x 4 px request grid (10 m, north-up)
REQ = {"dimensions": {"width": 6, "height": 4},
       "affineTransform": {"scaleX": 10.0, "shearX": 0.0, "translateX": 650000.0,
                           "shearY": 0.0, "scaleY": -10.0, "translateY": 3795000.0},
       "crsCode": "EPSG:32649"}


@pytest.fixture(scope="module")
def archive(equivalence_archive: Path) -> Path:
    return equivalence_archive


@pytest.fixture(scope="module")
def server(archive: Path):  # type: ignore[no-untyped-def]
    with evaluating_fake(archive) as srv:
        GeeSource(project="test", api_url=srv.url, max_retries=0)  # initialises the client
        yield srv


def pixels(server: FakeEarthEngine, img, bands: list[str]) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """(values, mask) per band of a client-built image on :data:`REQ`."""
    assert server.archive is not None
    _, got = compute_pixels(server.archive, ee.serializer.encode(img), REQ, bands)
    return {b: np.where(got[b].mask, got[b].values, np.nan) for b in bands}


def test_masks_means_counts_and_mosaic_order(server: FakeEarthEngine) -> None:
    a = ee.Image.constant(2.0).rename("v")
    b = ee.Image.constant(6.0).rename("v")
    masked_b = b.updateMask(ee.Image.constant(0))
    coll = ee.ImageCollection([a, b, masked_b])
    got = pixels(server, coll.mean().addBands(coll.count().rename("n")), ["v", "n"])
    assert (got["v"] == 4.0).all() and (got["n"] == 2).all()  # the masked image is left out
    # mosaic: the last unmasked image is on top
    top = pixels(server, ee.ImageCollection([a, b, masked_b]).mosaic(), ["v"])
    assert (top["v"] == 6.0).all()
    # unmask fills masked pixels; selfMask masks zeros; divide is floating point
    z = pixels(server, ee.Image.constant(0).rename("v").selfMask().unmask(-5)
               .addBands(ee.Image.constant(3).divide(2).rename("d")), ["v", "d"])
    assert (z["v"] == -5).all() and (z["d"] == 1.5).all()


def test_directional_distance_transform_looks_towards_the_angle(server: FakeEarthEngine) -> None:
    """One non-zero pixel; angle 0 (east): the pixels up to maxDistance west of it find it at
    their distance, the others find nothing (masked)."""
    assert server.archive is not None
    from tests.fake_ee_eval import Band, EvalGrid, Evaluator, Img

    g = EvalGrid.from_request(REQ, 0)
    ev = Evaluator(server.archive, g)
    src = np.zeros(g.shape)
    src[2, 4] = 1
    img = Img({"c": Band(src, np.ones(g.shape, bool))})
    out = ev.f_Image_directionalDistanceTransform(img, 0.0, 3).compute(10.0).band("distance")
    expect = np.full(g.shape, np.nan)
    expect[2, 1:5] = [3, 2, 1, 0]
    np.testing.assert_array_equal(np.where(out.mask, out.values, np.nan), expect)
    # angle 90 (north): the pixels south of it find it
    out = ev.f_Image_directionalDistanceTransform(img, 90.0, 3).compute(10.0).band("distance")
    assert out.mask[2:4, 4].all() and out.values[3, 4] == 1 and out.mask.sum() == 2


def test_unknown_asset_band_and_argument_fail_as_earth_engine_does(server: FakeEarthEngine
                                                                   ) -> None:
    assert server.archive is not None
    with pytest.raises(EEError, match=r"ImageCollection asset 'COPERNICUS/S2_SR_HARMONISED' "
                       r"not found"):
        compute_value(server.archive, ee.serializer.encode(
            ee.ImageCollection("COPERNICUS/S2_SR_HARMONISED").size()), None)
    with pytest.raises(EEError, match=r"Band pattern 'probabilty' did not match any bands\. "
                       r"Available bands: \[constant\]"):
        pixels(server, ee.Image.constant(1).select("probabilty"), ["probabilty"])
    # a missing property is null, and null fails where a number is needed
    with pytest.raises(EEError, match=r"Number.subtract, argument 'right': Invalid type"):
        compute_value(server.archive, ee.serializer.encode(
            ee.Number(90).subtract(ee.Number(ee.Image.constant(1).get("MEAN_SOLAR_AZIMUTH")))),
            None)
    with pytest.raises(EEError, match="not evaluated here"):
        pixels(server, ee.Image.constant(1).sqrt(), ["constant"])


def test_a_misspelt_collection_reaches_the_user_as_earth_engines_400(
        server: FakeEarthEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recipe_mod, "S2_CLOUD_PROB", "COPERNICUS/S2_CLOUD_PROBABILTY")
    src = GeeSource(project="test", api_url=server.url, max_retries=0)
    with pytest.raises(SourceError, match="S2_CLOUD_PROBABILTY' not found"):
        src.fetch_block("eq", GRID, Block(0, 0, 16, 16), L2A_MONTH, Recipe())


def test_collections_hold_the_archive_scenes_with_earth_engine_properties(
        server: FakeEarthEngine, archive: Path) -> None:
    assert server.archive is not None
    l2a = ee.ImageCollection("COPERNICUS/S2_SR_HARMONIZED").filterDate("2019-02-01",
                                                                       "2019-03-01")
    ids = compute_value(server.archive, ee.serializer.encode(
        l2a.aggregate_array("system:index")), None)
    folders = sorted(p.name for p in (archive / "s2").glob("201902*"))
    assert ids == [f"{f.split('_')[0]}_{f.split('_')[0]}_T{f.split('_')[1]}" for f in folders]
    pols = compute_value(server.archive, ee.serializer.encode(
        ee.ImageCollection("COPERNICUS/S1_GRD").filterDate("2019-02-01", "2019-03-01")
        .aggregate_array("transmitterReceiverPolarisation")), None)
    assert ["VV"] in pols and ["VH"] in pols and ["VV", "VH"] in pols
