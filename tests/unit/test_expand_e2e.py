"""Expansion end to end: pairs fixture -> index/plan -> group x month fetches -> stats/summary,
with the offline local source (tiny scene archive) and with the fake Earth Engine server;
plan-only and the Snakemake wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.bands import S2_BANDS
from pipeline.config import ExpandConfig, FootprintsConfig, SentinelConfig
from pipeline.errors import DatasetError
from pipeline.expand.drivers import expand_index, expand_init, expand_month, expand_stats
from pipeline.io.jsonfile import read_json
from pipeline.io.mosaic_read import read_footprint_cube
from pipeline.io.parquet import read_geoparquet
from pipeline.layout import Layout
from pipeline.sentinel.model import Block
from tests.expand_helpers import make_pairs
from tests.sentinel_helpers import write_scene


def expand_all(cfg: ExpandConfig, sentinel: SentinelConfig, layout: Layout) -> dict:
    """What the Snakemake rules do: index, then every group x month, then stats."""
    sentinel = sentinel.model_copy(update={"block_size_px": 64})
    exp = expand_index(cfg, FootprintsConfig(), sentinel, layout, "ds")
    for g in exp.plan["groups"]:
        expand_init(g["group"], layout)
        for m in g["months"]:
            expand_month(g["group"], m, sentinel, cfg, layout)
    return expand_stats(cfg, layout, "ds")


def test_plan_only_writes_plan_and_no_mosaic(tmp_path: Path) -> None:
    root = make_pairs(tmp_path / "pairs")
    layout = Layout(tmp_path / "out")
    cfg = ExpandConfig(adapter="pairs", path=str(root), plan_only=True)
    expand_index(cfg, FootprintsConfig(), SentinelConfig(block_size_px=640), layout, "ds")
    plan = read_json(layout.expand_plan())
    assert plan["plan_only"] is True and plan["totals"]["samples"] == 2
    g = plan["groups"][0]
    assert g["group"] == "ds-g000" and g["months"] == ["2020-02", "2020-03"]
    assert g["per_month"]["2020-02"]["samples"] == 1 and g["per_month"]["2020-03"]["samples"] == 2
    assert g["footprint_size_px"] == [20]
    assert (layout.expand_layout().footprints("ds-g000")).is_file()
    assert (layout.expand_layout().footprints_gpkg("ds-g000")).is_file()
    assert not (layout.expand_dir() / "sentinel").exists()
    idx = read_geoparquet(layout.expand_samples())
    assert list(idx["aoi"]) == ["ds-g000", "ds-g000"]
    assert {"fp_col0", "fp_row0", "fp_size_px", "patch_off_x_px", "fp_geometry_wkb",
            "month_first", "month_last", "n_months", "files"} <= set(idx.columns)


def test_end_to_end_local_source(tmp_path: Path) -> None:
    root = make_pairs(tmp_path / "pairs")
    archive = tmp_path / "archive"
    write_scene(archive, 3, 0.1)
    write_scene(archive, 13, 0.3)  # 2020-03 only; 2020-02 has no scene
    layout = Layout(tmp_path / "out")
    cfg = ExpandConfig(adapter="pairs", path=str(root), sentinel_archive=str(archive),
                       copy_originals=True)
    summary = expand_all(cfg, SentinelConfig(source="local"), layout)
    xl = layout.expand_layout()
    idx = read_geoparquet(layout.expand_samples()).set_index("sample_id")
    cube = read_footprint_cube(xl.mosaic("ds-g000"), int(idx.loc["p1", "fp_col0"]),
                               int(idx.loc["p1", "fp_row0"]), 20)
    assert cube["months"] == ["2020-02", "2020-03"]
    feb, mar = cube["x"][0], cube["x"][1]
    assert np.isnan(feb[:12]).all() and (cube["counts"][0] == 0).all()
    np.testing.assert_allclose(mar[S2_BANDS.index("B4")], 0.2, atol=1e-4)
    assert (cube["counts"][1, 0] == 2).all()
    stats = read_json(xl.stats())
    assert stats["sentinel"]["mean"][S2_BANDS.index("B4")] == pytest.approx(0.2, abs=1e-4)
    assert summary["groups"]["ds-g000"]["s2_product"] == {"2020-02": "none", "2020-03": "L2A"}
    # S2 observed in March: a series; the archive holds no S1 at all: recorded, not an error
    assert summary["groups"]["ds-g000"]["empty_series"] == {
        "s1": {"2020-02": "nothing acquired", "2020-03": "nothing acquired"}}
    assert summary["originals"] == "copied"
    assert (layout.expand_originals_dir() / "p1" / "t1" / "p1.tif").is_file()
    assert (layout.expand_originals_dir() / "p2" / "label" / "p2.tif").is_file()
    # the per-sample reader keeps each sample's own months
    from pipeline.expand.cube import read_sample_cube

    c1, c2 = read_sample_cube(layout, "p1"), read_sample_cube(layout, "p2")
    assert c1["months"] == ["2020-03"] and c2["months"] == ["2020-02", "2020-03"]
    assert c1["x"].shape == (1, 14, 20, 20) and c1["crs"] == "EPSG:32649"
    np.testing.assert_array_equal(c1["x"][0], mar)
    off_x, off_y, w, h = c1["patch_box_px"]
    assert (w, h) == (4.0, 4.0) and 0 < off_x < 16 and 0 < off_y < 16
    # a rerun resumes from the ledger: nothing is fetched again
    s = expand_month("ds-g000", "2020-03", SentinelConfig(source="local", block_size_px=64), cfg,
                     layout)
    assert s["blocks_done"] == 0 and s["blocks_skipped"] == s["blocks"] >= 1


def test_local_source_needs_an_archive(tmp_path: Path) -> None:
    from pipeline.errors import ConfigError
    from pipeline.sentinel.sources import make_source

    with pytest.raises(ConfigError, match="sentinel_archive"):
        make_source(SentinelConfig(source="local"), ExpandConfig().sentinel_archive, "expand")


@pytest.fixture
def fake_ee(monkeypatch):
    pytest.importorskip("ee")
    from tests.fake_ee import FakeEarthEngine, patch_ee_offline

    patch_ee_offline(monkeypatch)
    server = FakeEarthEngine().start()
    monkeypatch.setenv("EE_API_URL", server.url)
    monkeypatch.setenv("EE_PROJECT", "test")
    yield server
    server.stop()


def test_end_to_end_fake_earth_engine_mixed_crs_index(tmp_path: Path, fake_ee) -> None:
    from pipeline.sentinel.sources.gee import block_grid
    from tests.fake_ee import expected_block

    # two samples ~300 m apart given in two CRSs (UTM 49N and WGS84), one group
    (tmp_path / "index.csv").write_text(
        "id,minx,miny,maxx,maxy,crs,t1,t2\n"
        "u,650300,3794660,650340,3794700,EPSG:32649,2019-05-03,2019-06-20\n"
        "w,112.6295,34.2795,112.6299,34.2799,EPSG:4326,2019-06-01,2019-06-15\n"
    )
    layout = Layout(tmp_path / "out")
    cfg = ExpandConfig(adapter="index", path=str(tmp_path / "index.csv"))
    summary = expand_all(cfg, SentinelConfig(source="gee"), layout)
    assert summary["originals"] == "referenced"
    assert not layout.expand_originals_dir().exists()
    g = summary["groups"]["ds-g000"]
    assert g["months"] == ["2019-05", "2019-06"] and g["samples"] == 2
    # blocked requests: one per (block, month); the fake saw exactly those
    assert fake_ee.counters.ok_requests == g["requests"] == g["blocks"]
    idx = read_geoparquet(layout.expand_samples()).set_index("sample_id")
    from pipeline.grid import AoiGrid

    grid = AoiGrid.from_dict(read_json(layout.expand_layout().grid("ds-g000")))
    for sid in ("u", "w"):
        c0, r0, n = (int(idx.loc[sid, k]) for k in ("fp_col0", "fp_row0", "fp_size_px"))
        cube = read_footprint_cube(layout.expand_layout().mosaic("ds-g000"), c0, r0, n)
        exp = expected_block(block_grid(grid, Block(c0, r0, n, n)), "2019-06")
        np.testing.assert_allclose(cube["x"][1, :12], exp["s2"], atol=6e-5)  # uint16 storage
        np.testing.assert_allclose(cube["x"][1, 12:], exp["s1"], atol=1e-5)
        np.testing.assert_array_equal(cube["counts"][1, 0], exp["s2_count"])
    # w is only active in June: May holds data only where u's footprint needs it
    stats = read_json(layout.expand_layout().stats())
    assert stats["samples"] == 2 and all(c > 0 for c in stats["sentinel"]["count"])


def test_training_stage_runs_on_an_expanded_dataset(tmp_path: Path) -> None:
    """train.dataset: expanded: the PyTorch dataset of expanded samples (original HR pair,
    change label, the sample's own monthly cube) in the native sample format, and the training
    stage's tiny config on it."""
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    from pipeline.config import TrainConfig
    from pipeline.dataset.collate import fusu_collate
    from pipeline.dataset.torch_expanded import ExpandedDataset
    from pipeline.train.drivers import train_model

    root = make_pairs(tmp_path / "pairs")
    archive = tmp_path / "archive"
    write_scene(archive, 3, 0.1)
    write_scene(archive, 13, 0.3)
    layout = Layout(tmp_path / "out")
    cfg = ExpandConfig(adapter="pairs", path=str(root), sentinel_archive=str(archive))
    expand_all(cfg, SentinelConfig(source="local"), layout)
    ds = ExpandedDataset(layout.root, split="train", hr_size=32, fp_px=16)
    s = ds[ds.patch_ids.index("p2")]
    assert s["t1"].shape == (3, 32, 32) and s["change"].shape == (32, 32)
    assert set(s["change"].unique().tolist()) <= {0, 1, 255} and (s["label1"] == 255).all()
    assert s["sentinel"].shape == (2, 14, 16, 16) and s["meta"]["months"] == ["2020-02",
                                                                              "2020-03"]
    assert s["month_mask"].all() and s["patch_box"][2] > 0
    batch = fusu_collate([ds[0], ds[1]])  # different month counts: padded like native ones
    assert batch["sentinel"].shape[1] == 2 and not batch["month_mask"].all()
    tc = TrainConfig(dataset="expanded", tiny=True, hr_size_px=32, expanded_fp_px=16,
                     max_steps=2, batch_size=2, num_workers=0, eval_every=1,
                     checkpoint_every=1, run="oscd-like")
    res = train_model(tc, layout, threads=1, progress=False)
    assert res["step"] == 2 and res["dataset"] == "expanded"
    assert res["test"]["pixels"]["change"] > 0 and "change_iou" in res["test"]


def _expanded_den(tmp_path: Path, months: tuple[str, ...]) -> Layout:
    """Two DynamicEarthNet cubes with labels of ``months`` expanded with a scene archive of
    February and March 2020."""
    from tests.expand_helpers import make_dynamicearthnet

    den = make_dynamicearthnet(tmp_path / "den", months=months, e2e=True)
    archive = tmp_path / "archive"
    write_scene(archive, 3, 0.1, month=(2020, 2))
    write_scene(archive, 13, 0.3)
    layout = Layout(tmp_path / "out")
    cfg = ExpandConfig(adapter="dynamicearthnet", path=str(den), sentinel_archive=str(archive),
                       footprint_margin_m=100.0)
    expand_all(cfg, SentinelConfig(source="local"), layout)
    return layout


def test_dynamicearthnet_expansion_trains_its_monthly_classes(tmp_path: Path) -> None:
    """DynamicEarthNet end to end: the adapter, the fetch of each cube's Sentinel months from
    a scene archive, the expanded PyTorch dataset with the classes of the first and last
    labelled month (ids 1..6) and their change, and the training stage on it, whose
    predictions stay within the dataset's six classes."""
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    from pipeline.config import TrainConfig
    from pipeline.dataset.torch_expanded import ExpandedDataset
    from pipeline.expand.datasets.dynamicearthnet import DEN_CLASSES
    from pipeline.train.drivers import train_model

    layout = _expanded_den(tmp_path, ("2020-02", "2020-03"))
    ds = ExpandedDataset(layout.root, split="train", hr_size=32, fp_px=16)
    assert ds.class_ids == (1, 2, 3, 4, 5, 6) and len(ds) == 1
    s = ds[0]
    # agriculture (id 2) everywhere in the first month; the north quarter impervious (id 1)
    # in the last one, which is the change
    assert set(s["label1"].unique().tolist()) == {2}
    assert set(s["label2"].unique().tolist()) == {1, 2}
    assert ((s["label2"] == 1) == (s["change"] == 1)).all()
    assert s["change"][:8].eq(1).all() and s["change"][8:].eq(0).all()
    assert s["meta"]["months"] == ["2020-02", "2020-03"]
    assert s["meta"]["class_names"] == list(DEN_CLASSES[:6])
    assert s["sentinel"].shape == (2, 14, 16, 16) and s["sentinel_valid"].any()
    tc = TrainConfig(dataset="expanded", tiny=True, hr_size_px=32, expanded_fp_px=16,
                     max_steps=2, batch_size=1, num_workers=0, eval_every=1,
                     checkpoint_every=1, run="den")
    res = train_model(tc, layout, threads=1, progress=False)
    test = res["test"]
    assert res["step"] == 2 and test["pixels"]["seg"] > 0
    assert test["seg_miou"] is not None and "bc_den" in test
    # classes 7..17 do not exist in DynamicEarthNet: never predicted, so their IoU is undefined
    assert all(test["seg_iou_per_class"][c] is None
               for c in range(7, 18)), test["seg_iou_per_class"]
    # no val list here: val is the test list; a dataset with a val list gets its own
    assert ExpandedDataset(layout.root, split="val").patch_ids == ["2196_3885_13"]
    from pipeline.io.parquet import write_geoparquet

    idx = read_geoparquet(layout.expand_samples())
    idx.loc[idx["sample_id"] == "2196_3885_13", "source_split"] = "val"
    write_geoparquet(idx, layout.expand_samples())
    assert ExpandedDataset(layout.root, split="val").patch_ids == ["2196_3885_13"]
    with pytest.raises(DatasetError, match="split 'test'"):
        ExpandedDataset(layout.root, split="test")


def test_dynamicearthnet_protocol_runs_in_evaluation(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamicEarthNet's own protocol in training and in rule evaluate: one sample per pair of
    consecutive labelled months (the month's own image and labels), the cube's monthly maps
    (first month from the first pair's T1 prediction, the others from their pair's T2) scored
    by den_scs with classes 0..5 -- checked on the maps den_scs receives."""
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    from pipeline.config import TrainConfig
    from pipeline.dataset.torch_expanded import ExpandedDataset
    from pipeline.train import metrics as metrics_mod
    from pipeline.train.drivers import evaluate_run, train_model

    layout = _expanded_den(tmp_path, ("2020-02", "2020-03", "2020-04"))
    pairs = ExpandedDataset(layout.root, split="test", hr_size=32, fp_px=16, den_pairs=True)
    assert pairs.patch_ids == ["2196_3885_13:2020-02", "2196_3885_13:2020-03"]
    s0, s1 = pairs[0], pairs[1]
    assert s0["meta"]["den_months"] == ["2020-02", "2020-03"] and s1["meta"]["den_pair"] == 1
    # month 1 all agriculture (id 2); months 2 and 3: the north quarter impervious (id 1)
    assert set(s0["label1"].unique().tolist()) == {2} and s0["change"][:8].eq(1).all()
    assert s1["change"].eq(0).all() and s1["label1"].equal(s0["label2"])
    seen: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
    real = metrics_mod.den_scs

    def spy(gt, pred, **kw):  # type: ignore[no-untyped-def]
        seen.append((gt, pred))
        return real(gt, pred, **kw)

    monkeypatch.setattr(metrics_mod, "den_scs", spy)
    tc = TrainConfig(dataset="expanded", tiny=True, hr_size_px=32, expanded_fp_px=16,
                     max_steps=2, batch_size=1, num_workers=0, eval_every=1,
                     checkpoint_every=1, run="den")
    res = train_model(tc, layout, threads=1, progress=False)
    proto = res["test"]["den_protocol"]
    assert proto["cubes"] == 1 and proto["month_pairs"] == 2 and proto["resolution_px"] == 32
    (gt, pred), = seen
    assert len(gt) == 1 and gt[0].shape == (3, 32, 32) and pred[0].shape == (3, 32, 32)
    expect = np.ones((3, 32, 32), np.int64)  # agriculture = class 1 of 0..5
    expect[1:, :8] = 0  # impervious from the second month on
    np.testing.assert_array_equal(gt[0], expect)
    assert pred[0].min() >= 0 and pred[0].max() <= 5  # the six classes, 0-based
    assert proto == {**real(gt, pred, num_classes=6, ignore_label=255), "cubes": 1,
                     "month_pairs": 2, "resolution_px": 32}
    saved = read_json(layout.train_dir("den") / "metrics.json")
    assert saved["test"]["den_protocol"]["scs"] == proto["scs"]
    ev = evaluate_run(tc.model_copy(update={"eval_split": "test"}), layout)
    assert ev["metrics"]["den_protocol"]["month_pairs"] == 2


def test_xbd_expansion_reads_its_cube_and_damage_mask(tmp_path: Path) -> None:
    """xBD end to end: pairs placed from their label JSONs, the Sentinel months of the pre and
    post dates fetched from a scene archive, and the expanded sample (RGB pair, damaged
    buildings as change, un-classified ones ignored, the monthly cube)."""
    pytest.importorskip("torch")
    from pipeline.dataset.torch_expanded import ExpandedDataset
    from tests.expand_helpers import make_xbd

    xbd = make_xbd(tmp_path / "xbd", lon0=112.632, lat0=34.2845,
                   dates=("2020-02-20T03:30:11.000Z", "2020-03-18T03:38:50.685Z"))
    archive = tmp_path / "archive"
    write_scene(archive, 3, 0.1, month=(2020, 2))
    write_scene(archive, 13, 0.3)
    layout = Layout(tmp_path / "out")
    cfg = ExpandConfig(adapter="xbd", path=str(xbd), sentinel_archive=str(archive))
    expand_all(cfg, SentinelConfig(source="local"), layout)
    ds = ExpandedDataset(layout.root, split=None, hr_size=64, fp_px=16)
    assert len(ds) == 1  # the pair without buildings cannot be placed: a counted skip
    s = ds[0]
    assert s["meta"]["months"] == ["2020-02", "2020-03"]
    assert s["sentinel"].shape == (2, 14, 16, 16) and s["sentinel_valid"].all()
    assert s["counts"][:, 0].max() >= 1  # S2 observations in both months
    chg = s["change"]
    # building 2 (x 30..50, y 40..60) destroyed; building 3 (x 40..60, y 2..12) un-classified
    assert chg[45, 35] == 1 and chg[10, 10] == 0 and chg[5, 50] == 255
    assert set(chg.unique().tolist()) == {0, 1, 255}


def _stac_expansion(tmp_path: Path) -> tuple[ExpandConfig, Layout]:
    """The pairs fixture indexed for an expansion whose scenes come from a static STAC
    catalogue (the scene archive with its catalog.json)."""
    from pipeline.io.stac_catalog import write_scene_catalog

    root = make_pairs(tmp_path / "pairs")
    archive = tmp_path / "archive"
    write_scene(archive, 3, 0.1)
    write_scene(archive, 13, 0.3)
    write_scene_catalog(archive)
    cfg = ExpandConfig(adapter="pairs", path=str(root), sentinel_archive=str(archive))
    layout = Layout(tmp_path / "out")
    expand_index(cfg, FootprintsConfig(), SentinelConfig(block_size_px=64), layout, "ds")
    expand_init("ds-g000", layout)
    return cfg, layout


def test_expansion_uses_the_stac_concurrency_like_the_native_aois(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One month-fetch path: an expansion on the STAC source fetches
    ``sentinel.stac.concurrency`` blocks at once (as native AOIs do), not the job's threads,
    and gives the same pixels as the local archive it was catalogued from."""
    import pipeline.sentinel.month as month_mod

    seen: list[int] = []
    real = month_mod.run_month

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs["concurrency"])
        return real(*args, **kwargs)

    monkeypatch.setattr(month_mod, "run_month", spy)
    cfg, layout = _stac_expansion(tmp_path)
    stac = SentinelConfig(source="stac", block_size_px=64, stac={"concurrency": 5})
    s = expand_month("ds-g000", "2020-03", stac, cfg, layout, threads=2)
    assert seen == [5] and s["source"] == "stac" and s["blocks_done"] >= 1
    local = SentinelConfig(source="local", block_size_px=64)
    layout2 = Layout(tmp_path / "out2")
    expand_index(cfg, FootprintsConfig(), local, layout2, "ds")
    expand_month("ds-g000", "2020-03", local, cfg, layout2, threads=2)
    assert seen == [5, 2]  # the local archive: the job's threads
    xl, xl2 = layout.expand_layout(), layout2.expand_layout()
    a = read_footprint_cube(xl.mosaic_staging("ds-g000"), 0, 0, (30, 42))
    b = read_footprint_cube(xl2.mosaic_staging("ds-g000"), 0, 0, (30, 42))
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["counts"], b["counts"])
    assert (a["counts"][1, 0] == 2).any()  # the March scenes were composited
