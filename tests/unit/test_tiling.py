"""Tiling: lattice, no-data skipping, ids, co-registration, bad inputs, atomic outputs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject

from pipeline.config import TileConfig
from pipeline.errors import ConfigError, InputError, PipelineError
from pipeline.hr.drivers import tile_aoi
from pipeline.hr.tiling import tile_pair
from pipeline.hr.windows import (
    TilingError,
    gsd_from_crs,
    lattice_shape,
    nodata_fraction,
    patch_id,
    strip_plan,
)
from pipeline.io.geotiff import write_patch_tif
from pipeline.io.parquet import read_geoparquet
from pipeline.io.raster import inspect_raster
from pipeline.layout import Layout
from tests.hr_helpers import EPSG, X0, Y0, aoi_spec, render, write_rgb

INDEX_COLUMNS = [
    "patch_id", "aoi", "city", "t1", "t2", "hr_crs", "gsd_m", "px_col0", "px_row0", "size_px",
    "hr_t1", "hr_t2", "nodata_frac_t1", "nodata_frac_t2", "edge_pad_frac", "hr_transform",
    "hr_bands", "hr_scale", "geometry",
]


def _cfg(**kw: object) -> TileConfig:
    base = {"patch_size_px": 16, "max_nodata_fraction": 0.05}
    base.update(kw)
    return TileConfig.model_validate(base)


def _read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile | {"transform": ds.transform, "crs": ds.crs}


def _outputs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# ----------------------------------------------------------------------------- pure helpers


def test_lattice_shape_and_windows() -> None:
    assert lattice_shape(64, 64, 16, 16) == (4, 4)
    assert lattice_shape(64, 48, 16, 16) == (3, 4)
    assert lattice_shape(64, 64, 16, 8) == (7, 7)
    assert lattice_shape(64, 64, 20, 20) == (3, 3)  # partial windows at the edge are dropped
    assert lattice_shape(16, 16, 16, 16) == (1, 1)
    with pytest.raises(TilingError, match="larger than the image"):
        lattice_shape(64, 15, 16, 16)


def test_patch_id_format() -> None:
    assert patch_id("demo", 0, 0) == "demo_r000_c000"
    assert patch_id("xian-beilin", 12, 345) == "xian-beilin_r012_c345"
    assert patch_id("a", 1234, 5) == "a_r1234_c005"


def test_strip_plan_covers_each_cell_once() -> None:
    segs = list(strip_plan(3, 7, 16, 8, max_patches=3))
    cells = [(s.row, c) for s in segs for c in range(s.col_first, s.col_last + 1)]
    assert cells == [(r, c) for r in range(3) for c in range(7)]
    assert all(s.height == 16 for s in segs)
    assert max(s.col_last - s.col_first + 1 for s in segs) == 3
    s = segs[1]  # row 0, cols 3..5
    assert (s.px_col0, s.px_row0, s.width) == (24, 0, 2 * 8 + 16)


def test_nodata_fraction() -> None:
    v = np.ones((16, 16), bool)
    v[0, :4] = False
    assert nodata_fraction(v) == pytest.approx(4 / 256)
    assert nodata_fraction(np.zeros((0, 0), bool)) == 1.0


def test_gsd_from_crs_measured_on_the_local_utm_grid() -> None:
    import math

    from rasterio.crs import CRS

    # already in the AOI's UTM zone: exact pixel size
    assert gsd_from_crs((0.5, 0.5), CRS.from_epsg(32649), (108.9, 34.2)) == 0.5
    # 1e-5 deg at the equator ~ 1.113 m east-west, 1.106 m north-south
    g = gsd_from_crs((1e-5, 1e-5), CRS.from_epsg(4326), (0.0, 0.0))
    assert g == pytest.approx(1.11, abs=0.01)
    # NY Long Island state plane in US feet: 1 ft = 0.3048 m (up to grid scale factors)
    assert gsd_from_crs((1.0, 1.0), CRS.from_epsg(2263), (-73.9, 40.7)) == pytest.approx(
        0.3048, rel=2e-3
    )
    # Web Mercator "0.5 m" pixels at 34 deg N are 0.5 * cos(34 deg) = 0.41 m on the ground
    g = gsd_from_crs((0.5, 0.5), CRS.from_epsg(3857), (108.9, 34.0))
    assert g == pytest.approx(0.5 * math.cos(math.radians(34.0)), rel=2e-3)
    # neighbouring UTM zone: nearly the nominal size
    assert gsd_from_crs((0.5, 0.5), CRS.from_epsg(32648), (108.01, 34.0)) == pytest.approx(
        0.5, rel=2e-3
    )


def test_write_patch_tif_profile_and_colormap(tmp_path: Path) -> None:
    tr = Affine(0.5, 0, X0, 0, -0.5, Y0)
    rgb = np.arange(3 * 32 * 32, dtype=np.uint32).reshape(3, 32, 32).astype(np.uint8)
    p = write_patch_tif(tmp_path / "a" / "rgb.tif", rgb, tr, f"EPSG:{EPSG}", 0)
    data, prof = _read(p)
    assert (data == rgb).all()
    assert prof["compress"] == "deflate" and prof["blockxsize"] == 32 and prof["dtype"] == "uint8"
    assert prof["transform"] == tr and prof["crs"].to_epsg() == EPSG and prof["nodata"] == 0
    lab = np.full((32, 32), 255, np.uint8)
    lab[:8] = 3
    p2 = write_patch_tif(tmp_path / "lab.tif", lab, tr, f"EPSG:{EPSG}", 255, {3: (10, 20, 30)})
    with rasterio.open(p2) as ds:
        assert ds.count == 1 and ds.nodata == 255
        assert ds.colormap(1)[3] == (10, 20, 30, 255)
        assert (ds.read(1) == lab).all()
    big = np.zeros((1, 512, 512), np.uint16)
    p3 = write_patch_tif(tmp_path / "big.tif", big, tr, f"EPSG:{EPSG}", 65535)
    with rasterio.open(p3) as ds:
        assert ds.block_shapes[0] == (256, 256) and ds.dtypes[0] == "uint16"
    assert sorted(x.name for x in tmp_path.rglob("*")) == ["a", "big.tif", "lab.tif", "rgb.tif"]


# ----------------------------------------------------------------------------- stage: basics


def test_tile_same_grid_known_answer(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif")
    img2 = render(Affine(1, 0, X0, 0, -1, Y0), 64, 64)[::-1].copy()  # different content, same grid
    t2 = write_rgb(tmp_path / "t2.tif", data=img2)
    lay = Layout(tmp_path / "out")
    res = tile_aoi(aoi_spec(t1, t2), _cfg(), lay, progress=False)
    assert not res.coregistered and (res.n_windows, res.n_kept, res.n_skipped) == (16, 16, 0)
    idx = read_geoparquet(lay.patches("tst"))
    assert list(idx.columns) == INDEX_COLUMNS
    assert idx.crs.to_epsg() == EPSG
    expected_ids = [f"tst_r{r:03d}_c{c:03d}" for r in range(4) for c in range(4)]
    assert idx["patch_id"].tolist() == expected_ids
    row = idx.set_index("patch_id").loc["tst_r002_c001"]
    assert (row.px_col0, row.px_row0, row.size_px) == (16, 32, 16)
    assert (row.t1, row.t2, row.city) == ("2019-08-14", "2020-08-18", "testcity")
    assert row.hr_crs == "EPSG:32649"
    assert row.gsd_m == pytest.approx(1.0)
    assert row.hr_t1 == "aois/tst/hr/t1/tst_r002_c001.tif"
    assert row.geometry.bounds == (X0 + 16, Y0 - 48, X0 + 32, Y0 - 32)
    full1, _ = _read(t1)
    p1, prof = _read(lay.root / row.hr_t1)
    p2, _ = _read(lay.root / row.hr_t2)
    assert (p1 == full1[:, 32:48, 16:32]).all()
    assert (p2 == img2[:, 32:48, 16:32]).all()
    assert prof["transform"] == Affine(1, 0, X0 + 16, 0, -1, Y0 - 32)
    assert prof["compress"] == "deflate" and prof["dtype"] == "uint8" and prof["count"] == 3
    assert (lay.root / "aois/tst/hr/t1").is_dir()
    assert len(list((lay.root / "aois/tst/hr/t2").iterdir())) == 16
    # no temporaries left behind
    assert not [p for p in lay.root.rglob("*") if ".tmp" in p.name]


def test_stride_overlap_and_partial_edge(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif", width=60, height=40)
    t2 = write_rgb(tmp_path / "t2.tif", width=60, height=40)
    lay = Layout(tmp_path / "out")
    res = tile_aoi(aoi_spec(t1, t2), _cfg(stride_px=12, edge_windows="drop"), lay,
                   progress=False)
    # rows: (40-16)//12+1 = 3, cols: (60-16)//12+1 = 4
    assert (res.n_windows, res.n_kept) == (12, 12)
    idx = res.index
    assert sorted(set(idx.px_col0)) == [0, 12, 24, 36]
    assert sorted(set(idx.px_row0)) == [0, 12, 24]
    assert "tst_r002_c003" in set(idx.patch_id)
    # padded edge windows (the default): the last column (12 of 16 px inside) and row (4 of
    # 16 px: the 25 % minimum) are tiled too, their padding recorded, not held against them
    pad = tile_aoi(aoi_spec(t1, t2), _cfg(stride_px=12), Layout(tmp_path / "pad"),
                   progress=False)
    assert (pad.n_windows, pad.n_kept) == (20, 20)
    r = pad.index.set_index("patch_id")
    assert r.loc["tst_r003_c004", "edge_pad_frac"] == pytest.approx(1 - 12 * 4 / 256)
    assert r.loc["tst_r003_c004", "nodata_frac_t1"] == pytest.approx(1 - 12 * 4 / 256)
    assert r.loc["tst_r000_c000", "edge_pad_frac"] == 0.0
    with rasterio.open(Layout(tmp_path / "pad").root / r.loc["tst_r003_c004", "hr_t1"]) as ds:
        data = ds.read()
        assert ds.width == 16 and (data[:, 4:, :] == 0).all() and (data[:, :4, :12] > 0).all()


def test_nodata_skipping_and_fractions(tmp_path: Path) -> None:
    img1 = render(Affine(1, 0, X0, 0, -1, Y0), 64, 64)
    img1[:, 16:32, 32:48] = 0  # patch r1 c2 entirely no data in T1
    img1[:, 0, 0:4] = 0  # 4 px in r0 c0: 1.6 % -> kept
    img1[:, 48:64, 0:2] = 0  # 32 px in r3 c0: 12.5 % -> skipped
    img1[0, 40, 40] = 0  # one channel 0 is not no data (pixel no data only if all bands are)
    img2 = render(Affine(1, 0, X0, 0, -1, Y0), 64, 64)
    img2[:, 0:16, 48:64] = 0  # r0 c3 no data in T2 only
    t1 = write_rgb(tmp_path / "t1.tif", data=img1)
    t2 = write_rgb(tmp_path / "t2.tif", data=img2)
    lay = Layout(tmp_path / "out")
    res = tile_aoi(aoi_spec(t1, t2), _cfg(), lay, progress=False)
    ids = set(res.index.patch_id)
    assert (res.n_kept, res.n_skipped) == (13, 3)
    assert {"tst_r001_c002", "tst_r003_c000", "tst_r000_c003"}.isdisjoint(ids)
    r = res.index.set_index("patch_id")
    assert r.loc["tst_r000_c000", "nodata_frac_t1"] == pytest.approx(4 / 256)
    assert r.loc["tst_r000_c000", "nodata_frac_t2"] == 0.0
    assert r.loc["tst_r002_c002", "nodata_frac_t1"] == 0.0
    # a looser threshold keeps r3 c0 with the same id
    lay2 = Layout(tmp_path / "out2")
    res2 = tile_aoi(aoi_spec(t1, t2), _cfg(max_nodata_fraction=0.2), lay2, progress=False)
    assert set(res2.index.patch_id) == ids | {"tst_r003_c000"}


def test_alpha_band_marks_no_data(tmp_path: Path) -> None:
    tr = Affine(1, 0, X0, 0, -1, Y0)
    rgba = np.concatenate([render(tr, 32, 32), np.full((1, 32, 32), 255, np.uint8)])
    rgba[3, :16, :16] = 0  # alpha 0 -> no data in r0 c0
    p = tmp_path / "rgba.tif"
    with rasterio.open(
        p, "w", driver="GTiff", width=32, height=32, count=4, dtype="uint8",
        crs=f"EPSG:{EPSG}", transform=tr, photometric="RGB", alpha="YES",
    ) as dst:
        dst.write(rgba)
    assert inspect_raster(p).has_alpha
    t2 = write_rgb(tmp_path / "t2.tif", width=32, height=32, nodata=None)
    res = tile_aoi(aoi_spec(p, t2), _cfg(), Layout(tmp_path / "o"), progress=False)
    assert sorted(res.index.patch_id) == ["tst_r000_c001", "tst_r001_c000", "tst_r001_c001"]


def test_rerun_is_deterministic_and_replaces_outputs(tmp_path: Path) -> None:
    img1 = render(Affine(1, 0, X0, 0, -1, Y0), 64, 64)
    img1[:, 0:16, 0:8] = 0
    t1 = write_rgb(tmp_path / "t1.tif", data=img1)
    t2 = write_rgb(tmp_path / "t2.tif")
    lay = Layout(tmp_path / "out")
    a = tile_aoi(aoi_spec(t1, t2), _cfg(max_nodata_fraction=0.6), lay, progress=False)
    files_a = {p.name: _read(p)[0] for p in lay.hr_dir("tst", "t1").iterdir()}
    b = tile_aoi(aoi_spec(t1, t2), _cfg(max_nodata_fraction=0.6), lay, progress=False)
    assert a.index.drop(columns="geometry").equals(b.index.drop(columns="geometry"))
    assert all((_read(lay.hr_dir("tst", "t1") / n)[0] == arr).all() for n, arr in files_a.items())
    # stricter threshold: the dropped patch disappears from disk too
    c = tile_aoi(aoi_spec(t1, t2), _cfg(max_nodata_fraction=0.1), lay, progress=False)
    assert "tst_r000_c000" in set(a.index.patch_id) and "tst_r000_c000" not in set(c.index.patch_id)
    assert not (lay.hr_dir("tst", "t1") / "tst_r000_c000.tif").exists()
    assert len(list(lay.hr_dir("tst", "t2").iterdir())) == c.n_kept == 15


def test_memory_bound_strip_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.io.ongrid as ongrid

    # tiled scenes: a striped one is read in whole rows (next test)
    t1 = write_rgb(tmp_path / "t1.tif", width=96, height=48, tiled=16)
    tr2 = Affine(1, 0, X0 + 2, 0, -1, Y0)
    t2 = write_rgb(tmp_path / "t2.tif", width=96, height=48, transform=tr2, tiled=16)
    seen: list[tuple[int, int]] = []
    real = ongrid.read_window

    def spy(ds, window, bands=None, what="image"):  # type: ignore[no-untyped-def]
        seen.append((int(window.height), int(window.width)))
        return real(ds, window, bands)

    monkeypatch.setattr(ongrid, "read_window", spy)
    spec = aoi_spec(t1, t2, name="m")
    cfg = _cfg()
    la, lb = Layout(tmp_path / "ra"), Layout(tmp_path / "rb")
    small = tile_pair(spec, cfg, la, progress=False, strip_max_patches=2)
    assert max(h for h, _ in seen) == 16 and max(w for _, w in seen) == 32
    assert len(seen) == 2 * 3 * 3  # 2 dates x 3 rows x 3 segments of 2 patches
    seen.clear()
    big = tile_pair(spec, cfg, lb, progress=False)
    assert max(w for _, w in seen) == 96
    assert small.index.patch_id.tolist() == big.index.patch_id.tolist()
    for pid in small.index.patch_id:
        pa, pb = la.hr_dir("m", "t2") / f"{pid}.tif", lb.hr_dir("m", "t2") / f"{pid}.tif"
        assert pa.is_file() and pb.is_file()
        a2, b2 = _read(pa)[0], _read(pb)[0]
        assert (a2 == b2).all()


def test_striped_scenes_are_read_in_whole_rows(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    # a striped file decodes whole rows for any window: narrower segments would decode each
    # row again per segment once GDAL's block cache no longer holds them (a wide city)
    import pipeline.io.ongrid as ongrid

    t1 = write_rgb(tmp_path / "t1.tif", width=96, height=48)  # striped (GDAL's default)
    t2 = write_rgb(tmp_path / "t2.tif", width=96, height=48, tiled=16)
    assert inspect_raster(t1).block_shape[1] == 96 and inspect_raster(t2).block_shape == (16, 16)
    seen: list[int] = []
    real = ongrid.read_window

    def spy(ds, window, bands=None, what="image"):  # type: ignore[no-untyped-def]
        seen.append(int(window.width))
        return real(ds, window, bands)

    monkeypatch.setattr(ongrid, "read_window", spy)
    lay = Layout(tmp_path / "o")
    with caplog.at_level(logging.INFO):
        res = tile_pair(aoi_spec(t1, t2, name="m"), _cfg(), lay, progress=False,
                        strip_max_patches=2)
    assert seen == [96] * 6  # 2 dates x 3 rows, each row whole
    assert "t1.tif is stored in strips" in caplog.text and "TILED=YES" in caplog.text
    assert res.n_kept == 18


# ----------------------------------------------------------------------------- co-registration


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_coregistration_of_shifted_t2(
    tmp_path: Path, resampling: str, caplog: pytest.LogCaptureFixture
) -> None:
    # T2 on a grid shifted by (+3, -2) px with a different shape: after tiling, T2 patch
    # pixels show the same ground as T1 pixels (the pattern is a function of ground x, y)
    t1 = write_rgb(tmp_path / "t1.tif")
    tr2 = Affine(1, 0, X0 + 3, 0, -1, Y0 - 2)
    t2 = write_rgb(tmp_path / "t2.tif", transform=tr2, width=70, height=60)
    lay = Layout(tmp_path / "out")
    with caplog.at_level(logging.INFO):
        res = tile_aoi(aoi_spec(t1, t2), _cfg(coregister_resampling=resampling), lay,
                             progress=False)
    assert res.coregistered
    # a whole-pixel shift: read shifted, not resampled (the same pixels whatever the resampling)
    assert "T2's windows are read shifted, not resampled" in caplog.text
    assert "warping" not in caplog.text
    # T2 covers T1 columns 3..72 and rows 2..61: lattice column 0 and rows 0 and 3 lack T2 data
    assert res.n_skipped == 10 and res.n_kept == 6
    kept = [f"tst_r{r:03d}_c{c:03d}" for r in (1, 2) for c in (1, 2, 3)]
    assert sorted(res.index.patch_id) == kept
    for row in res.index.itertuples():
        a, prof1 = _read(lay.root / row.hr_t1)
        b, prof2 = _read(lay.root / row.hr_t2)
        assert prof1["transform"] == prof2["transform"]
        np.testing.assert_array_equal(a, b)


def test_coregistration_from_another_crs(tmp_path: Path) -> None:
    # T2 = T1 warped to EPSG:4326 (different CRS, ~0.7 m pixels): back on T1's grid, interior
    # patches match T1 within resampling error; a 4 px misregistration would be much worse
    tr1 = Affine(1, 0, X0, 0, -1, Y0)
    img1 = render(tr1, 64, 64)
    t1 = write_rgb(tmp_path / "t1.tif", data=img1, transform=tr1)
    dst_tr, w, h = calculate_default_transform(
        f"EPSG:{EPSG}", "EPSG:4326", 64, 64, X0, Y0 - 64, X0 + 64, Y0, resolution=7e-6
    )
    img2 = np.zeros((3, h, w), np.uint8)
    reproject(img1, img2, src_transform=tr1, src_crs=f"EPSG:{EPSG}", dst_transform=dst_tr,
              dst_crs="EPSG:4326", resampling=Resampling.bilinear, src_nodata=0, dst_nodata=0)
    t2 = write_rgb(tmp_path / "t2.tif", data=img2, transform=dst_tr, crs="EPSG:4326")
    lay = Layout(tmp_path / "out")
    res = tile_aoi(aoi_spec(t1, t2), _cfg(max_nodata_fraction=0.5), lay, progress=False)
    assert res.coregistered and res.hr_crs == f"EPSG:{EPSG}"
    inner = res.index[res.index.patch_id == "tst_r001_c001"].iloc[0]
    a = _read(lay.root / inner.hr_t1)[0].astype(float)
    b = _read(lay.root / inner.hr_t2)[0].astype(float)
    err = np.abs(a - b).mean()
    shifted = np.abs(img1[:, 16:32, 20:36].astype(float) - a).mean()
    assert err < 4.0
    assert shifted > 4 * err


# ----------------------------------------------------------------------------- bad inputs


def _assert_no_outputs(lay: Layout) -> None:
    assert _outputs(lay.root) in ([], ["aois"], ["aois", "aois/tst"]), _outputs(lay.root)


def test_missing_image(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif")
    lay = Layout(tmp_path / "out")
    with pytest.raises(InputError, match=r"T2 image .*nope\.tif does not exist"):
        tile_aoi(aoi_spec(t1, tmp_path / "nope.tif"), _cfg(), lay, progress=False)
    with pytest.raises(InputError, match=r"'tst' T1 image .*nope\.tif does not exist.*fix the"):
        tile_aoi(aoi_spec(tmp_path / "nope.tif", t1), _cfg(), lay, progress=False)
    _assert_no_outputs(lay)


def test_unreadable_image(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    t1 = write_rgb(tmp_path / "t1.tif")
    with pytest.raises(InputError, match="cannot be read as a raster"):
        tile_aoi(aoi_spec(t1, bad), _cfg(), Layout(tmp_path / "o"), progress=False)


def test_no_crs(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif", crs=None)
    t2 = write_rgb(tmp_path / "t2.tif")
    lay = Layout(tmp_path / "out")
    with pytest.raises(InputError, match=r"T1 image .*t1\.tif has no CRS: assign one"):
        tile_aoi(aoi_spec(t1, t2), _cfg(), lay, progress=False)
    _assert_no_outputs(lay)


def test_no_geotransform(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif")
    t2 = write_rgb(tmp_path / "t2.tif", transform=Affine.identity())
    lay = Layout(tmp_path / "out")
    with pytest.raises(InputError, match=r"T2 image .*t2\.tif has no geotransform"):
        tile_aoi(aoi_spec(t1, t2), _cfg(), lay, progress=False)
    _assert_no_outputs(lay)


def test_rotated_grid(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif", transform=Affine(1, 0.2, X0, 0.2, -1, Y0))
    t2 = write_rgb(tmp_path / "t2.tif")
    with pytest.raises(InputError, match="not north-up"):
        tile_aoi(aoi_spec(t1, t2), _cfg(), Layout(tmp_path / "o"), progress=False)


def test_no_overlap(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif")
    t2 = write_rgb(tmp_path / "t2.tif", transform=Affine(1, 0, X0 + 5000, 0, -1, Y0))
    lay = Layout(tmp_path / "out")
    msg = r"'tst': T1 image .*t1\.tif and T2 image .*t2\.tif do not overlap"
    with pytest.raises(TilingError, match=msg):
        tile_aoi(aoi_spec(t1, t2), _cfg(), lay, progress=False)
    _assert_no_outputs(lay)


def test_patch_larger_than_image(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif")
    t2 = write_rgb(tmp_path / "t2.tif")
    lay = Layout(tmp_path / "out")
    msg = r"t1\.tif: patch size 128 px is larger than the image \(64 x 64"
    with pytest.raises(TilingError, match=msg):
        tile_aoi(aoi_spec(t1, t2), _cfg(patch_size_px=128, edge_windows="drop"), lay,
                 progress=False)
    _assert_no_outputs(lay)
    with pytest.raises(TilingError, match=msg):  # 64 of 128 px inside: under 60 %
        tile_aoi(aoi_spec(t1, t2), _cfg(patch_size_px=128, min_edge_fraction=0.6), lay,
                 progress=False)
    res = tile_aoi(aoi_spec(t1, t2), _cfg(patch_size_px=128), lay, progress=False)
    assert res.n_kept == 1 and res.index["edge_pad_frac"].iloc[0] == pytest.approx(0.75)


def test_dtypes_and_band_counts_users_have(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    t1 = write_rgb(tmp_path / "t1.tif")
    t16 = write_rgb(tmp_path / "t16.tif", dtype="uint16")
    with pytest.raises(TilingError, match="T1 is uint8 but T2 is uint16"):
        tile_aoi(aoi_spec(t1, t16), _cfg(), Layout(tmp_path / "o"), progress=False)
    # panchromatic: one band, repeated as R = G = B
    gray = write_rgb(tmp_path / "gray.tif", count=1)
    res = tile_aoi(aoi_spec(gray, gray), _cfg(), Layout(tmp_path / "pan"), progress=False)
    with rasterio.open(Layout(tmp_path / "pan").root / res.index["hr_t1"].iloc[0]) as ds:
        a = ds.read()
        assert ds.count == 3 and (a[0] == a[1]).all() and (a[1] == a[2]).all()
    assert res.index["hr_bands"].iloc[0] == "[1, 1, 1]"
    # 4-band RGBN: NIR is not dropped silently, and tile.bands picks other bands
    rgb = render(Affine(1, 0, X0, 0, -1, Y0), 64, 64)
    rgbn = write_rgb(tmp_path / "rgbn.tif", data=np.concatenate([rgb, rgb[:1] // 2]), count=4)
    from rasterio.enums import ColorInterp

    with rasterio.open(rgbn, "r+") as ds:  # NAIP-style: band 4 is NIR, not alpha
        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                          ColorInterp.undefined]
    with caplog.at_level(logging.WARNING):
        tile_aoi(aoi_spec(rgbn, rgbn), _cfg(), Layout(tmp_path / "rgbn"), progress=False)
    assert "bands [4] are not tiled" in caplog.text
    nir = tile_aoi(aoi_spec(rgbn, rgbn), _cfg(bands=[4, 3, 2]), Layout(tmp_path / "nir"),
                   progress=False)
    assert nir.index["hr_bands"].iloc[0] == "[4, 3, 2]"
    with pytest.raises(TilingError, match=r"tile.bands \[5\]: the image has only 4"):
        tile_aoi(aoi_spec(rgbn, rgbn), _cfg(bands=[5]), Layout(tmp_path / "x"), progress=False)


def test_16_bit_imagery_is_scaled_with_a_recorded_rule(tmp_path: Path) -> None:
    import json

    rng = np.random.default_rng(3)
    img = rng.integers(100, 4000, (3, 64, 64)).astype(np.uint16)  # e.g. WorldView DN
    img[:, :4, :4] = 0  # no data
    t1 = write_rgb(tmp_path / "t1.tif", data=img, dtype="uint16")
    t2 = write_rgb(tmp_path / "t2.tif", data=img, dtype="uint16")
    lay = Layout(tmp_path / "o")
    res = tile_aoi(aoi_spec(t1, t2), _cfg(max_nodata_fraction=0.1), lay, progress=False)
    rule = json.loads(res.index["hr_scale"].iloc[0])
    assert rule["mode"] == "percentile" and rule["dtype"] == "uint16"
    v = img[0][img[0] > 0]
    assert rule["low"][0] == pytest.approx(np.percentile(v, 2.0), rel=0.02)
    r0 = res.index.set_index("patch_id").loc["tst_r000_c000"]
    with rasterio.open(lay.root / r0.hr_t1) as ds:
        a = ds.read()
        assert ds.dtypes[0] == "uint8" and ds.nodata == 0
        assert (a[:, :4, :4] == 0).all() and (a[:, 4:, 4:] >= 1).all()
    fixed = tile_aoi(aoi_spec(t1, t2), _cfg(max_nodata_fraction=0.1, scale="range",
                                            scale_range=(0.0, 4000.0)),
                     Layout(tmp_path / "r"), progress=False)
    assert json.loads(fixed.index["hr_scale"].iloc[0])["high"] == [4000.0] * 3


def test_everything_no_data(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif", data=np.zeros((3, 64, 64), np.uint8))
    t2 = write_rgb(tmp_path / "t2.tif")
    lay = Layout(tmp_path / "out")
    with pytest.raises(TilingError, match=r"none of the 16 windows.*tile\.max_nodata_fraction"):
        tile_aoi(aoi_spec(t1, t2), _cfg(), lay, progress=False)
    _assert_no_outputs(lay)


def test_template_aoi_refused(tmp_path: Path) -> None:
    spec = aoi_spec(tmp_path / "a.tif", tmp_path / "b.tif", name="tmpl", template=True)
    with pytest.raises(ConfigError, match=r"'tmpl' is a template.*template: true"):
        tile_aoi(spec, _cfg(), Layout(tmp_path / "o"), progress=False)


def test_failure_mid_write_leaves_previous_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.io.geotiff as geotiff

    t1 = write_rgb(tmp_path / "t1.tif")
    t2 = write_rgb(tmp_path / "t2.tif")
    lay = Layout(tmp_path / "out")
    tile_aoi(aoi_spec(t1, t2), _cfg(), lay, progress=False)
    before = _outputs(lay.root)
    index_bytes = lay.patches("tst").read_bytes()
    real = geotiff.write_patch_tif
    calls = {"n": 0}

    def flaky(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(geotiff, "write_patch_tif", flaky)
    with pytest.raises(OSError, match="disk full"):
        tile_aoi(aoi_spec(t1, t2), _cfg(stride_px=8), lay, progress=False)
    assert _outputs(lay.root) == before
    assert lay.patches("tst").read_bytes() == index_bytes
    # a fresh failure on a clean root leaves nothing at all
    lay2 = Layout(tmp_path / "out2")
    calls["n"] = 0
    with pytest.raises(OSError):
        tile_aoi(aoi_spec(t1, t2), _cfg(), lay2, progress=False)
    _assert_no_outputs(lay2)


def test_tiling_error_is_a_pipeline_error() -> None:
    assert issubclass(TilingError, InputError) and issubclass(TilingError, PipelineError)


def test_coregistration_without_nodata_masks_outside(tmp_path: Path) -> None:
    # neither image declares nodata: the warped T2 gets an alpha band, so T1 pixels outside T2
    # still count as no data
    t1 = write_rgb(tmp_path / "t1.tif", nodata=None)
    t2 = write_rgb(tmp_path / "t2.tif", nodata=None, transform=Affine(1, 0, X0 + 20, 0, -1, Y0))
    res = tile_aoi(aoi_spec(t1, t2), _cfg(), Layout(tmp_path / "o"), progress=False)
    assert res.coregistered
    assert sorted({int(c) for c in res.index.px_col0}) == [32, 48]
    r = res.index.set_index("patch_id")
    assert r.loc["tst_r000_c002", "nodata_frac_t2"] == 0.0


def test_masked_patch_keeps_validity_without_nodata(tmp_path: Path) -> None:
    # sources without a nodata value: masked pixels survive as an internal mask band, so
    # downstream readers (labels) see them as no data
    t1 = write_rgb(tmp_path / "t1.tif", nodata=None)
    t2 = write_rgb(tmp_path / "t2.tif", nodata=None, transform=Affine(1, 0, X0 + 2, 0, -1, Y0))
    lay = Layout(tmp_path / "o")
    res = tile_aoi(aoi_spec(t1, t2), _cfg(max_nodata_fraction=0.2), lay, progress=False)
    row = res.index.set_index("patch_id").loc["tst_r000_c000"]
    assert row.nodata_frac_t2 == pytest.approx(2 / 16)
    with rasterio.open(lay.root / row.hr_t2) as ds:
        assert ds.nodata is None
        valid = ds.read_masks(1) > 0
    assert not valid[:, :2].any() and valid[:, 2:].all()
    assert sorted(p.name for p in lay.hr_dir("tst", "t2").iterdir() if p.suffix != ".tif") == []


def test_coarse_imagery_is_refused_with_the_gsd(tmp_path: Path) -> None:
    # a 300 m "HR" image (e.g. a MODIS-like product): refused before anything is written
    tr = Affine(300.0, 0, X0, 0, -300.0, Y0)
    t1 = write_rgb(tmp_path / "t1.tif", width=64, height=64, transform=tr)
    t2 = write_rgb(tmp_path / "t2.tif", width=64, height=64, transform=tr)
    lay = Layout(tmp_path / "o")
    with pytest.raises(TilingError, match=r"has 300 m pixels \(measured at the image centre\), "
                                          r"outside .*0\.02\.\.5 m \(\+-0\.1%\)"):
        tile_aoi(aoi_spec(t1, t2), _cfg(), lay, progress=False)
    assert not lay.patches("tst").exists() and not lay.hr_dir("tst", "t1").exists()
    res = tile_aoi(aoi_spec(t1, t2), _cfg(max_gsd_m=500.0), lay, progress=False)
    assert res.gsd_m == pytest.approx(300.0)


def test_gsd_bounds_have_a_tolerance_and_the_error_states_the_measured_value() -> None:
    from pipeline.hr.tiling import GSD_TOLERANCE, gsd_in_range

    assert gsd_in_range(5.000002, 0.02, 5.0) and gsd_in_range(0.0199999, 0.02, 5.0)
    assert not gsd_in_range(5.0 * (1 + 2 * GSD_TOLERANCE), 0.02, 5.0)
    assert not gsd_in_range(0.02 * (1 - 2 * GSD_TOLERANCE), 0.02, 5.0)


def test_footprint_unions_need_no_dense_grid() -> None:
    import tracemalloc

    from pipeline.grid import AoiGrid, union_pixel_count
    from pipeline.sentinel.blocks import needed_chunks

    # the footprints of a 300 m image: 76,800 px sides on a 200,000 px grid (40 G pixels)
    grid = AoiGrid(epsg=32649, res_m=10.0, x0=0.0, y0=0.0, width=200_000, height=200_000)
    c0 = np.array([0, 50_000, 120_000])
    r0 = np.array([0, 30_000, 120_000])
    tracemalloc.start()
    n = union_pixel_count(c0, r0, 76_800, grid)
    need = needed_chunks(grid, c0, r0, 76_800, 64)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    overlap = (76_800 - 50_000) * (76_800 - 30_000)
    assert n == 3 * 76_800**2 - overlap
    assert need.shape == (3125, 3125) and need[0, 0] and not need[-1, 0]
    assert peak < 200e6  # a dense mask would be 40 GB


def test_truncated_scene_names_the_aoi_date_and_file(tmp_path: Path) -> None:
    t1 = write_rgb(tmp_path / "t1.tif", width=96, height=96)
    t2 = write_rgb(tmp_path / "t2.tif", width=96, height=96)
    data = t2.read_bytes()
    t2.write_bytes(data[: len(data) // 2])  # a download cut off half-way
    lay = Layout(tmp_path / "o")
    with pytest.raises(InputError, match=r"AOI 'tst' T2 image .*t2\.tif cannot be read") as info:
        tile_aoi(aoi_spec(t1, t2), _cfg(), lay, progress=False)
    assert "truncated or corrupt" in str(info.value)
    assert not lay.patches("tst").exists()


def test_colour_and_single_band_dates_are_refused(tmp_path: Path) -> None:
    """T1 in colour with T2 single-band would give grey T2 patches next to colour T1 ones:
    refused, naming both files; tile.bands picks one rule for both dates."""
    rgb = write_rgb(tmp_path / "t1.tif")
    gray = write_rgb(tmp_path / "t2.tif", count=1)
    lay = Layout(tmp_path / "out")
    with pytest.raises(TilingError, match=r"T1 image .*t1\.tif is colour \(3 bands\) but T2 "
                                          r"image .*t2\.tif is single-band \(1 bands\)"):
        tile_aoi(aoi_spec(rgb, gray), _cfg(), lay, progress=False)
    _assert_no_outputs(lay)
    res = tile_aoi(aoi_spec(rgb, gray), _cfg(bands=[1]), lay, progress=False)
    assert res.n_kept > 0 and res.index["hr_bands"].iloc[0] == "[1, 1, 1]"


def test_pixel_count_guard_names_the_measured_size(tmp_path: Path) -> None:
    """A header declaring a huge raster (a sparse 200,000 px square TIFF is a few MB) is
    refused before any tiling, with its measured size in the message."""
    big = tmp_path / "big.tif"
    with rasterio.open(big, "w", driver="GTiff", width=200_000, height=200_000, count=3,
                       dtype="uint8", crs=f"EPSG:{EPSG}", tiled=True, sparse_ok=True,
                       transform=Affine(0.5, 0, X0, 0, -0.5, Y0)):
        pass
    assert big.stat().st_size < 10_000_000  # tile offsets only
    t2 = write_rgb(tmp_path / "t2.tif")
    lay = Layout(tmp_path / "out")
    with pytest.raises(TilingError, match=r"T1 image .*big\.tif declares 200000 x 200000 = "
                                          r"40,000,000,000 pixels, more than "
                                          r"tile\.max_input_pixels = 10,000,000,000"):
        tile_aoi(aoi_spec(big, t2), _cfg(), lay, progress=False)
    _assert_no_outputs(lay)
    with pytest.raises(TilingError, match="max_input_pixels = 1,000"):
        tile_aoi(aoi_spec(t2, t2), _cfg(max_input_pixels=1000), lay, progress=False)
