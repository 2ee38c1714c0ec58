"""Known-answer tests of the monthly compositing math (pipeline.sentinel.composite)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.io.mosaic import reflectance_to_u16, u16_to_reflectance
from pipeline.sentinel.composite import (
    MeanAccumulator,
    cloud_clear_mask,
    db_to_linear,
    linear_to_db,
    masked_mean,
    project_shadows,
    s1_mean,
)


def test_masked_mean_and_counts() -> None:
    # 3 acquisitions, 1 band, 1x3 pixels
    stack = np.array([[[[0.1, 0.2, 0.3]]], [[[0.3, 0.4, 0.5]]], [[[0.5, 0.9, np.nan]]]], np.float32)
    ok = np.array([[[True, True, True]], [[True, False, True]], [[True, False, True]]])
    mean, cnt = masked_mean(stack, ok)
    assert mean.dtype == np.float32 and cnt.dtype == np.uint8
    np.testing.assert_allclose(mean[0, 0], [0.3, 0.2, 0.4], rtol=1e-6)
    # the NaN observation does not count even though it is flagged ok
    np.testing.assert_array_equal(cnt[0], [3, 1, 2])


def test_all_cloudy_is_nan_with_zero_count() -> None:
    stack = np.full((2, 12, 2, 2), 0.25, np.float32)
    mean, cnt = masked_mean(stack, np.zeros((2, 2, 2), bool))
    assert np.isnan(mean).all()
    assert (cnt == 0).all()


def test_count_saturates_at_255() -> None:
    acc = MeanAccumulator(1, 1, 1)
    for _ in range(300):
        acc.add(np.ones((1, 1, 1), np.float32), np.ones((1, 1), bool))
    mean, cnt = acc.result()
    assert cnt[0, 0] == 255 and mean[0, 0, 0] == 1.0


def test_s1_linear_vs_db_mean() -> None:
    db = np.array([[[[-10.0]], [[-20.0]]], [[[-20.0]], [[-20.0]]]], np.float32)  # (2, 2, 1, 1)
    lin, cnt = s1_mean(db, "linear")
    plain, _ = s1_mean(db, "db")
    # linear: 10*log10((0.1 + 0.01)/2) = -12.596 dB; plain dB mean: -15
    assert lin[0, 0, 0] == pytest.approx(10 * np.log10(0.055), abs=1e-5)
    assert plain[0, 0, 0] == pytest.approx(-15.0)
    assert lin[1, 0, 0] == pytest.approx(-20.0, abs=1e-5)
    assert cnt[0, 0] == 2


def test_s1_missing_observation() -> None:
    db = np.array([[[[np.nan]], [[np.nan]]], [[[-8.0]], [[-14.0]]]], np.float32)
    mean, cnt = s1_mean(db, "linear")
    np.testing.assert_allclose(mean[:, 0, 0], [-8.0, -14.0], atol=1e-5)
    assert cnt[0, 0] == 1


def test_db_linear_roundtrip() -> None:
    x = np.array([-25.0, -3.0, 0.0, 5.0])
    np.testing.assert_allclose(linear_to_db(db_to_linear(x)), x, atol=1e-5)
    assert np.isnan(linear_to_db(np.array([0.0, -1.0]))).all()


def test_cloud_threshold_is_strictly_greater() -> None:
    prob = np.array([[0.39, 0.40, 0.41, np.nan]])
    clear = cloud_clear_mask(prob, 40)
    np.testing.assert_array_equal(clear, [[True, True, False, False]])
    valid = np.array([[False, True, True, True]])
    np.testing.assert_array_equal(cloud_clear_mask(prob, 40, valid), [[False, True, False, False]])


def test_reflectance_u16_roundtrip_and_nodata() -> None:
    r = np.array([0.0, 0.12345, 1.5, 7.0, np.nan, -0.01], np.float32)
    dn = reflectance_to_u16(r)
    np.testing.assert_array_equal(dn, [0, 1235, 15000, 65534, 65535, 0])
    back = u16_to_reflectance(dn)
    assert np.isnan(back[4]) and back[1] == pytest.approx(0.1235)


def test_shadow_projection_direction() -> None:
    cloud = np.zeros((40, 40), bool)
    cloud[18:22, 18:22] = True
    nir = np.full((40, 40), 0.05)  # everything dark
    # sun in the south (azimuth 180): shadows fall to the north (smaller row index)
    sh = project_shadows(cloud, nir, sun_azimuth_deg=180.0, res_m=10.0, max_distance_m=100.0)
    rows = np.nonzero(sh.any(axis=1))[0]
    assert rows.min() < 18 and rows.max() < 22 and not sh[cloud].any()
    assert not sh[25:].any()
    # bright pixels are never shadow
    assert not project_shadows(cloud, np.full((40, 40), 0.4), 180.0, 10.0, 100.0).any()
