"""Dataset statistics (pipeline.dataset.stats + stages.stats): streaming moments, known answers."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from pipeline.aoi import AoiSpec
from pipeline.config import SplitsConfig
from pipeline.dataset.drivers import assemble_dataset, dataset_stats
from pipeline.dataset.stats import RunningMoments, check_sentinel_inputs, class_frequencies
from pipeline.errors import DatasetError
from pipeline.io.mosaic_read import read_footprint_cube
from pipeline.layout import Layout
from tests.splits_helpers import HR_PX, make_native_aoi

warnings.filterwarnings("ignore", message=".*Zarr V3 specification.*")


def _spec(name: str, city: str, t2: str = "2019-10-18") -> AoiSpec:
    return AoiSpec(name=name, city=city, t1="2019-08-14", t2=t2, template=True)


def test_running_moments_match_numpy_over_chunks_with_nan() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal([1.0, -5.0, 100.0], [0.5, 2.0, 30.0], size=(5000, 3)).T  # (3, n)
    data[1, ::7] = np.nan
    valid = np.ones_like(data, bool)
    valid[2, :100] = False
    acc = RunningMoments(3)
    for sl in np.array_split(np.arange(data.shape[1]), 13):
        acc.update(data[:, sl], valid[:, sl])
    ref = np.where(valid, data, np.nan)
    np.testing.assert_allclose(acc.mean, np.nanmean(ref, axis=1), rtol=1e-12)
    np.testing.assert_allclose(acc.std, np.nanstd(ref, axis=1), rtol=1e-10)
    assert acc.count.tolist() == np.isfinite(ref).sum(axis=1).tolist()


def test_running_moments_empty_channel_reports_null() -> None:
    acc = RunningMoments(2)
    acc.update(np.array([[1.0, 3.0], [np.nan, np.nan]]))
    d = acc.as_dict(["a", "b"])
    assert d["mean"] == [2.0, None] and d["std"] == [1.0, None] and d["count"] == [2, 0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, list[AoiSpec]]:
    lay = Layout(tmp_path_factory.mktemp("stats"))
    make_native_aoi(lay, "xa", "xian", nrow=6, ncol=6)
    make_native_aoi(lay, "jx", "jiaxing", nrow=5, ncol=5, x0=660000.0, seed=1)
    aois = [_spec("xa", "xian"), _spec("jx", "jiaxing")]
    assemble_dataset(aois, SplitsConfig(block_size_patches=2), lay)
    dataset_stats(aois, lay, progress=False)
    return lay, aois


def test_sentinel_stats_equal_a_brute_force_reference(built) -> None:
    lay, _ = built
    stats = json.loads(lay.stats().read_text())
    idx = pd.read_parquet(lay.index(), columns=["aoi", "split", "fp_col0", "fp_row0",
                                                "fp_size_px"])
    train = idx[idx["split"] == "train"]
    xs, ms = [], []
    for r in train.itertuples():
        cube = read_footprint_cube(lay.mosaic(r.aoi), r.fp_col0, r.fp_row0, r.fp_size_px)
        x = cube["x"].astype(np.float64)  # (T, 14, H, W)
        clear = np.concatenate([np.repeat(cube["counts"][:, :1] > 0, 12, 1),
                                np.repeat(cube["counts"][:, 1:] > 0, 2, 1)], axis=1)
        xs.append(np.moveaxis(x, 1, 0).reshape(14, -1))
        ms.append(np.moveaxis(clear, 1, 0).reshape(14, -1))
    ref = np.where(np.concatenate(ms, 1), np.concatenate(xs, 1), np.nan)
    s = stats["sentinel"]
    assert len(s["bands"]) == 14 and s["bands"][-2:] == ["VV", "VH"]
    np.testing.assert_allclose(s["mean"], np.nanmean(ref, axis=1), rtol=1e-6)
    np.testing.assert_allclose(s["std"], np.nanstd(ref, axis=1), rtol=1e-5, atol=1e-7)
    assert s["count"] == np.isfinite(ref).sum(axis=1).tolist()
    # the fixture's month 0 has no observation in grid column 0: those pixels are excluded
    assert s["count"][0] < ref.shape[1]
    assert s["mean"][12] == pytest.approx(-10.0) and s["std"][12] == pytest.approx(0.0, abs=1e-6)


def test_hr_stats_known_answer(built) -> None:
    lay, _ = built
    stats = json.loads(lay.stats().read_text())
    idx = pd.read_parquet(lay.index(), columns=["patch_id", "aoi", "split"])
    train = idx[idx["split"] == "train"]
    # fixture: band b of patch k = 10*b + k + 1 (+1 at T2), first row = no data
    vals = []
    for r in train.itertuples():
        row, col = int(r.patch_id[-8:-5]), int(r.patch_id[-3:])
        ncol = 6 if r.aoi == "xa" else 5
        k = row * ncol + col
        vals += [k + 1, k + 2]
    vals = np.array(vals, float)
    n_valid = HR_PX * (HR_PX - 1)
    hr = stats["hr"]
    for b in range(3):
        assert hr["mean"][b] == pytest.approx(vals.mean() + 10 * b)
        assert hr["std"][b] == pytest.approx(vals.std())
        assert hr["count"][b] == len(vals) * n_valid


def test_class_and_change_frequencies_per_split_and_city(built) -> None:
    lay, _ = built
    stats = json.loads(lay.stats().read_text())
    idx = pd.read_parquet(lay.index())
    for s in ("train", "val", "test"):
        sub = idx[idx["split"] == s]
        h = np.array([sub[f"hist_t1_{v}"].sum() + sub[f"hist_t2_{v}"].sum() for v in range(18)])
        got = np.array([stats["class_frequencies"][s][str(v)] for v in range(18)])
        np.testing.assert_allclose(got, h / h.sum())
        assert stats["change"][s]["change_fraction"] == pytest.approx(
            sub["changed_px"].sum() / sub["valid_px"].sum())
        xi = sub[sub["city"] == "xian"]
        assert stats["change"]["by_city"]["xian"][s]["patches"] == len(xi)
        assert set(stats["class_frequencies_by_city"]) == {"xian", "jiaxing"}
    assert stats["n_patches"]["train"] == int((idx["split"] == "train").sum())


def test_class_frequencies_of_an_empty_split_are_zero() -> None:
    df = pd.DataFrame({"split": ["train"], "city": ["c"],
                       **{f"hist_t1_{v}": [v] for v in range(18)},
                       **{f"hist_t2_{v}": [0] for v in range(18)}})
    out = class_frequencies(df)
    assert out["class_frequencies"]["val"]["3"] == 0.0
    assert out["class_frequencies"]["train"]["17"] == pytest.approx(17 / sum(range(18)))


def test_missing_months_and_mosaics_are_listed() -> None:
    with pytest.raises(DatasetError) as ei:
        check_sentinel_inputs(
            {"a": ["2019-08", "2019-09"], "b": ["2020-01"], "c": ["2020-02"]},
            {"a": ["2019-08"], "b": None, "c": ["2020-02"]},
        )
    msg = str(ei.value)
    assert "a: months missing from the mosaic: 2019-09" in msg
    assert "b: Sentinel mosaic missing" in msg
    assert "; c:" not in msg and not msg.startswith("c:")
    assert "sentinel rules" in msg


def test_stage_fails_before_reading_when_sentinel_data_is_missing(tmp_path) -> None:
    lay = Layout(tmp_path)
    make_native_aoi(lay, "xa", "xian", nrow=4, ncol=4)  # mosaic holds 2019-08..2019-10
    make_native_aoi(lay, "nm", "xian", nrow=4, ncol=4, x0=655000.0, mosaic=False)
    aois = [_spec("xa", "xian", t2="2019-11-20"), _spec("nm", "xian")]
    assemble_dataset(aois, SplitsConfig(mode="random"), lay)
    with pytest.raises(DatasetError, match=r"nm: Sentinel mosaic missing.*xa: months missing "
                                           r"from the mosaic: 2019-11"):
        dataset_stats(aois, lay, progress=False)
    assert not lay.stats().exists()
