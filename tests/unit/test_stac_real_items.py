"""Real provider items through the STAC source's item -> scene conversion (pure functions of
``pipeline.sentinel.sources.stac_items``). Recorded items (tests/data/stac_real, provenance in
its README): Planetary Computer (odc-stac's test data), Earth Search v1 (eodm's test data) and
CDSE (eu-cdse/eometadatatool's examples); variants of Earth Search v1 items are built in the
shape of its real items (``S2A_39QTA_20230628_0_L2A`` served by earth-search.aws.element84.com/v1:
``earthsearch:boa_offset_applied``, ``grid:code``, a ``derived_from`` link to the L1C item).
Expected values are read from the JSON."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.sentinel.sources.stac_items import (
    s1_scenes_from_items,
    s2_scenes_from_items,
)
from pipeline.sentinel.sources.stac_profiles import PROFILES

DATA = Path(__file__).resolve().parents[1] / "data" / "stac_real"
PC = PROFILES["planetary-computer"]


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def _same(href: str) -> str:
    return href


def test_planetary_computer_item_converts_with_its_own_sun_angles_and_offset() -> None:
    item = _load("pc-sentinel-2-l2a-item.json")
    props = item["properties"]
    skipped: list[dict[str, str]] = []
    (scene,) = s2_scenes_from_items([item], [], PC, _same, skipped)
    assert skipped == []
    # sun angles: PC states s2:mean_solar_*, not view:sun_* (the shadow mask uses them)
    assert "view:sun_azimuth" not in props
    assert scene.sun_azimuth_deg == pytest.approx(props["s2:mean_solar_azimuth"])
    assert scene.sun_zenith_deg == pytest.approx(props["s2:mean_solar_zenith"])
    # baseline 02.12 < 04.00: no offset; tile and time as stated
    assert float(props["s2:processing_baseline"]) < 4.0 and scene.offsets == {"L2A": 0.0}
    assert scene.tile == props["s2:mgrs_tile"]
    want = dt.datetime.fromisoformat(props["datetime"].replace("Z", "+00:00"))
    assert scene.time == want.replace(tzinfo=None)
    # every band is read from the asset of the same name; SCL for the cloud mask
    for band in ("B01", "B02", "B8A", "B12", "SCL"):
        assert scene.file("L2A", band) == item["assets"][band]["href"]
    assert scene.products == ("L2A",) and scene.scl
    # the datatake without its baseline: granules of one datatake are one observation
    assert scene.datatake == props["s2:datatake_id"].rsplit("_N", 1)[0]


def test_planetary_computer_search_page_is_one_observation_of_nine_granules() -> None:
    page = _load("pc-sentinel-2-l2a-search-page.geojson")
    feats = page["features"]
    skipped: list[dict[str, str]] = []
    scenes = s2_scenes_from_items(feats, [], PC, _same, skipped)
    assert skipped == [] and len(scenes) == len(feats) == 9
    assert {s.tile for s in scenes} == {f["properties"]["s2:mgrs_tile"] for f in feats}
    datatakes = {f["properties"]["s2:datatake_id"] for f in feats}
    assert len(datatakes) == 1 and len({s.observation for s in scenes}) == 1


def test_an_l1c_item_under_a_profile_without_l1c_is_a_named_skip() -> None:
    """Planetary Computer has no L1C and no B10 asset key: an L1C item (a user's collection or
    a static catalogue) used to raise KeyError: 'B10'."""
    item = _load("pc-sentinel-2-l2a-item.json")
    skipped: list[dict[str, str]] = []
    assert s2_scenes_from_items([], [item], PC, _same, skipped) == []
    assert skipped == [{"item": item["id"], "sensor": "s2", "cause": "no_asset_key",
                        "why": "profile 'planetary-computer' has no L1C asset key for B10"}]


# --------------------------------------------------------------------------- Earth Search v1

ES = PROFILES["earth-search"]
_ES_KEYS = ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir",
            "nir08", "nir09", "swir16", "swir22", "scl")


def test_recorded_earth_search_items_convert_as_their_json_says() -> None:
    """Three real Earth Search v1 items (two granules of one datatake on 2023-06-28, one of
    2023-06-23), under the default profile: band assets by their common names, the offset the
    provider removed (``earthsearch:boa_offset_applied: true`` at baseline 05.09, though each
    asset still states ``offset: -0.1``), the L1C item named by the ``derived_from`` link."""
    from pipeline.sentinel.sources.stac_items import derived_from_id

    page = _load("earth-search-v1-sentinel-2-l2a-items.json")["features"]
    es = PROFILES["earth-search"]
    skipped: list[dict[str, str]] = []
    scenes = {sc.id: sc for sc in s2_scenes_from_items(page, [], es, _same, skipped)}
    assert skipped == [] and set(scenes) == {it["id"] for it in page}
    names = {"B01": "coastal", "B02": "blue", "B04": "red", "B08": "nir", "B8A": "nir08",
             "B11": "swir16", "B12": "swir22", "SCL": "scl"}
    for it in page:
        props, sc = it["properties"], scenes[it["id"]]
        assert props["earthsearch:boa_offset_applied"] is True
        assert it["assets"]["red"]["raster:bands"][0]["offset"] == -0.1
        assert sc.offsets == {"L2A": 0.0}  # not -1000: the flag wins over raster:bands
        for band, key in names.items():
            assert sc.file("L2A", band) == it["assets"][key]["href"]
            assert it["assets"][key]["href"].endswith(f"/{band}.tif")
        assert sc.sun_azimuth_deg == pytest.approx(props["view:sun_azimuth"])
        assert sc.tile == props["grid:code"].removeprefix("MGRS-")
        assert sc.datatake == props["s2:datatake_id"].rsplit("_N", 1)[0]
        l1c = next(ln["href"] for ln in it["links"] if ln["rel"] == "derived_from")
        assert derived_from_id(it) == l1c.rsplit("/", 1)[1] == it["id"].replace("L2A", "L1C")
    # the two granules of 2023-06-28 are one observation, the 2023-06-23 one another
    obs = {sc.datatake for sc in scenes.values()}
    assert len(obs) == 2 and len(scenes) == 3
    # and under earth-search-c1 (a user pointing it at this collection) the flag still wins
    c1 = s2_scenes_from_items(page, [], PROFILES["earth-search-c1"], _same, [])
    assert all(sc.offsets == {"L2A": 0.0} for sc in c1)


def _es_item(id_: str, baseline: str, applied: bool, l1c: str | None,
             sensed: str = "2020-01-10T05:35:49.024000Z") -> dict[str, Any]:
    """An Earth Search v1 sentinel-2-l2a item (the real items' property names and links)."""
    root = "https://earth-search.aws.element84.com/v1"
    links = [{"rel": "self", "href": f"{root}/collections/sentinel-2-l2a/items/{id_}"}]
    if l1c:
        links.append({"rel": "derived_from",
                      "href": f"{root}/collections/sentinel-2-l1c/items/{l1c}"})
    base = f"https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/43/Q/DB/{id_}"
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": id_, "collection": "sentinel-2-l2a",
        "properties": {
            "datetime": sensed, "platform": "sentinel-2b", "grid:code": "MGRS-43QDB",
            "s2:processing_baseline": baseline, "earthsearch:boa_offset_applied": applied,
            "s2:datatake_id": f"GS2B_20200110T053549_014869_N{baseline}",
            "s2:generation_time": "2020-01-10T08:00:00.000000Z" if baseline < "04" else
                                  "2023-03-01T08:00:00.000000Z",
            "view:sun_azimuth": 155.2, "view:sun_elevation": 42.0,
        },
        "links": links,
        "assets": {k: {"href": f"{base}/{k}.tif", "raster:bands": [
            {"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]}
            for k in _ES_KEYS},
    }


def _es_l1c(id_: str) -> dict[str, Any]:
    keys = (*_ES_KEYS[:-1], "cirrus")
    return {"type": "Feature", "id": id_, "collection": "sentinel-2-l1c",
            "properties": {"datetime": "2020-01-10T05:35:49.024000Z", "platform": "sentinel-2b",
                           "grid:code": "MGRS-43QDB", "s2:processing_baseline": "02.08"},
            "assets": {k: {"href": f"s3://sentinel-s2-l1c/tiles/43/Q/DB/{id_}/{k}.jp2"}
                       for k in keys}}


def test_two_processings_of_one_acquisition_are_one_observation() -> None:
    """Earth Search holds the original processing (_0_L2A, 02.14) and ESA's reprocessing
    (_1_L2A, 05.00) of one acquisition: only the newest is composited, the other is recorded
    as superseded (and not retried as a fault); its offset flag is honoured (0 DN), and the
    L1C it was derived from pairs with it though the ids differ in their sequence digit."""
    old = _es_item("S2B_43QDB_20200110_0_L2A", "02.14", False, "S2B_43QDB_20200110_0_L1C")
    new = _es_item("S2B_43QDB_20200110_1_L2A", "05.00", True, "S2B_43QDB_20200110_0_L1C")
    l1c = _es_l1c("S2B_43QDB_20200110_0_L1C")
    skipped: list[dict[str, str]] = []
    scenes = s2_scenes_from_items([old, new], [l1c], ES, _same, skipped)
    assert [s.name for s in scenes] == [new["id"]]
    assert skipped == [{"item": old["id"], "sensor": "s2", "cause": "superseded",
                        "superseded_by": new["id"],
                        "why": f"superseded by {new['id']} (baseline 02.14 -> 05.00)"}]
    (sc,) = scenes
    assert sc.products == ("L2A", "L1C")  # paired through derived_from
    assert sc.file("L1C", "B10").endswith("/S2B_43QDB_20200110_0_L1C/cirrus.jp2")
    assert sc.offsets["L2A"] == 0.0  # earthsearch:boa_offset_applied: true
    assert sc.sun_azimuth_deg == 155.2 and sc.sun_zenith_deg == pytest.approx(48.0)


def test_the_offset_flag_wins_under_the_collection_1_profile() -> None:
    """earth-search-c1 reads offsets from raster:bands (-0.1 at scale 1e-4 = -1000 DN); an Earth
    Search v1 item whose flag says the offset was already removed gets 0 (was -1000: reflectance
    0.1 too low)."""
    item = _es_item("S2B_43QDB_20200110_1_L2A", "05.00", True, None)
    (sc,) = s2_scenes_from_items([item], [], PROFILES["earth-search-c1"], _same, [])
    assert sc.offsets["L2A"] == 0.0
    raw = copy.deepcopy(item)
    raw["properties"]["earthsearch:boa_offset_applied"] = False
    (sc2,) = s2_scenes_from_items([raw], [], PROFILES["earth-search-c1"], _same, [])
    assert sc2.offsets["L2A"] == -1000.0


def test_uncalibrated_grd_is_a_named_skip() -> None:
    """An IW GRD item (Planetary Computer / Earth Search sentinel-1-grd: uint16 amplitude DNs)
    used to be read as linear gamma0."""
    grd = {"id": "S1A_IW_GRDH_1SDV_20200110T000000", "collection": "sentinel-1-grd",
           "properties": {"datetime": "2020-01-10T00:00:00Z", "sat:orbit_state": "ascending"},
           "assets": {k: {"href": f"https://x.example/{k}.tiff",
                          "raster:bands": [{"data_type": "uint16"}]} for k in ("vv", "vh")}}
    rtc = {**copy.deepcopy(grd), "id": "S1A_RTC", "collection": "sentinel-1-rtc"}
    for a in rtc["assets"].values():
        a["raster:bands"] = [{"data_type": "float32"}]
    skipped: list[dict[str, str]] = []
    scenes = s1_scenes_from_items([grd, rtc], PC, _same, skipped)
    assert [s.name for s in scenes] == ["S1A_RTC"]
    assert skipped[0]["item"] == grd["id"] and "uncalibrated GRD" in skipped[0]["why"]
    # integer assets in a collection of another name are refused too
    other = {**copy.deepcopy(grd), "collection": "my-s1"}
    skipped = []
    assert s1_scenes_from_items([other], PC, _same, skipped) == []
    assert "uint16" in skipped[0]["why"]


def test_a_superseded_processing_is_recorded_but_never_retried(tmp_path: Path) -> None:
    from pipeline.sentinel.fetch import months_to_retry

    summary = tmp_path / "m.json"
    summary.write_text(json.dumps({"n_scenes": {"s2": 1, "s1": 1}, "skipped_items": [
        {"item": "S2B_43QDB_20200110_0_L2A", "superseded_by": "S2B_43QDB_20200110_1_L2A",
         "why": "superseded by S2B_43QDB_20200110_1_L2A (baseline 02.14 -> 05.00)"}]}))
    assert months_to_retry({"2020-01": (summary, tmp_path / "ledger")}, 2) == {}


# --------------------------------------------------------------------------- CDSE

CDSE = PROFILES["cdse"]


def _cdse_read(href: str) -> str:
    """The read path the CDSE profile gives an href (``s3://`` -> GDAL's ``/vsis3/``)."""
    from pipeline.io.scenes import vsis3_path

    return vsis3_path(href)


def test_cdse_l2a_item_reads_each_band_at_its_native_resolution_with_the_stated_offset() -> None:
    item = _load("cdse-sentinel-2-l2a-item.json")
    props = item["properties"]
    skipped: list[dict[str, str]] = []
    (scene,) = s2_scenes_from_items([item], [], CDSE, _cdse_read, skipped)
    assert skipped == []
    # every L2A band from the JP2 at the band's own resolution (the item also offers
    # resampled copies: B02_20m, B02_60m ...): the gsd the asset states is the band's native one
    native = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
              "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20, "SCL": 20}
    for band, gsd in native.items():
        (key,) = [k for k, a in item["assets"].items()
                  if k.startswith(band + "_") and a.get("gsd") == gsd]
        href = item["assets"][key]["href"]
        assert href.startswith("s3://eodata/Sentinel-2/MSI/") and href.endswith(f"_{gsd}m.jp2")
        assert scene.file("L2A", band) == "/vsis3/" + href.removeprefix("s3://")
    # the offset is the one the assets state (raster:offset / raster:scale, STAC 1.1), in DN
    b02 = item["assets"]["B02_10m"]
    assert "raster:bands" not in b02
    assert scene.offsets == {"L2A": b02["raster:offset"] / b02["raster:scale"]} == {"L2A": -1000.0}
    assert float(props["processing:version"]) >= 4.0
    # the stated offset decides, not the baseline: assets stating 0 are read with 0
    stated0 = copy.deepcopy(item)
    for a in stated0["assets"].values():
        if "raster:offset" in a:
            a["raster:offset"] = 0.0
    assert s2_scenes_from_items([stated0], [], CDSE, _cdse_read, [])[0].offsets == {"L2A": 0.0}
    # sun angles, tile, datatake (without its baseline) and time as the item states them
    assert scene.sun_azimuth_deg == pytest.approx(props["view:sun_azimuth"])
    assert scene.sun_zenith_deg == pytest.approx(90.0 - props["view:sun_elevation"])
    assert scene.tile == props["grid:code"].removeprefix("MGRS-")
    assert scene.datatake == props["eopf:datatake_id"].rsplit("_N", 1)[0]
    want = dt.datetime.fromisoformat(props["datetime"].replace("Z", "+00:00"))
    assert scene.time == want.replace(tzinfo=None)
    assert scene.products == ("L2A",) and scene.scl


def test_cdse_l1c_item_pairs_with_its_l2a_by_acquisition_not_by_id() -> None:
    l1c = _load("cdse-sentinel-2-l1c-item.json")
    skipped: list[dict[str, str]] = []
    (alone,) = s2_scenes_from_items([], [l1c], CDSE, _cdse_read, skipped)
    assert skipped == [] and alone.products == ("L1C",)
    for band in ("B01", "B02", "B8A", "B10", "B12"):  # L1C keys carry no resolution
        assert alone.file("L1C", band) == _cdse_read(l1c["assets"][band]["href"])
    assert alone.offsets == {"L1C": l1c["assets"]["B02"]["raster:offset"] / 1e-4}
    # an L2A of the same acquisition has another product id (its last field is when it was
    # processed): id rules cannot pair them, the acquisition does
    l2a = copy.deepcopy(_load("cdse-sentinel-2-l2a-item.json"))
    l2a["properties"].update({k: l1c["properties"][k] for k in
                              ("datetime", "platform", "grid:code")})
    l2a["id"] = l1c["id"].replace("MSIL1C", "MSIL2A").rsplit("_", 1)[0] + "_20240116T020000"
    assert l2a["id"].removesuffix(CDSE.l2a_suffix) != l1c["id"].removesuffix(CDSE.l1c_suffix)
    (scene,) = s2_scenes_from_items([l2a], [l1c], CDSE, _cdse_read, skipped)
    assert scene.products == ("L2A", "L1C") and skipped == []
    assert scene.file("L1C", "B10") == _cdse_read(l1c["assets"]["B10"]["href"])
    # another tile's L1C does not pair
    other = copy.deepcopy(l1c)
    other["properties"]["grid:code"] = "MGRS-51CVQ"
    scenes = s2_scenes_from_items([l2a], [other], CDSE, _cdse_read, [])
    assert sorted(sc.products for sc in scenes) == [("L1C",), ("L2A",)]


def test_cdse_reprocessing_keeps_the_newest_baseline() -> None:
    """CDSE holds the nominal processing and ESA's reprocessing of an acquisition (baseline
    in ``processing:version``, processing time in ``processing:datetime``)."""
    new = _load("cdse-sentinel-2-l2a-item.json")
    old = copy.deepcopy(new)
    old["id"] = new["id"].replace("_N0510_", "_N0400_").rsplit("_", 1)[0] + "_20220217T200000"
    old["properties"]["processing:version"] = "04.00"
    skipped: list[dict[str, str]] = []
    (scene,) = s2_scenes_from_items([old, new], [], CDSE, _cdse_read, skipped)
    assert scene.id == new["id"]
    assert [s["item"] for s in skipped] == [old["id"]] and skipped[0]["cause"] == "superseded"


# --------------------------------------------------------------------------- through the search


@pytest.mark.parametrize("name,profile,month", [
    ("earth-search-v1-sentinel-2-l2a-items.json", "earth-search", "2023-06"),
    ("pc-sentinel-2-l2a-search-page.geojson", "planetary-computer", "2020-06"),
])
def test_recorded_items_come_back_through_a_loopback_api_search(name: str, profile: str,
                                                                  month: str) -> None:
    """The recorded items served by a loopback STAC API, searched by the STAC source
    (pystac-client, the month window, the AOI grid's bbox) and converted: every item whose
    bbox meets the AOI and whose time is in the month is one scene, the others none."""
    pytest.importorskip("pystac_client")
    from pipeline.grid import AoiGrid
    from pipeline.sentinel.sources.stac import StacCatalog, grid_bbox_wgs84
    from tests.fake_stac import FakeStac

    feats = _load(name)["features"]
    first = feats[0]
    epsg = int(first["properties"]["proj:epsg"])
    t = next(a["proj:transform"] for a in first["assets"].values()
             if a.get("proj:transform") and a["proj:transform"][0] == 10)
    # a 1 km AOI grid at the centre of the first item's tile
    grid = AoiGrid(epsg=epsg, res_m=10.0, x0=t[2] + 54_900.0, y0=t[5] - 54_900.0,
                   width=100, height=100)
    bb = grid_bbox_wgs84(grid)

    def meets(it: dict[str, Any]) -> bool:
        b = it["bbox"]
        return not (b[2] < bb[0] or b[0] > bb[2] or b[3] < bb[1] or b[1] > bb[3])

    want = {it["id"] for it in feats
            if meets(it) and it["properties"]["datetime"].startswith(month)}
    assert first["id"] in want and len(want) < len(feats), want  # some are left out
    with FakeStac(DATA, items=[dict(it, collection="sentinel-2-l2a") for it in feats],
                  page_size=2) as api:
        cat = StacCatalog(api.api, profile=profile, signer=_same,
                          collections={"s2_l1c": "", "s1": ""})
        scenes = cat.list_s2(month, grid)
        assert {sc.id for sc in scenes} == want
        assert cat.month_meta(month)["skipped_items"] == []
        y, m = (int(v) for v in month.split("-"))
        other = f"{y}-{m + 1:02d}"
        assert cat.list_s2(other, grid) == []
        assert cat.month_meta(other)["empty_searches"] == ["sentinel-2-l2a"]


def test_the_month_window_is_end_exclusive_through_an_api_search() -> None:
    """An item sensed in a month's last second is in that month (a search ending at
    T23:59:59Z lost it), and one at the next month's first instant only in the next."""
    pytest.importorskip("pystac_client")
    from pipeline.grid import AoiGrid
    from pipeline.sentinel.sources.stac import StacCatalog
    from tests.fake_stac import FakeStac

    base = _load("earth-search-v1-sentinel-2-l2a-items.json")["features"][0]
    late, first = copy.deepcopy(base), copy.deepcopy(base)
    late["id"], late["properties"]["datetime"] = "late", "2023-06-30T23:59:59.600000Z"
    first["id"], first["properties"]["datetime"] = "first", "2023-07-01T00:00:00Z"
    for it in (late, first):  # two acquisitions: other sensing times, other datatakes
        it["properties"]["s2:datatake_id"] = f"GS2A_{it['id']}_N05.09"
    t = base["assets"]["blue"]["proj:transform"]
    grid = AoiGrid(epsg=int(base["properties"]["proj:epsg"]), res_m=10.0, x0=t[2] + 54_900.0,
                   y0=t[5] - 54_900.0, width=100, height=100)
    with FakeStac(DATA, items=[late, first]) as api:
        cat = StacCatalog(api.api, profile="earth-search", signer=_same,
                          collections={"s2_l1c": "", "s1": ""})
        assert [sc.id for sc in cat.list_s2("2023-06", grid)] == ["late"]
        assert [sc.id for sc in cat.list_s2("2023-07", grid)] == ["first"]
