"""Known-answer tests of pipeline.grid (UTM choice, footprint size, snapping, AOI grid)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from affine import Affine

from pipeline.errors import GridError, PipelineError
from pipeline.grid import (
    AoiGrid,
    choose_aoi_epsg,
    compute_footprints,
    footprint_size_px,
    union_pixel_count,
    utm_epsg,
    utm_zones_spanned,
)

# ----------------------------------------------------------------------------- UTM zones


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (108.94, 34.26, 32649),  # Xi'an (FUSU)
        (120.75, 30.76, 32651),  # Jiaxing (FUSU)
        (151.21, -33.87, 32756),  # Sydney, south
        (-0.13, 51.51, 32630),  # London, just west of Greenwich
        (0.0, 0.0, 32631),  # zone 31 starts at 0 deg
        (108.0, 10.0, 32649),  # zone 49 starts at 108 deg
        (107.9999, 10.0, 32648),
        (-180.0, 5.0, 32601),
        (180.0, 5.0, 32660),  # the antimeridian itself belongs to zone 60
    ],
)
def test_utm_epsg_known_zones(lon: float, lat: float, epsg: int) -> None:
    assert utm_epsg(lon, lat) == epsg


@pytest.mark.parametrize(("lon", "lat"), [(10.0, 85.0), (10.0, -80.5), (181.0, 0.0)])
def test_utm_epsg_outside_domain_is_a_pipeline_error(lon: float, lat: float) -> None:
    with pytest.raises(GridError, match="outside the UTM domain"):
        utm_epsg(lon, lat)
    assert issubclass(GridError, PipelineError)


def test_utm_zones_spanned() -> None:
    assert utm_zones_spanned(108.9, 109.0) == [49]
    assert utm_zones_spanned(107.99, 108.01) == [48, 49]
    assert utm_zones_spanned(100.0, 115.0) == [47, 48, 49, 50]
    # antimeridian-crossing interval (west > east)
    assert utm_zones_spanned(179.5, -179.5) == [60, 1]


def test_choose_aoi_epsg_single_zone_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert choose_aoi_epsg((108.9, 34.2, 109.0, 34.3), "xian") == 32649


def test_choose_aoi_epsg_zone_edge_warns_and_uses_centroid() -> None:
    # centroid at 108.005 E -> zone 49 although the AOI reaches into zone 48
    with pytest.warns(UserWarning, match=r"edge: spans UTM zones \[48, 49\].*EPSG:32649"):
        assert choose_aoi_epsg((107.98, 34.2, 108.03, 34.3), "edge") == 32649
    with pytest.warns(UserWarning, match="EPSG:32648"):
        assert choose_aoi_epsg((107.95, 34.2, 108.01, 34.3), "edge") == 32648


def test_choose_aoi_epsg_antimeridian_uses_the_short_way_round() -> None:
    # Fiji-like AOI from 179.8 E to 179.9 W: centroid at 179.95 E (zone 60), not 0 deg
    with pytest.warns(UserWarning, match=r"\[60, 1\]"):
        assert choose_aoi_epsg((179.8, -17.0, -179.9, -16.8), "fiji") == 32760
    with pytest.warns(UserWarning, match=r"\[60, 1\]"):
        assert choose_aoi_epsg((179.95, -17.0, -179.7, -16.8), "fiji") == 32701


# ----------------------------------------------------------------------------- footprint size


def test_footprint_size_fusu_numbers() -> None:
    # FUSU: 512 px x 0.5 m = 256 m patch, 5x -> 1280 m = 128 px of 10 m
    assert footprint_size_px(512, 0.5) == 128
    assert footprint_size_px(512, 0.5, scale=5.0, res_m=10.0) == 128
    assert footprint_size_px(512, 0.3) == 77  # 76.8 -> 77
    assert footprint_size_px(256, 0.5, scale=3.0) == 38  # 38.4 -> 38


def test_footprint_size_overrides() -> None:
    assert footprint_size_px(512, 0.5, size_px=97) == 97
    assert footprint_size_px(512, 0.5, size_m=1000.0) == 100
    assert footprint_size_px(512, 0.5, size_m=1004.0) == 100
    # size_px wins over size_m
    assert footprint_size_px(512, 0.5, size_px=11, size_m=1000.0) == 11


def test_footprint_size_too_small_raises() -> None:
    with pytest.raises(GridError, match=r"footprints\.scale"):
        footprint_size_px(16, 0.1, scale=1.0)


# ----------------------------------------------------------------------------- snapping


def test_compute_footprints_known_answer_fusu_patch() -> None:
    # one 512 px x 0.5 m patch, upper-left (650000, 3795000), centre (650128, 3794872)
    pb = np.array([[650000.0, 3794744.0, 650256.0, 3795000.0]])
    fp = compute_footprints(pb, 32649, 128)
    g = fp.grid
    # footprint left edge: round(650128/10 - 64) = 64949 -> 649490 m; top: 3795510 m
    assert (g.x0, g.y0) == (649440.0, 3795540.0)
    assert g.x0 % 60 == 0 and g.y0 % 60 == 0
    assert (int(fp.col0[0]), int(fp.row0[0])) == (5, 3)
    assert (g.width, g.height) == (138, 132)  # 5+128 -> 138, 3+128 -> 132 (multiples of 6)
    assert fp.patch_off_x_px[0] == pytest.approx(51.0)
    assert fp.patch_off_y_px[0] == pytest.approx(51.0)
    assert fp.patch_w_px[0] == pytest.approx(25.6)
    assert fp.patch_h_px[0] == pytest.approx(25.6)
    np.testing.assert_allclose(fp.bounds()[0], [649490.0, 3794230.0, 650770.0, 3795510.0])
    assert g.crs == "EPSG:32649"


@pytest.mark.parametrize("size", [1, 5, 7, 8, 127, 128])
def test_footprints_centred_within_half_pixel_even_and_odd(size: int) -> None:
    rng = np.random.default_rng(size)
    n = 200
    cx = rng.uniform(600000, 700000, n)
    cy = rng.uniform(-20000, 4000000, n)  # includes negative northings
    half = rng.uniform(5, 200, n)
    pb = np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)
    fp = compute_footprints(pb, 32649, size)
    b = fp.bounds()
    fcx = (b[:, 0] + b[:, 2]) / 2
    fcy = (b[:, 1] + b[:, 3]) / 2
    assert np.all(np.abs(fcx - cx) <= 5.0 + 1e-6)
    assert np.all(np.abs(fcy - cy) <= 5.0 + 1e-6)
    # the footprint side is exactly size px and lies on the 10 m lattice
    np.testing.assert_allclose(b[:, 2] - b[:, 0], size * 10.0)
    np.testing.assert_allclose(np.mod(b[:, 0], 10.0), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.mod(b[:, 3], 10.0), 0.0, atol=1e-6)
    # patch offset inside the footprint: centre of the patch box at the footprint centre
    centre_off_x = fp.patch_off_x_px + fp.patch_w_px / 2 - size / 2
    centre_off_y = fp.patch_off_y_px + fp.patch_h_px / 2 - size / 2
    assert np.all(np.abs(centre_off_x) <= 0.5 + 1e-9)
    assert np.all(np.abs(centre_off_y) <= 0.5 + 1e-9)
    # grid: origin multiple of 60 m, covers every footprint, whole multiples of 6 px
    g = fp.grid
    assert g.x0 % 60 == 0 and g.y0 % 60 == 0
    assert g.width % 6 == 0 and g.height % 6 == 0
    assert fp.col0.min() >= 0 and fp.row0.min() >= 0
    assert fp.col0.max() + size <= g.width and fp.row0.max() + size <= g.height
    # the AOI grid is the smallest 60 m aligned window: shrinking it would cut a footprint
    assert fp.col0.min() < 6 and fp.row0.min() < 6
    assert g.width - (fp.col0.max() + size) < 6 and g.height - (fp.row0.max() + size) < 6


def test_odd_footprint_centre_on_lattice_line_is_half_a_pixel_off() -> None:
    # centre exactly on a lattice line: an odd footprint cannot be centred, error = 0.5 px
    pb = np.array([[95.0, 1000095.0, 105.0, 1000105.0]])  # centre (100, 1000100)
    fp = compute_footprints(pb, 32601, 5)
    b = fp.bounds()[0]
    assert abs((b[0] + b[2]) / 2 - 100.0) == pytest.approx(5.0)
    assert abs((b[1] + b[3]) / 2 - 1000100.0) == pytest.approx(5.0)
    # even footprint with the same centre is centred exactly
    fp6 = compute_footprints(pb, 32601, 6)
    b6 = fp6.bounds()[0]
    assert ((b6[0] + b6[2]) / 2, (b6[1] + b6[3]) / 2) == (100.0, 1000100.0)


def test_adjacent_patches_share_grid_and_step_by_patch_size() -> None:
    # a row of 4 FUSU patches: footprints step by 25.6 px -> 25 or 26 px (snapped)
    x = 650000.0 + 256.0 * np.arange(4)
    pb = np.stack([x, np.full(4, 3794744.0), x + 256.0, np.full(4, 3795000.0)], axis=1)
    fp = compute_footprints(pb, 32649, 128)
    assert len(set(fp.row0.tolist())) == 1
    steps = np.diff(fp.col0)
    assert set(steps.tolist()) <= {25, 26}
    assert int(fp.col0[-1] - fp.col0[0]) == round(3 * 25.6)


def test_compute_footprints_rejects_bad_input() -> None:
    with pytest.raises(GridError, match="non-empty"):
        compute_footprints(np.zeros((0, 4)), 32649, 8)
    with pytest.raises(GridError, match="NaN"):
        compute_footprints(np.array([[0.0, 0.0, np.nan, 1.0]]), 32649, 8)
    with pytest.raises(GridError, match="whole multiple"):
        compute_footprints(np.array([[0.0, 0.0, 10.0, 10.0]]), 32649, 8, origin_multiple_m=25.0)


def test_origin_multiple_other_than_60() -> None:
    pb = np.array([[1234.0, 5678.0, 1334.0, 5778.0]])
    fp = compute_footprints(pb, 32633, 10, res_m=20.0, origin_multiple_m=100.0)
    g = fp.grid
    assert g.res_m == 20.0
    assert g.x0 % 100 == 0 and g.y0 % 100 == 0
    assert g.width % 5 == 0 and g.height % 5 == 0


# ----------------------------------------------------------------------------- AoiGrid


def test_aoigrid_transform_bounds_windows_roundtrip() -> None:
    g = AoiGrid(epsg=32649, res_m=10.0, x0=649440.0, y0=3795540.0, width=138, height=132)
    assert g.transform == Affine(10.0, 0.0, 649440.0, 0.0, -10.0, 3795540.0)
    assert g.bounds == (649440.0, 3795540.0 - 1320.0, 649440.0 + 1380.0, 3795540.0)
    wt = g.window_transform(5, 3)
    assert wt @ (0, 0) == (649490.0, 3795510.0)
    assert wt @ (0, 0) == g.transform @ (5, 3)
    assert AoiGrid.from_dict(g.to_dict()) == g
    assert g.to_dict() == {
        "epsg": 32649, "res_m": 10.0, "x0": 649440.0, "y0": 3795540.0, "width": 138, "height": 132,
    }


def test_union_pixel_count_known_answer() -> None:
    g = AoiGrid(epsg=32649, res_m=10.0, x0=0.0, y0=0.0, width=12, height=12)
    assert union_pixel_count(np.array([0, 2]), np.array([0, 2]), 4, g) == 28
    assert union_pixel_count(np.array([0, 0]), np.array([0, 0]), 4, g) == 16
    assert union_pixel_count(np.array([0, 6]), np.array([0, 6]), 6, g) == 72
