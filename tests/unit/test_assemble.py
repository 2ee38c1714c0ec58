"""Dataset index assembly (pipeline.dataset.assemble + stages.assemble) on tiny native-layout
AOIs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from pipeline.aoi import AoiSpec
from pipeline.config import SplitsConfig
from pipeline.dataset.drivers import assemble_dataset
from pipeline.errors import DatasetError
from pipeline.io.parquet import write_geoparquet
from pipeline.layout import Layout
from tests.splits_helpers import make_native_aoi

warnings.filterwarnings("ignore", message=".*Zarr V3 specification.*")


def _spec(name: str, city: str) -> AoiSpec:
    return AoiSpec(name=name, city=city, t1="2019-08-14", t2="2019-10-18", template=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, list[AoiSpec]]:
    lay = Layout(tmp_path_factory.mktemp("asm"))
    # two AOIs in two UTM zones (different HR/grid CRSs), two cities
    make_native_aoi(lay, "xa", "xian", nrow=8, ncol=8, epsg=32649, mosaic=False)
    make_native_aoi(lay, "jx", "jiaxing", nrow=7, ncol=7, epsg=32651, x0=260000.0,
                    y0=3410000.0, seed=1, mosaic=False)
    aois = [_spec("xa", "xian"), _spec("jx", "jiaxing")]
    assemble_dataset(aois, SplitsConfig(block_size_patches=2), lay)
    return lay, aois


def test_index_has_one_row_per_patch_with_contract_columns(built) -> None:
    lay, _ = built
    idx = gpd.read_parquet(lay.index())
    assert len(idx) == 64 + 49
    assert idx["patch_id"].is_unique
    for col in ("patch_id", "aoi", "city", "hr_crs", "grid_crs", "hr_geometry_wkb",
                "fp_geometry_wkb", "fp_col0", "fp_row0", "fp_size_px", "split",
                "change_fraction", "changed_px", "valid_px", "hist_t1_0", "hist_t2_17",
                "label_t1", "change_bin", "change_detection"):
        assert col in idx.columns, col
    assert idx.crs.to_epsg() == 4326
    assert set(idx["hr_crs"]) == {"EPSG:32649", "EPSG:32651"}
    assert set(idx.loc[idx["aoi"] == "jx", "grid_crs"]) == {"EPSG:32651"}


def test_geometry_is_wgs84_of_the_exact_hr_polygon(built) -> None:
    lay, _ = built
    idx = gpd.read_parquet(lay.index())
    fp = gpd.read_parquet(lay.footprints("jx")).set_index("patch_id")
    row = idx[idx["patch_id"] == "jx_r003_c004"].iloc[0]
    hr = shapely.from_wkb(row["hr_geometry_wkb"])
    assert hr.equals_exact(fp.loc["jx_r003_c004", "geometry"], 1e-9)
    # reproject the HR corners ourselves and compare with the stored lon/lat polygon
    t = Transformer.from_crs("EPSG:32651", "EPSG:4326", always_xy=True)
    minx, miny, maxx, maxy = hr.bounds
    lon, lat = t.transform([minx, maxx, maxx, minx], [miny, miny, maxy, maxy])
    b = row.geometry.bounds
    assert b[0] == pytest.approx(min(lon), abs=1e-7) and b[3] == pytest.approx(max(lat), abs=1e-7)
    assert 120.0 < b[0] < 126.0  # zone 51


def test_histograms_and_change_columns_come_from_the_aoi_indices(built) -> None:
    lay, _ = built
    idx = gpd.read_parquet(lay.index()).set_index("patch_id")
    lab = pd.read_parquet(lay.labels_index("xa")).set_index("patch_id")
    ch = pd.read_parquet(lay.change_index("xa")).set_index("patch_id")
    for pid in ("xa_r000_c000", "xa_r005_c002"):
        for v in (0, 7, 17):
            assert idx.loc[pid, f"hist_t1_{v}"] == lab.loc[pid, f"t1_px_{v}"]
            assert idx.loc[pid, f"hist_t2_{v}"] == lab.loc[pid, f"t2_px_{v}"]
        assert idx.loc[pid, "nodata_px_t1"] == lab.loc[pid, "t1_px_255"]
        assert idx.loc[pid, "changed_px"] == ch.loc[pid, "changed_px"]
        assert idx.loc[pid, "label_t1"] == f"aois/xa/labels/t1/{pid}.tif"
        assert idx.loc[pid, "change_bin"] == f"aois/xa/change/bin/{pid}.tif"


def test_split_lists_match_the_index(built) -> None:
    lay, _ = built
    idx = gpd.read_parquet(lay.index())

    def read(name: str) -> list[str]:
        return lay.split_list(name).read_text().split()

    for s in ("train", "val", "test", "guard"):
        assert read(s) == sorted(idx.loc[idx["split"] == s, "patch_id"])
        assert len(read(s)) > 0 or s == "guard"
    for s in ("train", "val", "test"):
        want = idx[(idx["split"] == s) & (idx["changed_px"] > 0)]["patch_id"]
        assert read(f"cd_{s}") == sorted(want)
        assert (idx.set_index("patch_id").loc[read(f"cd_{s}"), "change_detection"]).all()
        assert sorted(read(f"xian/{s}") + read(f"jiaxing/{s}")) == read(s)
    summary = json.loads(lay.split_summary().read_text())
    assert summary["complete"]["train"] == len(read("train"))
    assert summary["xian"]["val"] + summary["jiaxing"]["val"] == summary["complete"]["val"]
    assert summary["change_detection"]["test"] == len(read("cd_test"))


def test_leakage_json_reports_zero_overlap_in_block_mode(built) -> None:
    lay, _ = built
    rep = json.loads(lay.leakage_report().read_text())
    assert rep["mode"] == "block" and rep["guard"] is True
    for pair in ("train-val", "train-test"):
        assert rep["overall"][pair]["fp_overlap_frac"] == 0.0
        assert rep["overall"][pair]["patch_in_fp_frac"] == 0.0
    assert rep["dropped_patches"] == rep["overall"]["guard_patches"] > 0
    assert set(rep["per_city"]) == {"xian", "jiaxing"}


def test_patch_without_labels_is_an_error_naming_the_aoi(tmp_path: Path) -> None:
    lay = Layout(tmp_path)
    make_native_aoi(lay, "xa", "xian", nrow=4, ncol=4, mosaic=False)
    lab = pd.read_parquet(lay.labels_index("xa"))
    write_geoparquet(lab.iloc[1:], lay.labels_index("xa"))
    with pytest.raises(DatasetError, match=r"AOI 'xa'.*no labels.*labels stage"):
        assemble_dataset([_spec("xa", "xian")], SplitsConfig(block_size_patches=2), lay)
    assert not lay.index().exists()


def test_random_mode_index_has_no_guard(tmp_path: Path) -> None:
    lay = Layout(tmp_path)
    make_native_aoi(lay, "xa", "xian", nrow=5, ncol=5, mosaic=False)
    assemble_dataset([_spec("xa", "xian")], SplitsConfig(mode="random"), lay)
    idx = pd.read_parquet(lay.index(), columns=["split"])
    assert dict(idx["split"].value_counts()) == {"train": 18, "test": 5, "val": 2}
    rep = json.loads(lay.leakage_report().read_text())
    assert rep["overall"]["train-test"]["fp_overlap_frac"] > 0
    assert np.isclose(sum(json.loads(lay.split_summary().read_text())
                          ["achieved_ratios"].values()), 1.0)
