"""Expansion grouping (UTM zone + single linkage), footprints for any GSD, per-sample months,
per (group, month) blocks and the request plan (known answers on tiny fixtures)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from pipeline.expand.adapters import SampleRecord, build_sample_index
from pipeline.expand.build import build_expansion
from pipeline.expand.grouping import _components, assign_groups
from pipeline.expand.plan import blocks_for_month, group_months
from pipeline.grid import FootprintRule

D = (dt.date(2019, 1, 10), dt.date(2019, 3, 2))


def rec(sid: str, crs: str, b: tuple, dates=D, w: int | None = None, gsd: float | None = None
        ) -> SampleRecord:
    return SampleRecord(sid, crs, b, dates, gsd, w, w, {}, "", "", "test")


def ll_box(sid: str, lon: float, lat: float, half: float = 0.0002, dates=D) -> SampleRecord:
    return rec(sid, "EPSG:4326", (lon - half, lat - half, lon + half, lat + half), dates)


def test_single_linkage_matches_scipy_hierarchy() -> None:
    from scipy.cluster.hierarchy import fcluster, linkage

    rng = np.random.default_rng(3)
    xy = np.concatenate([rng.uniform(0, 5000, (120, 2)), [[0.0, 0.0], [0.0, 0.0]],
                         np.column_stack([np.arange(5) * 100.0, np.zeros(5)])])  # dup + collinear
    for d in (150.0, 400.0, 900.0):
        a = _components(xy, d)
        b = fcluster(linkage(xy, "single"), d, "distance")
        assert len(set(a)) == len(set(b)) == len(set(zip(a, b, strict=True)))
    line = np.column_stack([np.arange(4) * 10.0, np.zeros(4)])  # degenerate for Delaunay
    assert len(set(_components(line, 10.0))) == 1 and len(set(_components(line, 9.0))) == 4


def test_groups_by_zone_and_distance_with_deterministic_names() -> None:
    recs = [
        ll_box("c", 113.50, 30.00), ll_box("a", 113.55, 30.00),  # ~4.8 km apart
        ll_box("b", 113.00, 30.00),  # ~48 km west
        ll_box("z1", 113.99, 30.00), ll_box("z2", 114.01, 30.00),  # 2 km apart, two zones
    ]
    idx = build_sample_index(recs, "ds")
    groups, epsg = assign_groups(idx, "ds", 20000.0)
    g = dict(zip(idx["sample_id"], groups, strict=True))
    e = dict(zip(idx["sample_id"], epsg, strict=True))
    assert g["a"] == g["c"] != g["b"]
    assert e["z1"] == 32649 and e["z2"] == 32650 and g["z1"] != g["z2"]
    # ordered by (EPSG, smallest id): zone 49: {a, c} < {b} < {z1}; zone 50: {z2}
    assert (g["a"], g["b"], g["z1"], g["z2"]) == ("ds-g000", "ds-g001", "ds-g002", "ds-g003")
    # input order does not matter
    idx2 = build_sample_index(recs[::-1], "ds")
    groups2, _ = assign_groups(idx2, "ds", 20000.0)
    assert dict(zip(idx2["sample_id"], groups2, strict=True)) == g
    # a larger distance links a/c with b, never across zones
    groups3, _ = assign_groups(idx, "ds", 60000.0)
    assert len(set(groups3)) == 3


def test_long_chain_is_cut_by_max_extent() -> None:
    recs = [ll_box(f"s{i:02d}", 110.0 + i * 0.1, 20.0) for i in range(13)]  # ~10.5 km steps
    idx = build_sample_index(recs, "ds")
    groups, _ = assign_groups(idx, "ds", 20000.0, max_extent_m=50000.0)
    assert len(set(groups)) == 3  # 126 km chain -> cells of 50 km
    groups, _ = assign_groups(idx, "ds", 20000.0, max_extent_m=500000.0)
    assert len(set(groups)) == 1


def test_sample_straddling_a_utm_zone_boundary() -> None:
    r = rec("s", "EPSG:4326", (113.99, 30.0, 114.03, 30.02))  # centroid 114.01 E -> zone 50
    exp = build_expansion(build_sample_index([r], "ds"), "ds", 640)
    row = exp.index.iloc[0]
    assert row.grid_epsg == 32650 and row.aoi == "ds-g000"
    fp = shapely.from_wkb(row.fp_geometry_wkb)
    patch = exp.tables["ds-g000"].geometry.iloc[0]  # sample box in the grid CRS
    assert fp.contains(patch)
    # default 5x rule on the box's size in metres measured in UTM 50N
    t = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True)
    x, y = t.transform([113.99, 114.03, 114.03, 113.99], [30.0, 30.0, 30.02, 30.02])
    side = max(max(x) - min(x), max(y) - min(y))
    assert row.fp_size_px == round(5 * side / 10)
    assert exp.grid_docs["ds-g000"]["crs"] == "EPSG:32650"


@pytest.mark.parametrize("kw,expected", [
    ({}, 1536),  # DynamicEarthNet: 5 x 1024 px x 3 m / 10 m
    ({"size_m": 3000.0}, 300),
    ({"size_px": 64}, 64),
])
def test_footprint_size_any_gsd_and_overrides(kw, expected) -> None:
    r = rec("den", "EPSG:32633", (400000.0, 5000000.0, 403072.0, 5003072.0), w=1024, gsd=3.0)
    exp = build_expansion(build_sample_index([r], "ds"), "ds", 640, rule=FootprintRule(**kw))
    row = exp.index.iloc[0]
    assert row.fp_size_px == expected
    assert row.patch_w_px == pytest.approx(307.2)
    # the patch sits centred in its footprint (within half a pixel of snapping)
    assert row.patch_off_x_px + row.patch_w_px / 2 == pytest.approx(expected / 2, abs=0.5)


def test_tiny_chips_and_mixed_sizes_in_one_group() -> None:
    recs = [
        rec("tiny", "EPSG:32649", (650000.0, 3795000.0, 650004.8, 3795004.8), w=16, gsd=0.3),
        rec("big", "EPSG:32649", (650400.0, 3795000.0, 650656.0, 3795256.0), w=512, gsd=0.5),
    ]
    exp = build_expansion(build_sample_index(recs, "ds"), "ds", 640)
    t = exp.index.set_index("sample_id")
    assert t.loc["tiny", "fp_size_px"] == 2 and t.loc["big", "fp_size_px"] == 128
    grid = exp.grids["ds-g000"]
    # both footprints are integer windows of the one group grid, in the right place
    for sid in ("tiny", "big"):
        fp = shapely.from_wkb(t.loc[sid, "fp_geometry_wkb"])
        assert fp.bounds[0] == grid.x0 + t.loc[sid, "fp_col0"] * 10.0
        assert fp.bounds[3] == grid.y0 - t.loc[sid, "fp_row0"] * 10.0
        assert fp.contains(exp.tables["ds-g000"].set_index("sample_id").geometry[sid])
    assert grid.x0 % 60 == 0 and grid.y0 % 60 == 0
    assert json.loads(json.dumps(exp.grid_docs["ds-g000"]))["size_px"] == [2, 128]
    # blocks cover every footprint pixel with per-sample sizes
    tb = exp.tables["ds-g000"]
    blocks = blocks_for_month(grid, tb.fp_col0.to_numpy(), tb.fp_row0.to_numpy(),
                              tb.fp_size_px.to_numpy(), tb.month_first.to_numpy(str),
                              tb.month_last.to_numpy(str), "2019-02", 64)
    cover = np.zeros((grid.height, grid.width), bool)
    for b in blocks:
        cover[b.row0:b.row0 + b.height, b.col0:b.col0 + b.width] = True
    for c, r, s in zip(tb.fp_col0, tb.fp_row0, tb.fp_size_px, strict=True):
        assert cover[r:r + s, c:c + s].all()


def test_plan_known_answer_single_sample() -> None:
    # 40 m box centred (650020, 3794980) -> 20 px footprint at lattice col 64992, row -379508
    r = rec("a", "EPSG:32649", (650000.0, 3794960.0, 650040.0, 3795000.0))
    exp = build_expansion(build_sample_index([r], "ds"), "ds", 640)
    g = exp.grids["ds-g000"]
    assert (g.x0, g.y0, g.width, g.height) == (649920.0, 3795120.0, 24, 24)
    row = exp.index.iloc[0]
    assert (row.fp_col0, row.fp_row0, row.fp_size_px) == (0, 4, 20)
    p = exp.plan["groups"][0]
    assert p["months"] == ["2019-01", "2019-02", "2019-03"]
    assert p["per_month"]["2019-02"] == {"samples": 1, "blocks": 1, "pixels": 576}
    assert (p["requests"], p["pixel_requests"], p["count_queries"]) == (6, 3, 3)
    assert p["pixel_months"] == 3 * 576 and p["ee_cost_proxy"] == 3 * 576 * 14
    assert p["naive"]["pixel_months"] == 3 * 400 and p["naive"]["requests"] == 3
    assert p["union_px"] == 400


def test_per_sample_months_union_and_active_blocks() -> None:
    recs = [
        rec("early", "EPSG:32649", (650000.0, 3794960.0, 650040.0, 3795000.0),
            (dt.date(2019, 1, 10), dt.date(2019, 2, 2))),
        rec("late", "EPSG:32649", (651000.0, 3794960.0, 651040.0, 3795000.0),
            (dt.date(2019, 6, 3), dt.date(2019, 6, 20))),  # shorter than a month: gets June
    ]
    exp = build_expansion(build_sample_index(recs, "ds"), "ds", 640)
    p = exp.plan["groups"][0]
    assert p["months"] == ["2019-01", "2019-02", "2019-06"]  # union, with a gap
    assert group_months(["2019-01", "2019-06"], ["2019-02", "2019-06"]) == p["months"]
    assert [p["per_month"][m]["samples"] for m in p["months"]] == [1, 1, 1]
    assert exp.grid_docs["ds-g000"]["months"] == p["months"]
    # in June only the late sample's footprint is fetched: its block lies east of the early one
    tb = exp.tables["ds-g000"].set_index("sample_id")
    args = (tb.fp_col0.to_numpy(), tb.fp_row0.to_numpy(), tb.fp_size_px.to_numpy(),
            tb.month_first.to_numpy(str), tb.month_last.to_numpy(str))
    june = blocks_for_month(exp.grids["ds-g000"], *args, "2019-06", 64)
    jan = blocks_for_month(exp.grids["ds-g000"], *args, "2019-01", 64)
    assert june and jan and min(b.col0 for b in june) > max(b.col0 + b.width for b in jan) - 64
    assert blocks_for_month(exp.grids["ds-g000"], *args, "2019-04", 64) == []


def test_fusu_templates_plan_beats_naive(tmp_path: Path) -> None:
    from pipeline.config import ExpandConfig
    from pipeline.expand.datasets import read_samples

    idx = build_sample_index(read_samples(ExpandConfig(
        adapter="aoi", path="aoi/fusu-beilin.yaml", plan_only=True)), "fusu")
    exp = build_expansion(idx, "fusu", 640)
    t = exp.plan["totals"]
    assert t["samples"] == 506 and t["groups"] == 1 and t["group_months"] == 25
    # 5x footprints overlap ~25x: blocked pixel-months are far below the naive ones
    assert t["ratio_naive_over_blocked"]["pixel_months"] > 10
    assert t["naive"]["requests"] == 506 * 25


def test_oscd_footprints_follow_the_sample_not_5x(tmp_path: Path, caplog) -> None:
    """An OSCD city (10 m, 600 x 600 px = 6 km): the 5x rule gives a 30 km footprint and a cube
    over the byte budget (warned before any fetch); the default extent rule for OSCD gives the
    city + 320 m a side."""
    import logging

    from pipeline.config import ExpandConfig, FootprintsConfig, SentinelConfig
    from pipeline.expand.drivers import expand_index
    from pipeline.layout import Layout
    from tests.expand_helpers import write_tif

    c = tmp_path / "Images" / "beirut"
    for k in (1, 2):
        for b in ("B02", "B03", "B08"):
            write_tif(c / f"imgs_{k}" / f"S2A_beirut_{b}.tif", "EPSG:32636", 700000.0,
                      3750000.0, 10.0, 600, 600, count=1, dtype="uint16", value=1000)
    (c / "dates.txt").write_text("date_1: 20151204\ndate_2: 20171007\n")
    res = {}
    for mode in ("scale", "auto"):
        cfg = ExpandConfig(adapter="oscd", path=str(tmp_path / "Images"), plan_only=True,
                           footprint=mode, max_cube_gb=5.0, max_footprint_area_ratio=20.0)
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            exp = expand_index(cfg, FootprintsConfig(), SentinelConfig(),
                               Layout(tmp_path / mode), "oscd")
        res[mode] = (int(exp.index["fp_size_px"].iloc[0]), exp.plan["totals"]["bytes_est"],
                     "exceed 20x" in caplog.text and "more than expand.max_cube_gb" in caplog.text)
    assert res["scale"][0] == 3000 and res["scale"][2]  # 30 km, 25x the city: warned
    assert res["auto"][0] == 664 and not res["auto"][2]  # 6 km + 2 x 320 m
    assert res["scale"][1] > 15 * res["auto"][1]
    print(f"OSCD-like city: scale rule {res['scale'][0]} px, {res['scale'][1] / 1e9:.2f} GB; "
          f"extent rule {res['auto'][0]} px, {res['auto'][1] / 1e9:.2f} GB")
