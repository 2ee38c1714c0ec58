"""Local scene-archive source: reprojection onto the AOI grid, s2cloudless masking, compositing,
product fallback, S1 units, corrupt files, empty months, and the demo scenes' cloud realism."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer
from scipy import ndimage

from pipeline.bands import S2_BANDS
from pipeline.demo.sentinel_scenes import synth_s2
from pipeline.errors import SourceError
from pipeline.io.scenes import (
    L1C_FILE_BANDS,
    L2A_FILE_BANDS,
    NATIVE_RES_M,
    write_band_tif,
    write_s1_scene,
    write_s2_scene,
)
from pipeline.sentinel.cloud_probability import S2CLOUDLESS_BANDS, CloudDetector
from pipeline.sentinel.model import Block, Recipe
from pipeline.sentinel.sources.local import local_source
from tests.sentinel_helpers import GRID, SX0, SY0, VEG_TOA, transforms, write_scene

BLOCK = Block(col0=0, row0=0, width=64, height=64)


def test_band_order_matches_s2cloudless() -> None:
    from s2cloudless.utils import MODEL_BANDS

    assert tuple(MODEL_BANDS) == S2CLOUDLESS_BANDS


def test_cloud_masked_mean_and_counts(tmp_path: Path) -> None:
    write_scene(tmp_path, 3, 0.1)
    write_scene(tmp_path, 13, 0.3)
    write_scene(tmp_path, 23, 0.5, cloud_left_half=True)
    src = local_source(tmp_path)
    res = src.fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    # scene x 649800..651000, cloud west of 650400 -> grid columns < 36; stay 8 px from the edge
    west, east = (slice(None), slice(0, 28)), (slice(None), slice(44, 64))
    assert (res.s2_count[west] == 2).all() and (res.s2_count[east] == 3).all()
    np.testing.assert_allclose(res.s2[(slice(None), *west)], 0.2, atol=1e-4)
    np.testing.assert_allclose(res.s2[(slice(None), *east)], 0.3, atol=1e-4)
    assert res.meta["s2_product"] == "L2A" and res.meta["s2_scenes"] == 3
    assert res.s2.dtype == np.float32 and res.s2.shape == (12, 64, 64)


def test_month_without_scenes_is_nodata(tmp_path: Path) -> None:
    write_scene(tmp_path, 3, 0.1)
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-04", Recipe())
    assert np.isnan(res.s2).all() and np.isnan(res.s1).all()
    assert (res.s2_count == 0).all() and (res.s1_count == 0).all()
    assert res.meta["s2_product"] is None


def test_l1c_fallback_and_its_switch(tmp_path: Path) -> None:
    write_scene(tmp_path, 5, None)  # L1C only
    src = local_source(tmp_path)
    res = src.fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    assert res.meta["s2_product"] == "L1C"
    assert res.s2[S2_BANDS.index("B8")] == pytest.approx(0.37, abs=1e-4)
    assert (res.s2_count == 1).all()
    res2 = src.fetch_block("t", GRID, BLOCK, "2020-03", Recipe(allow_l1c_fallback=False))
    assert res2.meta["s2_product"] is None and (res2.s2_count == 0).all()
    # the refused L1C scene is a counted skip: the empty month names its cause
    assert res2.meta["s2_scenes_skipped"] == {"other_product": 1, "no_cloud_layer": 0}
    assert res.meta["s2_scenes_skipped"] == {"other_product": 0, "no_cloud_layer": 0}


def test_l2a_wins_over_l1c_only_scenes(tmp_path: Path) -> None:
    write_scene(tmp_path, 5, None)
    write_scene(tmp_path, 9, 0.25)
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    assert res.meta["s2_product"] == "L2A"
    np.testing.assert_allclose(res.s2, 0.25, atol=1e-4)
    assert (res.s2_count == 1).all()


def _encoded_scene(tmp_path: Path, crs: str, x0: float, y0: float, res: float, n: int) -> None:
    """L2A bands whose value encodes the source pixel: DN = 1 + row * n + col."""
    folder = write_scene(tmp_path, 7, 0.2)
    rr, cc = np.mgrid[0:n, 0:n]
    dn = (1 + rr * n + cc).astype(np.uint16)
    for b in L2A_FILE_BANDS:
        write_band_tif(folder / "L2A" / f"{b}.tif", dn, crs, Affine(res, 0, x0, 0, -res, y0), 0)


def test_reprojection_from_another_crs_lands_on_the_right_pixels(tmp_path: Path) -> None:
    # the scene is in the neighbouring UTM zone (EPSG:32650) at 20 m
    to50 = Transformer.from_crs("EPSG:32649", "EPSG:32650", always_xy=True)
    cx, cy = to50.transform(GRID.x0 + 320, GRID.y0 - 320)
    n, r = 60, 20.0
    x0, y0 = np.floor(cx - n * r / 2), np.ceil(cy + n * r / 2)
    _encoded_scene(tmp_path, "EPSG:32650", x0, y0, r, n)
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    dn = np.rint(res.s2[S2_BANDS.index("B2")] * 10000).astype(int)
    rows, cols = np.mgrid[0:64, 0:64]
    gx = GRID.x0 + (cols + 0.5) * 10
    gy = GRID.y0 - (rows + 0.5) * 10
    sx, sy = to50.transform(gx, gy)
    exp_col = np.floor((sx - x0) / r).astype(int)
    exp_row = np.floor((y0 - sy) / r).astype(int)
    got_row, got_col = (dn - 1) // n, (dn - 1) % n
    assert np.abs(got_row - exp_row).max() <= 1 and np.abs(got_col - exp_col).max() <= 1
    assert ((got_row == exp_row) & (got_col == exp_col)).mean() > 0.97


def test_native_20m_band_nests_exactly(tmp_path: Path) -> None:
    _encoded_scene(tmp_path, GRID.crs, SX0, SY0, 20.0, 60)
    res = local_source(tmp_path).fetch_block("t", GRID, Block(32, 0, 32, 64), "2020-03", Recipe())
    dn = np.rint(res.s2[S2_BANDS.index("B5")] * 10000).astype(int)
    rows, cols = np.mgrid[0:64, 32:64]
    # grid pixel (r, c) centre is 240 m east / south of the scene corner + 10*(c, r) + 5
    exp = 1 + ((240 + rows * 10 + 5) // 20) * 60 + (240 + cols * 10 + 5) // 20
    np.testing.assert_array_equal(dn, exp)


def test_s1_units_and_linear_mean(tmp_path: Path) -> None:
    tr = transforms()[10]
    shape = (120, 120)
    write_s1_scene(tmp_path, dt.datetime(2020, 3, 2), GRID.crs, tr, np.full(shape, -10.0),
                   np.full(shape, -20.0), units="db", orbit_pass="ASCENDING")
    write_s1_scene(tmp_path, dt.datetime(2020, 3, 14), GRID.crs, tr, np.full(shape, 0.01),
                   np.full(shape, 0.01), units="linear", orbit_pass="DESCENDING")
    src = local_source(tmp_path)
    res = src.fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    np.testing.assert_allclose(res.s1[0], 10 * np.log10((0.1 + 0.01) / 2), atol=1e-4)
    np.testing.assert_allclose(res.s1[1], -20.0, atol=1e-4)
    assert (res.s1_count == 2).all()
    res_db = src.fetch_block("t", GRID, BLOCK, "2020-03", Recipe(s1_mean="db"))
    np.testing.assert_allclose(res_db.s1[0], -15.0, atol=1e-4)
    res_asc = src.fetch_block("t", GRID, BLOCK, "2020-03", Recipe(s1_orbit_pass="ASCENDING"))
    np.testing.assert_allclose(res_asc.s1[0], -10.0, atol=1e-4)
    assert (res_asc.s1_count == 1).all()


def test_corrupt_scene_file_is_named(tmp_path: Path) -> None:
    folder = write_scene(tmp_path, 3, 0.1)
    bad = folder / "L2A" / "B04.tif"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(SourceError, match=r"B04\.tif"):
        local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())


def test_corrupt_scene_json_is_named(tmp_path: Path) -> None:
    folder = write_scene(tmp_path, 3, 0.1)
    (folder / "scene.json").write_text("{not json")
    with pytest.raises(SourceError, match=r"scene\.json"):
        local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="sentinel_archive"):
        local_source(tmp_path / "nope")


def test_demo_clouds_are_detected_by_s2cloudless() -> None:
    """IoU of the generated cloud truth vs the s2cloudless mask (threshold 0.4)."""
    rng = np.random.default_rng(7)
    classes = ndimage.zoom(rng.integers(0, 18, (8, 8)), 20, order=0).astype(np.uint8)
    det = CloudDetector()
    idx = [L1C_FILE_BANDS.index(b) for b in S2CLOUDLESS_BANDS]
    inter = union = 0
    false_clear = 0
    for month, cover in ((1, 0.3), (7, 0.5)):
        s = synth_s2(classes, month, cover, rng)
        mask = det.probability(s.toa[idx], np.ones(classes.shape, bool)) > 0.4
        inter += int((mask & s.cloud).sum())
        union += int((mask | s.cloud).sum())
        false_clear += int((s.cloud & ~mask).sum())
    clear = synth_s2(classes, 7, 0.0, rng)
    fp = (det.probability(clear.toa[idx], np.ones(classes.shape, bool)) > 0.4).mean()
    iou = inter / union
    print(f"demo cloud IoU (s2cloudless vs truth) = {iou:.3f}; clear-scene false positives = "
          f"{fp:.3%}")
    assert iou > 0.5
    assert false_clear / max(inter, 1) < 0.05  # opaque clouds are (almost) never missed
    assert fp < 0.05


def test_shadow_mask_removes_dark_pixels_down_sun(tmp_path: Path) -> None:
    import json

    from tests.sentinel_helpers import band_array

    write_scene(tmp_path, 3, 0.1)
    write_scene(tmp_path, 13, 0.3)
    folder = write_scene(tmp_path, 23, 0.5, cloud_left_half=True)
    meta = json.loads((folder / "scene.json").read_text())
    meta["sun_azimuth_deg"] = 270.0  # sun in the west: shadows fall east of the cloud
    (folder / "scene.json").write_text(json.dumps(meta))
    nir = np.full((120, 120), 0.37)
    nir[:, 60:] = 0.05  # dark east half (shadowed surface)
    write_band_tif(folder / "L1C" / "B08.tif", band_array(nir, "B08"), GRID.crs,
                   transforms()[10], 0)
    src = local_source(tmp_path)
    plain = src.fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    shadow = src.fetch_block("t", GRID, BLOCK, "2020-03", Recipe(shadow_mask=True))
    east = (slice(None), slice(44, 64))
    assert (plain.s2_count[east] == 3).all()
    assert (shadow.s2_count[east] == 2).all()
    np.testing.assert_allclose(shadow.s2[(slice(None), *east)], 0.2, atol=1e-4)


def test_demo_archive_is_deterministic_and_readable(tmp_path: Path) -> None:
    import hashlib

    from pipeline.demo.sentinel_scenes import generate_archive, plan_months
    from pipeline.grid import AoiGrid

    c1 = np.full((60, 60), 4, np.uint8)  # cropland
    c2 = c1.copy()
    c2[:, 30:] = 11  # becomes commercial (impervious) on the east half
    months = ["2020-05", "2020-06", "2020-07"]
    plan = plan_months(months, 3, (2, 3), (2, 2))
    kw = dict(crs="EPSG:32649", x0=650040.0, y0=3795000.0, months=months, seed=3,
              s2_per_month=(2, 3), s1_per_month=(2, 2))
    s_a = generate_archive(tmp_path / "a", c1, c2, **kw)
    generate_archive(tmp_path / "b", c1, c2, **kw)

    def digest(root: Path) -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.tif"))]

    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert s_a["change_month"] == plan["change_month"] == "2020-06"
    assert s_a["months"]["2020-05"]["products"] == ["L1C"]  # first month: L1C fallback
    grid = AoiGrid(32649, 10.0, 650040.0, 3795000.0, 60, 60)
    src = local_source(tmp_path / "a")
    b = Block(0, 0, 60, 60)
    r5 = src.fetch_block("t", grid, b, "2020-05", Recipe())
    r7 = src.fetch_block("t", grid, b, "2020-07", Recipe())
    assert r5.meta["s2_product"] == "L1C" and r7.meta["s2_product"] == "L2A"
    b8, b4 = S2_BANDS.index("B8"), S2_BANDS.index("B4")
    ndvi = (r7.s2[b8] - r7.s2[b4]) / (r7.s2[b8] + r7.s2[b4])
    # after the change the east half is built up: NDVI drops from crop (> 0.5) to < 0.3
    assert np.nanmedian(ndvi[:, :24]) > 0.5 and np.nanmedian(ndvi[:, 36:]) < 0.3
    assert (r7.s1_count == 2).all() and np.isfinite(r7.s1).all()


def test_cloud_probabilities_are_cached_per_scene(tmp_path: Path) -> None:
    write_scene(tmp_path, 23, 0.5, cloud_left_half=True)
    recipe = Recipe(shadow_mask=True)  # blocks read a 1 km halo: neighbours share pixels
    whole = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", recipe)
    src = local_source(tmp_path)
    halves = [src.fetch_block("t", GRID, Block(c, 0, 32, 64), "2020-03", recipe) for c in (0, 32)]
    # the scene covers 120 x 120 px: every valid pixel is classified exactly once
    assert src.classified_pixels == 120 * 120
    np.testing.assert_array_equal(np.concatenate([h.s2_count for h in halves], axis=1),
                                  whole.s2_count)
    np.testing.assert_array_equal(np.concatenate([h.s2 for h in halves], axis=2), whole.s2)


def test_cloud_presets_postprocess_like_s2cloudless_and_do_not_depend_on_blocks(
        tmp_path: Path) -> None:
    """'s2cloudless' averages the probability over a radius-1 disk and dilates the mask by one
    pixel (the package defaults): the clear pixels next to the cloud are masked too, the same
    whether the AOI is fetched as one block or as two (the window carries a halo)."""
    write_scene(tmp_path, 23, 0.5, cloud_left_half=True)
    gee = Recipe.from_config({"cloud_preset": "gee"})
    s2c = Recipe.from_config({"cloud_preset": "s2cloudless"})
    assert (gee.cloud_average_over, gee.cloud_dilation_size) == (0, 0)
    assert (s2c.cloud_average_over, s2c.cloud_dilation_size) == (1, 1)
    wide = Recipe.from_config({"cloud_preset": "s2cloudless", "cloud_dilation_size": 3})
    assert (wide.cloud_average_over, wide.cloud_dilation_size) == (1, 3)
    a = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", gee)
    b = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", s2c)
    c = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", wide)
    clear = [int(r.s2_count.sum()) for r in (a, b, c)]
    assert clear[0] > clear[1] > clear[2] > 0  # each dilation masks a further column
    assert clear[0] - clear[1] == 64 * (clear[0] - clear[1]) // 64  # whole columns
    src = local_source(tmp_path)
    halves = [src.fetch_block("t", GRID, Block(col, 0, 32, 64), "2020-03", wide)
              for col in (0, 32)]
    np.testing.assert_array_equal(np.concatenate([h.s2_count for h in halves], axis=1),
                                  c.s2_count)


def test_l2a_only_scene_is_masked_with_its_scl_layer(tmp_path: Path) -> None:
    """An L2A-only acquisition has no s2cloudless input; its SCL layer masks it instead."""
    write_scene(tmp_path, 7, 0.3, l1c=False, scl_cloud_left_half=True)
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    assert res.meta["s2_product"] == "L2A" and res.meta["s2_cloud_layers"]["scl"] == 1
    # the SCL cloud covers the west half of the scene: grid columns < 36
    assert (res.s2_count[:, :34] == 0).all() and (res.s2_count[:, 38:] == 1).all()
    np.testing.assert_allclose(res.s2[:, :, 38:], 0.3, atol=1e-4)
    # the scl mask works for scenes with L1C too, and its classes are configurable
    kept = Recipe.from_config({"s2_mask": "scl", "scl_mask_classes": [0, 1, 3, 8, 10]})
    res2 = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", kept)
    assert (res2.s2_count == 1).all()


def test_l2a_only_scene_without_cloud_layer_is_a_counted_skip(tmp_path: Path) -> None:
    """Without L1C bands or SCL a scene cannot be cloud-masked: it is skipped, counted, and the
    month is not recorded as L2A or as observed."""
    write_scene(tmp_path, 7, 0.3, l1c=False)
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    assert res.meta["s2_product"] is None and not res.s2_count.any()
    assert np.isnan(res.s2).all()


def test_mixed_month_keeps_the_usable_observations(tmp_path: Path) -> None:
    """One L2A-only scene (no cloud layer) and one L1C-only scene: the month falls back to L1C
    and keeps the L1C observation instead of coming out empty; with an SCL layer the L2A scene
    is usable and the month is L2A, the L1C-only scene a counted skip."""
    write_scene(tmp_path, 7, 0.3, l1c=False)
    write_scene(tmp_path, 9, None)  # L1C only
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    assert res.meta["s2_product"] == "L1C" and (res.s2_count == 1).all()
    assert res.meta["s2_scenes_skipped"] == {"other_product": 1, "no_cloud_layer": 0}
    other = tmp_path / "with_scl"
    write_scene(other, 7, 0.3, l1c=False, scl_cloud_left_half=False)
    write_scene(other, 9, None)
    res2 = local_source(other).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    assert res2.meta["s2_product"] == "L2A" and (res2.s2_count == 1).all()
    np.testing.assert_allclose(res2.s2, 0.3, atol=1e-4)
    assert res2.meta["s2_scenes_skipped"]["other_product"] == 1


def test_s1_bands_are_independent(tmp_path: Path) -> None:
    """A VV-only scene gives VV (VH stays no data), and a pixel missing VH in one scene keeps
    that scene's VV."""
    tr = Affine(10.0, 0.0, SX0, 0.0, -10.0, SY0)
    n = 120
    vv = np.full((n, n), -8.0, np.float32)
    write_s1_scene(tmp_path, dt.datetime(2020, 3, 4, 10), GRID.crs, tr, vv, None)
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe(s1_mean="db"))
    np.testing.assert_allclose(res.s1[0], -8.0, atol=1e-5)
    assert np.isnan(res.s1[1]).all() and (res.s1_count == 1).all()
    vh = np.full((n, n), -15.0, np.float32)
    vh[:, :40] = np.nan
    write_s1_scene(tmp_path, dt.datetime(2020, 3, 16, 10), GRID.crs, tr, vv + 2.0, vh)
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe(s1_mean="db"))
    np.testing.assert_allclose(res.s1[0], -7.0, atol=1e-5)  # both scenes' VV everywhere
    np.testing.assert_allclose(res.s1[1][:, 30:], -15.0, atol=1e-5)
    assert np.isnan(res.s1[1][:, :10]).all() and (res.s1_count == 2).all()


def test_overlapping_granules_of_one_datatake_are_one_observation(tmp_path: Path) -> None:
    """Two MGRS granules of one datatake (same sensing time, other tile) overlap the block:
    one observation, not two; another datatake the same month is a second one. S1 slices of
    one pass (same orbit, same day) likewise."""
    import datetime as _dt

    from pipeline.io.scenes import write_s2_scene
    from tests.sentinel_helpers import band_array

    write_scene(tmp_path, 5, 0.2)
    bands = {lvl: {b: band_array(0.2 if lvl == "L2A" else VEG_TOA[b], b) for b in files}
             for lvl, files in (("L1C", L1C_FILE_BANDS), ("L2A", L2A_FILE_BANDS))}
    write_s2_scene(tmp_path, _dt.datetime(2020, 3, 5, 3, 25, 0), "49SGV", GRID.crs,
                   transforms(), bands)  # the same datatake's neighbouring granule
    write_scene(tmp_path, 15, 0.4)
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    assert (res.s2_count == 2).all() and res.meta["s2_scenes_used"] == 3
    np.testing.assert_allclose(res.s2, 0.3, atol=1e-4)  # (0.2 + 0.4) / 2, not (0.2*2 + 0.4) / 3
    tr = Affine(10.0, 0.0, SX0, 0.0, -10.0, SY0)
    vv = np.full((120, 120), -8.0, np.float32)
    for minute in (0, 1):  # two slices of one pass
        write_s1_scene(tmp_path, dt.datetime(2020, 3, 4, 10, minute), GRID.crs, tr, vv, vv - 7)
    write_s1_scene(tmp_path, dt.datetime(2020, 3, 16, 10), GRID.crs, tr, vv, vv - 7)
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    assert (res.s1_count == 2).all()


def test_composite_bytes_do_not_depend_on_the_block_plan(tmp_path: Path) -> None:
    """The same month fetched as one 64 px block or as blocks of 16 / 24 / 40 px gives the same
    bytes (values, counts) in every band: the scenes lie in the neighbouring UTM zone (so every
    read is a real reprojection, bilinear for s2 and the cloud bands) and carry textured DNs, so
    a warp whose rounding depended on the window would change some pixels by one DN; the cloud
    mask (s2cloudless preset, shadow mask) carries its halo."""
    to50 = Transformer.from_crs("EPSG:32649", "EPSG:32650", always_xy=True)
    cx, cy = to50.transform(GRID.x0 + 320, GRID.y0 - 320)
    x0, y0 = float(np.floor(cx - 600)), float(np.ceil(cy + 600))
    rng = np.random.default_rng(7)
    trs = {r: Affine(float(r), 0.0, x0, 0.0, -float(r), y0) for r in (10, 20, 60)}
    for day, cloudy in ((4, False), (14, True)):
        bands: dict[str, dict[str, np.ndarray]] = {"L1C": {}, "L2A": {}}
        for level, names in (("L1C", L1C_FILE_BANDS), ("L2A", L2A_FILE_BANDS)):
            for b in names:
                n = int(1200 // NATIVE_RES_M[b])
                base = np.full((n, n), VEG_TOA.get(b, 0.2)) * rng.uniform(0.7, 1.3, (n, n))
                if cloudy:
                    base[: n // 3, : n // 2] = 0.62
                bands[level][b] = np.clip(np.rint(base * 10000), 1, 65534).astype(np.uint16)
        write_s2_scene(tmp_path, dt.datetime(2020, 3, day, 3, 25), "50SKD", "EPSG:32650", trs,
                       bands, extra={"sun_azimuth_deg": 140.0})
    vv = rng.uniform(0.01, 0.2, (120, 120)).astype(np.float32)
    write_s1_scene(tmp_path, dt.datetime(2020, 3, 9), "EPSG:32650", trs[10], vv, vv / 5,
                   units="linear")
    recipe = Recipe.from_config({"cloud_preset": "s2cloudless", "shadow_mask": True,
                                 "s2_resampling": "bilinear"})

    def fetch(size: int) -> dict[str, np.ndarray]:
        src = local_source(tmp_path)
        out = {k: np.full(shape, np.nan if k in ("s2", "s1") else -1, dtype)
               for k, shape, dtype in (("s2", (12, 64, 64), np.float32),
                                       ("s1", (2, 64, 64), np.float32),
                                       ("s2_count", (64, 64), np.int64),
                                       ("s1_count", (64, 64), np.int64))}
        for r in range(0, 64, size):
            for c in range(0, 64, size):
                blk = Block(c, r, min(size, 64 - c), min(size, 64 - r))
                res = src.fetch_block("t", GRID, blk, "2020-03", recipe)
                win = (slice(r, r + blk.height), slice(c, c + blk.width))
                out["s2"][(slice(None), *win)] = res.s2
                out["s1"][(slice(None), *win)] = res.s1
                out["s2_count"][win] = res.s2_count
                out["s1_count"][win] = res.s1_count
        return out

    whole = fetch(64)
    assert 0 < whole["s2_count"].min() < whole["s2_count"].max() == 2  # clouds masked somewhere
    assert np.isfinite(whole["s1"]).all()
    for size in (16, 24, 40):
        parts = fetch(size)
        for k in whole:
            assert parts[k].tobytes() == whole[k].tobytes(), (size, k)



def test_an_s1_pass_across_midnight_is_one_observation(tmp_path: Path) -> None:
    """Two slices of one pass (same relative orbit) at 23:59:40 and 00:00:05 UTC: one
    observation (a UTC-day key counted two); the same orbit 12 days later is a second one, and
    another orbit the same night a third."""
    from pipeline.sentinel.compositor import s1_passes

    tr = Affine(10.0, 0.0, SX0, 0.0, -10.0, SY0)
    vv = np.full((120, 120), -8.0, np.float32)
    for t in (dt.datetime(2020, 3, 14, 23, 59, 40), dt.datetime(2020, 3, 15, 0, 0, 5)):
        write_s1_scene(tmp_path, t, GRID.crs, tr, vv, vv - 7, relative_orbit=11)
    write_s1_scene(tmp_path, dt.datetime(2020, 3, 26, 23, 59, 45), GRID.crs, tr, vv, vv - 7,
                   relative_orbit=11)
    src = local_source(tmp_path)
    res = src.fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    assert (res.s1_count == 2).all()
    write_s1_scene(tmp_path, dt.datetime(2020, 3, 15, 0, 3), GRID.crs, tr, vv, vv - 7,
                   relative_orbit=84, orbit_pass="DESCENDING")
    res = local_source(tmp_path).fetch_block("t", GRID, BLOCK, "2020-03", Recipe())
    assert (res.s1_count == 3).all()
    from pipeline.io.scenes import list_s1_scenes

    groups = s1_passes(list_s1_scenes(tmp_path, "2020-03"))
    assert [len(g) for g in groups] == [2, 1, 1]
