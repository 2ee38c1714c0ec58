"""Footprints: from the tile index to the AOI grid (sizes, offsets, zones, outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import box

from pipeline.config import FootprintsConfig, TileConfig
from pipeline.errors import GridError, InputError
from pipeline.grid import FootprintRule
from pipeline.hr.drivers import footprints_aoi, tile_aoi
from pipeline.hr.footprints import FOOTPRINT_COLUMNS, build_footprints, lonlat_bounds
from pipeline.io.parquet import read_geoparquet, write_geoparquet
from pipeline.layout import Layout
from tests.hr_helpers import EPSG, X0, Y0, aoi_spec, named_aoi, write_rgb


def fake_index(
    n_rows: int = 2,
    n_cols: int = 3,
    size_px: int = 512,
    gsd_m: float = 0.5,
    x0: float = X0,
    y0: float = Y0,
    crs: str = f"EPSG:{EPSG}",
    aoi: str = "fk",
) -> gpd.GeoDataFrame:
    """A tile index of a regular lattice of patches (no rasters needed)."""
    side = size_px * gsd_m
    rows = []
    for r in range(n_rows):
        for c in range(n_cols):
            minx, maxy = x0 + c * side, y0 - r * side
            rows.append(
                {
                    "patch_id": f"{aoi}_r{r:03d}_c{c:03d}",
                    "aoi": aoi,
                    "size_px": size_px,
                    "gsd_m": gsd_m,
                    "hr_crs": crs,
                    "geometry": box(minx, maxy - side, minx + side, maxy),
                }
            )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)


def _centres(geoms: np.ndarray) -> np.ndarray:
    b = shapely.bounds(geoms)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)


# ----------------------------------------------------------------------------- pure


def test_fusu_numbers() -> None:
    res = build_footprints(fake_index(), "fk")
    idx = res.index
    assert (idx["fp_size_px"] == 128).all()
    assert res.grid_doc["size_px"] == 128 and res.grid_doc["scale"] == 5.0
    np.testing.assert_allclose(idx["patch_w_px"], 25.6)
    np.testing.assert_allclose(idx["patch_h_px"], 25.6)
    # (128 - 25.6) / 2 = 51.2, snapped by at most half a pixel
    assert np.all(np.abs(idx["patch_off_x_px"] - 51.2) <= 0.5 + 1e-9)
    assert np.all(np.abs(idx["patch_off_y_px"] - 51.2) <= 0.5 + 1e-9)
    g = res.footprints.grid
    assert g.epsg == EPSG and g.x0 % 60 == 0 and g.y0 % 60 == 0
    assert "round(5 x 512 x 0.5 / 10) = 128" in res.grid_doc["rule"]
    # footprints of the first patch: same numbers as the grid known-answer test
    first = idx.iloc[0]
    assert (first.patch_off_x_px, first.patch_off_y_px) == pytest.approx((51.0, 51.0))
    fp_bounds = shapely.from_wkb(first.fp_geometry_wkb).bounds
    assert fp_bounds == (649490.0, 3794230.0, 650770.0, 3795510.0)
    # 6 footprints of 128^2 px requested, union much smaller (heavy overlap)
    assert res.grid_doc["requested_px"] == 6 * 128 * 128
    assert res.grid_doc["union_px"] < res.grid_doc["requested_px"] / 3


def test_footprint_centre_within_half_pixel_and_offsets_consistent() -> None:
    idx = fake_index(n_rows=4, n_cols=5, size_px=200, gsd_m=0.3, x0=X0 + 3.7, y0=Y0 - 11.3)
    res = build_footprints(idx, "fk")
    out = res.index
    n = int(out["fp_size_px"].iloc[0])
    assert n == 30  # round(5 * 200 * 0.3 / 10)
    pc = _centres(out.geometry.values)
    fp = shapely.from_wkb(out["fp_geometry_wkb"].to_numpy())
    fc = _centres(fp)
    assert np.all(np.abs(fc - pc) <= 5.0 + 1e-6)
    # the offsets locate the patch inside its footprint window of the grid
    g = res.footprints.grid
    patch_minx = g.x0 + (out["fp_col0"] + out["patch_off_x_px"]) * g.res_m
    patch_maxy = g.y0 - (out["fp_row0"] + out["patch_off_y_px"]) * g.res_m
    b = shapely.bounds(out.geometry.values)
    np.testing.assert_allclose(patch_minx, b[:, 0], atol=1e-6)
    np.testing.assert_allclose(patch_maxy, b[:, 3], atol=1e-6)
    # footprint windows lie inside the grid
    assert out["fp_col0"].min() >= 0 and (out["fp_col0"] + n).max() <= g.width
    assert out["fp_row0"].min() >= 0 and (out["fp_row0"] + n).max() <= g.height


@pytest.mark.parametrize(("kw", "size"), [({"size_px": 7}, 7), ({"size_m": 1000.0}, 100)])
def test_size_overrides_including_odd(kw: dict, size: int) -> None:
    res = build_footprints(fake_index(), "fk", FootprintRule(**kw))
    assert (res.index["fp_size_px"] == size).all()
    pc = _centres(res.index.geometry.values)
    fc = _centres(shapely.from_wkb(res.index["fp_geometry_wkb"].to_numpy()))
    assert np.all(np.abs(fc - pc) <= 5.0 + 1e-6)
    assert ("explicit" if "size_px" in kw else "footprints.size_m") in res.grid_doc["rule"]


def test_hr_crs_other_than_grid_crs() -> None:
    # HR index in Web Mercator over Xi'an: the grid is UTM 49N and the offsets come from the
    # reprojected (densified) patch polygons
    idx_utm = fake_index(n_rows=2, n_cols=2)
    idx = idx_utm.to_crs("EPSG:3857")
    idx["hr_crs"] = "EPSG:3857"
    res = build_footprints(idx, "fk")
    assert res.footprints.grid.epsg == EPSG
    pc_utm = _centres(idx_utm.geometry.values)
    fc = _centres(shapely.from_wkb(res.index["fp_geometry_wkb"].to_numpy()))
    assert np.all(np.abs(fc - pc_utm) <= 5.0 + 0.05)
    np.testing.assert_allclose(res.index["patch_w_px"], 25.6, atol=0.05)
    # the index keeps the HR geometry and CRS
    assert res.index.crs.to_epsg() == 3857
    assert res.polygons.crs.to_epsg() == EPSG


def test_aoi_near_utm_zone_edge_warns_and_uses_centroid_zone() -> None:
    # patches in UTM 49N straddling 108 E (the 48/49 boundary), centroid just east of it
    from pyproj import Transformer

    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{EPSG}", always_xy=True)
    x, y = to_utm.transform(107.999, 34.25)
    idx = fake_index(n_rows=2, n_cols=4, x0=x - 256.0, y0=y)
    w, _, e, _ = lonlat_bounds(idx)
    assert w < 108.0 < e
    with pytest.warns(UserWarning, match=r"fk: spans UTM zones \[48, 49\].*EPSG:32649"):
        res = build_footprints(idx, "fk")
    assert res.footprints.grid.epsg == EPSG
    # the same AOI shifted west so its centroid is in zone 48 switches the grid CRS
    idx_w = fake_index(n_rows=2, n_cols=4, x0=x - 900.0, y0=y)
    with pytest.warns(UserWarning, match="EPSG:32648"):
        res_w = build_footprints(idx_w, "fk")
    g = res_w.footprints.grid
    assert g.epsg == 32648 and g.x0 % 60 == 0 and g.y0 % 60 == 0


def test_lonlat_bounds_antimeridian() -> None:
    a = box(179.9, -17.0, 179.99, -16.9)
    b = box(-179.99, -17.0, -179.9, -16.9)
    gdf = gpd.GeoDataFrame({"patch_id": ["a", "b"]}, geometry=[a, b], crs="EPSG:4326")
    w, s, e, n = lonlat_bounds(gdf)
    assert (w, e) == pytest.approx((179.9, -179.9))
    assert (s, n) == pytest.approx((-17.0, -16.9))


def test_bad_indexes() -> None:
    with pytest.raises(InputError, match="no patches"):
        build_footprints(fake_index().iloc[:0], "fk")
    mixed = fake_index()
    mixed.loc[0, "size_px"] = 256
    with pytest.raises(InputError, match="different size_px"):
        build_footprints(mixed, "fk")
    gsd = fake_index()
    gsd.loc[0, "gsd_m"] = 0.3
    with pytest.raises(InputError, match="mixes GSDs"):
        build_footprints(gsd, "fk")
    with pytest.raises(GridError, match=r"footprints\.scale"):
        build_footprints(fake_index(size_px=16, gsd_m=0.1), "fk", FootprintRule(scale=1.0))


# ----------------------------------------------------------------------------- stage


def test_stage_after_tile(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif")
    t2 = write_rgb(tmp_path / "t2.tif")
    lay = Layout(tmp_path / "out")
    tile_aoi(aoi_spec(t1, t2), TileConfig(patch_size_px=16), lay, progress=False)
    res = footprints_aoi(named_aoi("tst"), FootprintsConfig(), lay)
    idx = read_geoparquet(lay.footprints("tst"))
    patches = read_geoparquet(lay.patches("tst"))
    assert list(idx.columns) == [*patches.columns, *FOOTPRINT_COLUMNS]
    assert idx["patch_id"].tolist() == patches["patch_id"].tolist()
    assert idx.crs.to_epsg() == EPSG
    # 16 px x 1 m x 5 / 10 m = 8 px
    assert (idx["fp_size_px"] == 8).all()
    assert idx["fp_col0"].dtype == np.int64 and idx["patch_off_x_px"].dtype == np.float64
    np.testing.assert_allclose(idx["patch_w_px"], 1.6)
    pc = _centres(idx.geometry.values)
    fc = _centres(shapely.from_wkb(idx["fp_geometry_wkb"].to_numpy()))
    assert np.all(np.abs(fc - pc) <= 5.0 + 1e-6)
    doc = json.loads(lay.grid("tst").read_text())
    assert {k: doc[k] for k in ("epsg", "res_m", "x0", "y0", "width", "height")} == (
        res.footprints.grid.to_dict()
    )
    assert doc["size_px"] == 8 and doc["scale"] == 5.0 and "rule" in doc
    assert doc["x0"] % 60 == 0 and doc["y0"] % 60 == 0
    gp = gpd.read_file(lay.footprints_gpkg("tst"), layer="footprints")
    assert gp.crs.to_epsg() == EPSG and gp["patch_id"].tolist() == idx["patch_id"].tolist()
    assert gp.geometry.iloc[3].equals(shapely.from_wkb(idx["fp_geometry_wkb"].iloc[3]))
    assert (gp["fp_col0"].to_numpy() == idx["fp_col0"].to_numpy()).all()
    assert not lay.footprints_shp_dir("tst").exists()
    assert not [p for p in lay.root.rglob("*") if ".tmp" in p.name]


def test_stage_shapefile_export(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "out")
    write_geoparquet(fake_index(aoi="shp"), lay.patches("shp"))
    footprints_aoi(named_aoi("shp"), FootprintsConfig(export_shapefile=True, size_px=9), lay)
    shp = lay.footprints_shp_dir("shp") / "shp_footprints.shp"
    assert shp.is_file()
    assert {p.suffix for p in shp.parent.iterdir()} >= {".shp", ".shx", ".dbf", ".prj"}
    gdf = gpd.read_file(shp)
    assert gdf.crs.to_epsg() == EPSG
    assert {"patch_id", "fp_col0", "fp_row0", "fp_size_px", "off_x_px", "off_y_px"} <= set(gdf)
    assert (gdf["fp_size_px"] == 9).all() and len(gdf) == 6


def test_stage_missing_index(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "out")
    with pytest.raises(InputError, match=r"patches\.parquet does not exist"):
        footprints_aoi(named_aoi("nope"), FootprintsConfig(), lay)
    assert not lay.footprints("nope").exists() and not lay.grid("nope").exists()
