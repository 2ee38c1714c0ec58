"""A source on the target grid shifted by whole pixels is read, not warped
(``pipeline.io.ongrid.open_on_grid`` / ``ShiftedView``): the same pixels and masks as GDAL's
warped VRT gives, for every resampling, window and no-data convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from pipeline.io import ongrid
from pipeline.io.ongrid import ShiftedView, open_on_grid, read_window, whole_pixel_offset

CRS = "EPSG:32649"
T1 = Affine(0.5, 0, 650000.0, 0, -0.5, 3795000.0)


def _write(path: Path, transform: Affine, w: int = 70, h: int = 50, nodata: float | None = 0,
           alpha: bool = False, dtype: str = "uint8", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 250, (3, h, w)).astype(dtype)
    data[:, :5, :7] = 0  # a corner of zeros: no data where 0 is the nodata value
    count = 4 if alpha else 3
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=count, dtype=dtype,
                       crs=CRS, transform=transform, nodata=nodata) as ds:
        ds.write(data, [1, 2, 3])
        if alpha:
            a = np.full((h, w), 255, np.uint8)
            a[-6:, -9:] = 0
            ds.write(a.astype(dtype), 4)
            ds.colorinterp = [*ds.colorinterp[:3], rasterio.enums.ColorInterp.alpha]
    return path


def _warped(path: Path, width: int, height: int, resampling: str, nodata: float | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """What ``open_on_grid`` returned before the shortcut: the warped VRT's data and masks."""
    with rasterio.open(path) as src:
        kw: dict = {"crs": CRS, "transform": T1, "width": width, "height": height,
                    "resampling": rasterio.enums.Resampling[resampling]}
        nd = src.nodata if src.nodata is not None else nodata
        if nd is not None:
            kw.update(src_nodata=nd, nodata=nd)
        elif not any(MaskFlags.per_dataset in f or MaskFlags.alpha in f
                     for f in src.mask_flag_enums):
            kw["add_alpha"] = True
        with WarpedVRT(src, **kw) as vrt:
            return vrt.read([1, 2, 3]), vrt.read_masks([1, 2, 3])


def test_whole_pixel_offset() -> None:
    assert whole_pixel_offset(rasterio.crs.CRS.from_user_input(CRS), T1, CRS, T1) == (0, 0)
    src = T1 @ Affine.translation(-3, 2)  # the source's origin: T1's pixel (-3, 2)
    assert whole_pixel_offset(rasterio.crs.CRS.from_user_input(CRS), src, CRS, T1) == (3, -2)
    c = rasterio.crs.CRS.from_user_input(CRS)
    assert whole_pixel_offset(c, T1 @ Affine.translation(0.5, 0), CRS, T1) is None  # half px
    assert whole_pixel_offset(c, T1 @ Affine.scale(2), CRS, T1) is None  # another pixel size
    assert whole_pixel_offset(c, T1, "EPSG:32650", T1) is None  # another CRS
    assert whole_pixel_offset(None, T1, CRS, T1) is None
    # the same CRS spelled otherwise (a WKT without authority codes, PROJ) is the same grid
    import re

    bare = re.sub(r',AUTHORITY\["EPSG","\d+"\]', "", c.to_wkt())
    assert "AUTHORITY" not in bare
    assert whole_pixel_offset(rasterio.crs.CRS.from_wkt(bare), T1, CRS, T1) == (0, 0)
    proj = "+proj=utm +zone=49 +datum=WGS84 +units=m +no_defs"
    assert whole_pixel_offset(rasterio.crs.CRS.from_proj4(proj), T1, CRS, T1) == (0, 0)
    rotated = Affine(0.5, 0.01, 650000.0, 0.01, -0.5, 3795000.0)
    assert whole_pixel_offset(c, rotated, CRS, rotated) is None
    # decimal coordinates' float noise still counts as a whole pixel
    noisy = Affine(0.5, 0, 650000.0 + 1.5 + 1e-9, 0, -0.5, 3795000.0 - 2.0 - 1e-9)
    assert whole_pixel_offset(c, noisy, CRS, T1) == (-3, -4)


@pytest.mark.parametrize("resampling", ["nearest", "bilinear", "cubic"])
@pytest.mark.parametrize("case", ["nodata", "alpha", "no_mask", "fallback"])
def test_same_pixels_and_masks_as_the_warped_vrt(tmp_path: Path, resampling: str,
                                                 case: str) -> None:
    # the source lies 3 px right of and 2 px below the target's origin, and ends inside it:
    # windows cross its edges on every side
    src_tr = T1 @ Affine.translation(3, 2)
    f = _write(tmp_path / "s.tif", src_tr, nodata=None if case != "nodata" else 0,
               alpha=case == "alpha")
    fallback = 0 if case == "fallback" else None
    W, H = 80, 60
    want_data, want_masks = _warped(f, W, H, resampling, nodata=fallback)
    with open_on_grid(f, CRS, T1, W, H, resampling=resampling, nodata=fallback) as ds:
        assert isinstance(ds, ShiftedView)
        assert ds.nodata == (0 if case in ("nodata", "fallback") else None)
        for win in (Window(0, 0, W, H), Window(0, 0, 20, 10), Window(60, 40, 20, 20),
                    Window(70, 55, 10, 5), Window(1, 1, 3, 3)):
            sl = win.toslices()
            got = ds.read([1, 2, 3], window=win)
            np.testing.assert_array_equal(got, want_data[(slice(None), *sl)])
            np.testing.assert_array_equal(ds.read_masks([1, 2, 3], window=win),
                                          want_masks[(slice(None), *sl)])
            # one band as an int, another output type
            np.testing.assert_array_equal(ds.read(2, window=win, out_dtype="float32"),
                                          want_data[1][sl].astype("float32"))
            np.testing.assert_array_equal(ds.read_masks(2, window=win), want_masks[1][sl])
            # the validity tiling uses (the mask derived from the data for nodata-only bands)
            _, valid = read_window(ds, win, [1, 2, 3])
            np.testing.assert_array_equal(valid, np.any(want_masks[(slice(None), *sl)] > 0, 0))
    # the masks are not trivial: outside the 70 x 50 source, plus the 5 x 7 zeros (a nodata
    # value) or the 6 x 9 alpha hole
    inside = {"nodata": 5 * 7, "fallback": 5 * 7, "alpha": 6 * 9, "no_mask": 0}[case]
    assert (want_masks == 0).sum() == 3 * (W * H - 70 * 50 + inside)


def test_a_fractional_shift_is_still_warped(tmp_path: Path) -> None:
    f = _write(tmp_path / "s.tif", T1 @ Affine.translation(0.25, 0))
    with open_on_grid(f, CRS, T1, 40, 40) as ds:
        assert isinstance(ds, WarpedVRT)


def test_read_window_mask_from_data_equals_gdals_mask(tmp_path: Path) -> None:
    # warped (fractional shift) and plain nodata rasters: the mask derived from the pixels is
    # the mask GDAL reads; a value out of the dtype's range is no nodata at all
    f = _write(tmp_path / "s.tif", T1 @ Affine.translation(0.25, 0.5))
    with open_on_grid(f, CRS, T1, 60, 40) as vrt:
        _, valid = read_window(vrt, Window(0, 0, 60, 40), [1, 2, 3])
        masks = vrt.read_masks([1, 2, 3], window=Window(0, 0, 60, 40))
    np.testing.assert_array_equal(valid, np.any(masks > 0, axis=0))
    assert 0 < (~valid).sum() < valid.size
    g = _write(tmp_path / "u16.tif", T1, dtype="uint16", nodata=0)
    with rasterio.open(g) as ds:
        _, valid = read_window(ds, Window(0, 0, 70, 50), [1, 2, 3])
        np.testing.assert_array_equal(valid, np.any(ds.read_masks([1, 2, 3]) > 0, axis=0))
        assert not valid[:5, :7].any() and valid[5:, 7:].all()


def test_tiling_a_whole_pixel_shift_warps_nothing(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # the T2 of a whole-pixel shift never goes through GDAL's warper (the reason for the view)
    from pipeline.config import TileConfig
    from pipeline.hr.drivers import tile_aoi
    from pipeline.layout import Layout
    from tests.hr_helpers import X0, Y0, aoi_spec, write_rgb

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("warped")

    monkeypatch.setattr(ongrid, "WarpedVRT", refuse)
    t1 = write_rgb(tmp_path / "t1.tif")
    t2 = write_rgb(tmp_path / "t2.tif", transform=Affine(1, 0, X0 + 3, 0, -1, Y0 - 2),
                   width=70, height=60)
    cfg = TileConfig.model_validate({"patch_size_px": 16, "max_nodata_fraction": 0.05,
                                     "coregister_resampling": "bilinear"})
    res = tile_aoi(aoi_spec(t1, t2), cfg, Layout(tmp_path / "out"), progress=False)
    assert res.coregistered and res.n_kept == 6


def test_float_scenes_with_nan_nodata(tmp_path: Path) -> None:
    # a Sentinel-1 backscatter file: float32, NaN = no data; read as the scene reader reads
    # it (one band, float32 out, on the AOI frame), tolerance ~exact
    src_tr = T1 @ Affine.translation(-4, 3)
    data = np.random.default_rng(1).random((1, 50, 70)).astype("float32")
    data[0, 10:20, 30:40] = np.nan
    f = tmp_path / "vv.tif"
    with rasterio.open(f, "w", driver="GTiff", width=70, height=50, count=1, dtype="float32",
                       crs=CRS, transform=src_tr, nodata=float("nan")) as ds:
        ds.write(data)
    W, H = 80, 60
    with rasterio.open(f) as src, WarpedVRT(
            src, crs=CRS, transform=T1, width=W, height=H, src_nodata=src.nodata,
            nodata=src.nodata, tolerance=1e-6, dtype="float32",
            resampling=rasterio.enums.Resampling.bilinear) as vrt:
        want, want_m = vrt.read(1, out_dtype="float32"), vrt.read_masks(1)
    with open_on_grid(f, CRS, T1, W, H, "bilinear", tolerance=1e-6, dtype="float32") as ds:
        assert isinstance(ds, ShiftedView) and np.isnan(ds.nodata)
        got, got_m = ds.read(1, out_dtype="float32"), ds.read_masks(1)
    np.testing.assert_array_equal(got, want)  # NaN where NaN
    np.testing.assert_array_equal(got_m, want_m)
    # outside the source (it covers target cols 0..65, rows 3..52) and the NaN block
    assert np.isnan(got).sum() == (got_m == 0).sum() == W * H - 66 * 50 + 100


def test_a_fallback_nodata_the_type_cannot_hold(tmp_path: Path) -> None:
    # nodata=-9999 given for a uint8 file: the view cannot fill -9999 into uint8, so outside
    # pixels read 0; the masks (what every reader of these windows uses) are the warper's
    f = _write(tmp_path / "s.tif", T1 @ Affine.translation(3, 2), nodata=None)
    _, want_masks = _warped(f, 80, 60, "bilinear", nodata=-9999)
    with open_on_grid(f, CRS, T1, 80, 60, nodata=-9999) as ds:
        got = ds.read([1, 2, 3])
        np.testing.assert_array_equal(ds.read_masks([1, 2, 3]), want_masks)
    assert got.dtype == np.uint8 and not got[:, :2, :3].any()
    assert (want_masks == 0).sum() == 3 * (80 * 60 - 70 * 50)
