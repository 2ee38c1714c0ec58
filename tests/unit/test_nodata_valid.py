"""A band whose only mask is its nodata value gets its validity from the pixels already read
(``pipeline.io.ongrid.nodata_valid`` / ``read_with_valid``), not from a second ``read_masks``
pass (which, on a warped view, warped the window again: about as costly as the read itself on a
deflate COG). The derived mask must be GDAL's own, bit for bit: integer bands compare with the
nodata value, float bands use GDAL's ``ARE_REAL_EQUAL`` (within 2 ULP of FLT_EPSILON), NaN
pixels are valid under a finite nodata value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from pipeline.io.ongrid import nodata_valid, open_on_grid, read_with_valid
from pipeline.io.scenes import read_on_grid

CRS = "EPSG:32633"
TR = Affine(20.0, 0, 600000.0, 0, -20.0, 5000040.0)


def _tif(path: Path, data: np.ndarray, nodata: float | None, **kw: Any) -> Path:
    h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1,
                       dtype=data.dtype.name, crs=CRS, transform=TR, nodata=nodata, **kw) as ds:
        ds.write(data, 1)
    return path


def _near(value: float, dtype: Any, n: int = 40) -> np.ndarray:
    """``value`` and its neighbours up to 6 ULP away, then ordinary values and 0 / -0."""
    t = np.dtype(dtype).type
    around = [t(value)]
    up = down = t(value)
    for _ in range(6):
        up, down = np.nextafter(up, t(np.inf)), np.nextafter(down, t(-np.inf))
        around += [up, down]
    rest = np.linspace(-20000, 20000, n - len(around) - 2).astype(dtype)
    return np.concatenate([np.asarray(around, dtype), rest, np.asarray([0.0, -0.0], dtype)])


CASES = [
    ("uint8", 0), ("uint8", 255), ("uint16", 65535), ("uint16", 0), ("int16", -9999),
    ("int32", -9999), ("float32", -9999.0), ("float32", 0.0), ("float32", 1e-3),
    ("float32", 3.0e38), ("float64", -9999.0), ("float64", 0.1),
]


@pytest.mark.parametrize(("dtype", "nodata"), CASES)
def test_derived_mask_is_gdals(tmp_path: Path, dtype: str, nodata: float) -> None:
    if np.dtype(dtype).kind == "f":
        vals = _near(nodata, dtype)
    else:
        info = np.iinfo(dtype)
        cand = {info.min, info.min + 1, 0, 1, 2, int(nodata) - 1, int(nodata), int(nodata) + 1,
                info.max - 1, info.max}
        vals = np.asarray(sorted(v for v in cand if info.min <= v <= info.max), dtype)
    a = np.resize(vals, (8, vals.size)).astype(dtype)
    path = _tif(tmp_path / "b.tif", a, nodata)
    with rasterio.open(path) as ds:
        assert list(ds.mask_flag_enums[0]) == [MaskFlags.nodata]
        gdal = ds.read_masks(1) > 0
        got = nodata_valid(ds.read(1), nodata, ds.dtypes[0])
    assert got is not None
    np.testing.assert_array_equal(got, gdal)
    if np.dtype(dtype).kind == "f" and nodata != 0:
        # GDAL's tolerance is real: some pixels a few ULP from the nodata value are masked
        assert (~gdal).sum() > 1


def test_nan_pixels_and_nan_nodata(tmp_path: Path) -> None:
    a = np.asarray([[np.nan, 1.0, -9999.0, 0.0, np.inf, -np.inf]], np.float32)
    for nodata in (np.nan, -9999.0):
        path = _tif(tmp_path / f"n{nodata}.tif", a, nodata)
        with rasterio.open(path) as ds:
            gdal = ds.read_masks(1) > 0
            got = nodata_valid(ds.read(1), nodata, "float32")
        np.testing.assert_array_equal(got, gdal)
    # under a finite nodata value GDAL counts a NaN pixel as valid
    assert got is not None and bool(got[0, 0])


def test_integer_bands_read_as_float(tmp_path: Path) -> None:
    a = np.asarray([[0, 1, 65534, 65535]], np.uint16)
    path = _tif(tmp_path / "u.tif", a, 65535)
    with rasterio.open(path) as ds:
        gdal = ds.read_masks(1) > 0
        got = nodata_valid(ds.read(1, out_dtype="float32"), 65535, "uint16")
    np.testing.assert_array_equal(got, gdal)
    # 32-bit integers do not survive float32: the masks must be read
    assert nodata_valid(np.zeros(3, np.float32), 7, "uint32") is None
    # a nodata value the array's type cannot hold: the masks say what a view filled
    assert nodata_valid(np.zeros(3, np.uint8), 300, "uint16") is None
    assert nodata_valid(np.zeros(3, np.float32), 1.0, "float64") is None


class _Spy:
    """Counts ``read_masks`` calls of a dataset."""

    def __init__(self, ds: Any) -> None:
        self.ds, self.mask_reads = ds, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ds, name)

    def read_masks(self, *a: Any, **k: Any) -> Any:
        self.mask_reads += 1
        return self.ds.read_masks(*a, **k)


def _scene(tmp_path: Path, nodata: float | None, dtype: str = "uint16") -> Path:
    rng = np.random.default_rng(1)
    a = rng.integers(1, 4000, (90, 110)).astype(dtype)
    a[:, :9] = 0
    a[40:44, 50:70] = 0
    return _tif(tmp_path / f"scene-{nodata}-{dtype}.tif", a, nodata, tiled=True,
                blockxsize=32, blockysize=32, compress="deflate")


# a 10 m frame 5 m off the 20 m scene's pixel corners (warped) and one on its corners (shifted)
WARPED = Affine(10.0, 0, 600000.0 - 35.0, 0, -10.0, 5000040.0 + 45.0)
SHIFTED = Affine(20.0, 0, 600000.0 - 60.0, 0, -20.0, 5000040.0 + 40.0)


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
@pytest.mark.parametrize(("frame", "nodata", "fallback"), [
    (WARPED, 0, None), (WARPED, None, 0), (WARPED, None, None),
    (SHIFTED, 0, None), (SHIFTED, None, 0), (SHIFTED, None, None),
])
def test_one_read_gives_the_masks_read_masks_gives(
        tmp_path: Path, resampling: str, frame: Affine, nodata: float | None,
        fallback: float | None) -> None:
    path = _scene(tmp_path, nodata)
    w, h = 140, 120
    win = Window(0, 0, 100, 90)  # partly outside the scene
    with open_on_grid(path, CRS, frame, w, h, resampling, nodata=fallback, tolerance=1e-6,
                      dtype="float32") as view:
        spy = _Spy(view)
        data, valid = read_with_valid(spy, [1], win, out_dtype="float32")
        expected_data = view.read([1], window=win, out_dtype="float32")
        expected_valid = view.read_masks([1], window=win) > 0
        if view.count == 2:  # the warper's alpha band (float32, which GDAL's masks ignore)
            assert list(view.mask_flag_enums[0]) == [MaskFlags.all_valid]
            assert expected_valid.all()
            expected_valid = view.read([2], window=win) > 0
    np.testing.assert_array_equal(data, expected_data)
    np.testing.assert_array_equal(valid, expected_valid)
    assert (~valid).sum() > 0 and valid.sum() > 0
    # the mask came from the pixels wherever it is only the nodata value
    assert spy.mask_reads == (1 if (frame, nodata, fallback) == (SHIFTED, None, None) else 0)


def test_read_on_grid_masks_unchanged(tmp_path: Path) -> None:
    """read_on_grid's (data, valid) equal the two-pass read's for nodata-only bands."""
    files = [_scene(tmp_path, 0), _scene(tmp_path, None, "float32")]
    data, valid = read_on_grid(files, CRS, WARPED, 140, 120, "bilinear", nodata=0.0,
                               window=(3, 5, 100, 90))
    for i, f in enumerate(files):
        with open_on_grid(f, CRS, WARPED, 140, 120, "bilinear", nodata=0.0, tolerance=1e-6,
                          dtype="float32") as vrt:
            win = Window(3, 5, 100, 90)
            np.testing.assert_array_equal(data[i], vrt.read(1, window=win, out_dtype="float32"))
            np.testing.assert_array_equal(valid[i], vrt.read_masks(1, window=win) > 0)


def test_read_on_grid_masks_outside_a_file_without_nodata(tmp_path: Path) -> None:
    """No nodata value anywhere: the warper's alpha band marks what lies outside the file
    (GDAL's own masks called it valid: its float32 alpha band is not taken as a mask)."""
    f = _scene(tmp_path, None)
    data, valid = read_on_grid([f], CRS, WARPED, 140, 120, "nearest", nodata=None,
                               window=(0, 0, 100, 90))
    # the frame starts 3.5 px (10 m) west and 4.5 px north of the scene
    assert not valid[0, :, :3].any() and not valid[0, :4, :].any()
    assert valid[0, 5:, 4:].all()  # the scene's zeros are data here: it declares no nodata
    assert (data[0][~valid[0]] == 0).all()
