"""Tests of pipeline.dataset.torchds (PyTorch dataset + collate) on a tiny generated native
layout."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from pipeline.errors import DatasetError, MissingInputError
from tests.torchds_helpers import make_dataset, s2_dn

torch = pytest.importorskip("torch")

from pipeline.dataset.collate import fusu_collate
from pipeline.dataset.normalize import parse_stats, select_months
from pipeline.dataset.torchds import FusuDataset


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("native")
    make_dataset(r)
    return r


def _tif(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_sample_keys_shapes_dtypes(root: Path) -> None:
    ds = FusuDataset(root, split=None)
    assert len(ds) == 6
    s = ds[ds.patch_ids.index("alpha_r000_c001")]
    assert s["t1"].shape == (3, 32, 32) and s["t1"].dtype == torch.float32
    assert s["label1"].shape == (32, 32) and s["label1"].dtype == torch.int64
    assert s["change"].dtype == torch.int64
    assert set(np.unique(s["change"].numpy())) <= {0, 1, 255}
    assert s["sentinel"].shape == (3, 14, 40, 40) and s["sentinel"].dtype == torch.float32
    assert s["sentinel_valid"].shape == (3, 40, 40) and s["sentinel_valid"].dtype == torch.bool
    assert s["counts"].shape == (3, 2, 40, 40) and s["counts"].dtype == torch.uint8
    assert s["month_mask"].tolist() == [True, True, True]
    assert s["patch_box"].tolist() == [16.0, 16.0, 8.0, 8.0]
    m = s["meta"]
    assert m["patch_id"] == "alpha_r000_c001" and m["aoi"] == "alpha"
    assert m["months"] == ["2019-01", "2019-02", "2019-03"]
    assert m["bands"][3] == "B4" and m["wavelengths_nm"][3] == pytest.approx(664.6)
    assert m["gsd_m"] == 2.5 and m["sentinel_gsd_m"] == 10.0
    assert m["class_ids"] == list(range(18)) and m["class_names"][8] == "Orchard"
    assert m["footprint"] == (8, 0, 40)


def test_known_values_normalised(root: Path) -> None:
    ds = FusuDataset(root, split=None, normalize=True)
    i = ds.patch_ids.index("alpha_r000_c001")  # footprint starts at grid column 8
    s = ds[i]
    raw = _tif(root / "aois/alpha/hr/t1/alpha_r000_c001.tif").astype(np.float32) / 255.0
    np.testing.assert_allclose(s["t1"].numpy(), (raw - 0.5) / 0.2, atol=1e-5)
    lab = _tif(root / "aois/alpha/labels/t2/alpha_r000_c001.tif")[0]
    np.testing.assert_array_equal(s["label2"].numpy(), lab)
    # S2 band B4 (index 3), month 1, footprint pixel (y=5, x=2) -> grid column 10
    dn = s2_dn(1, 3, np.array(10))
    expected = (dn / 10000.0 - (0.1 + 0.03)) / 0.05
    assert float(s["sentinel"][1, 3, 5, 2]) == pytest.approx(float(expected), rel=1e-4)
    # S1 VH month 2: -10 - 1 - 1.0 = -12 dB, stats mean -11, std 2 -> -0.5
    assert float(s["sentinel"][2, 13, 0, 0]) == pytest.approx(-0.5)


def test_nodata_becomes_zero_and_invalid(root: Path) -> None:
    ds = FusuDataset(root, split=None, normalize=False)
    s = ds[ds.patch_ids.index("alpha_r000_c000")]  # footprint at grid (0, 0): NaN in month 0
    assert torch.isfinite(s["sentinel"]).all()
    assert float(s["sentinel"][0, 0, 0, 0]) == 0.0
    assert not bool(s["sentinel_valid"][0, 0, 0])
    assert bool(s["sentinel_valid"][1, 0, 0]) and bool(s["sentinel_valid"][0, 0, 1])
    assert int(s["counts"][0, 0, 0, 0]) == 0 and int(s["counts"][0, 1, 0, 0]) == 0
    # not normalised: reflectance and dB as stored
    assert float(s["sentinel"][1, 0, 0, 0]) == pytest.approx(s2_dn(1, 0, np.array(0)) / 1e4)
    assert float(s["sentinel"][1, 12, 0, 0]) == pytest.approx(-10.5)
    raw = _tif(root / "aois/alpha/hr/t2/alpha_r000_c000.tif").astype(np.float32) / 255.0
    np.testing.assert_allclose(s["t2"].numpy(), raw, atol=1e-6)


def test_months_selection(root: Path) -> None:
    last2 = FusuDataset(root, split=None, months=2)[0]
    assert last2["meta"]["months"] == ["2019-02", "2019-03"]
    full = FusuDataset(root, split=None)[0]
    torch.testing.assert_close(last2["sentinel"], full["sentinel"][1:])
    named = FusuDataset(root, split=None, months=["2019-01"])[0]
    assert named["sentinel"].shape[0] == 1
    assert FusuDataset(root, split=None, months=0)[0]["sentinel"].shape[0] == 0
    assert select_months(3, 5, ["a", "b", "c"]).tolist() == [0, 1, 2]
    with pytest.raises(DatasetError, match="2020-01"):
        FusuDataset(root, split=None, months=["2020-01"])[0]


def test_split_filter(root: Path) -> None:
    assert len(FusuDataset(root, split="train")) == 3
    assert len(FusuDataset(root, split="test")) == 2
    assert {s for s in (FusuDataset(root, split="val")[0]["meta"]["split"],)} == {"val"}
    with pytest.raises(DatasetError, match="empty"):
        FusuDataset(root, split="holdout")


def test_collate_pads_variable_t(root: Path) -> None:
    ds = FusuDataset(root, split=None)
    a = ds[ds.patch_ids.index("alpha_r001_c001")]
    b = ds[ds.patch_ids.index("beta_r000_c000")]
    assert b["sentinel"].shape[0] == 2
    batch = fusu_collate([b, a])
    assert batch["sentinel"].shape == (2, 3, 14, 40, 40)
    assert batch["month_mask"].tolist() == [[True, True, False], [True, True, True]]
    assert float(batch["sentinel"][0, 2].abs().sum()) == 0.0
    assert not bool(batch["sentinel_valid"][0, 2].any())
    assert int(batch["counts"][0, 2].sum()) == 0
    torch.testing.assert_close(batch["sentinel"][0, :2], b["sentinel"])
    assert batch["t1"].shape == (2, 3, 32, 32)
    assert [m["aoi"] for m in batch["meta"]] == ["beta", "alpha"]


def test_collate_rejects_mixed_footprint_sizes(root: Path) -> None:
    ds = FusuDataset(root, split=None, months=1)
    a, b = ds[0], ds[1]
    b["sentinel"] = b["sentinel"][:, :, :20, :20]
    with pytest.raises(DatasetError, match="footprint"):
        fusu_collate([a, b])


def test_dataloader_workers_and_pickling(root: Path) -> None:
    ds = FusuDataset(root, split=None, months=2)
    _ = ds[0]  # opens the mosaic in this process
    clone = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(clone[1]["sentinel"], ds[1]["sentinel"])
    dl = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, collate_fn=fusu_collate)
    ids = []
    for batch in dl:
        assert batch["sentinel"].shape[1:] == (2, 14, 40, 40)
        ids += [m["patch_id"] for m in batch["meta"]]
    assert ids == ds.patch_ids


def test_hr_size_and_hr_only(root: Path) -> None:
    ds = FusuDataset(root, split=None, hr_size=16, with_sentinel=False)
    s = ds[0]
    assert s["t1"].shape == (3, 16, 16) and s["label1"].shape == (16, 16)
    full = FusuDataset(root, split=None, with_sentinel=False)[0]
    assert set(np.unique(s["label1"].numpy())) <= set(np.unique(full["label1"].numpy()))
    assert "sentinel" not in s and "month_mask" not in s
    assert s["patch_box"].tolist() == [16.0, 16.0, 8.0, 8.0]
    batch = fusu_collate([s, ds[1]])
    assert batch["t1"].shape == (2, 3, 16, 16)


def test_errors_name_file_and_fix(root: Path, tmp_path: Path) -> None:
    # a missing file is one error everywhere: MissingInputError, also a FileNotFoundError
    with pytest.raises(FileNotFoundError, match=r"patches\.parquet"):
        FusuDataset(tmp_path / "nowhere")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "stats.json").unlink()
    with pytest.raises(DatasetError, match="normalize=False"):
        FusuDataset(copy, split=None)
    ds = FusuDataset(copy, split=None, normalize=False)
    shutil.rmtree(copy / "sentinel" / "beta.zarr")
    with pytest.raises(MissingInputError, match=r"beta\.zarr"):
        ds[ds.patch_ids.index("beta_r000_c000")]
    (copy / "aois/alpha/labels/t1/alpha_r000_c000.tif").unlink()
    with pytest.raises(MissingInputError, match="alpha_r000_c000"):
        ds[ds.patch_ids.index("alpha_r000_c000")]


def test_parse_stats_formats() -> None:
    from pipeline.bands import ALL_BANDS

    per_band = {b: {"mean": float(i), "std": 2.0} for i, b in enumerate(ALL_BANDS)}
    st = parse_stats(
        {"sentinel": per_band, "hr": {"mean": [0.4, 0.5, 0.6], "std": [0.1, 0.2, 0.0]}}
    )
    assert st["s_mean"][13] == 13.0 and st["s_std"][0] == 2.0
    assert st["hr_std"].tolist() == pytest.approx([0.1, 0.2, 1.0])  # zero std -> 1
    st = parse_stats(
        {
            "sentinel": {"mean": list(range(14)), "std": [1] * 14},
            "hr": {"mean": [102.0, 127.5, 153.0], "std": [25.5] * 3},
        }
    )
    assert st["hr_mean"].tolist() == pytest.approx([0.4, 0.5, 0.6])
    nulls = {"bands": list(ALL_BANDS), "mean": [None] * 14, "std": [None] * 14}
    st = parse_stats(
        {"sentinel": nulls, "hr": {"mean": [0.5] * 3, "std": [0.1] * 3, "units": "DN 0..255"}}
    )
    assert st["s_mean"].tolist() == [0.0] * 14 and st["s_std"].tolist() == [1.0] * 14
    assert st["hr_mean"][0] == pytest.approx(0.5 / 255)
    with pytest.raises(DatasetError, match=r"stats\.json"):
        parse_stats({"hr": {}})


def test_a_band_with_zero_spread_is_reported_and_stays_finite(
        caplog: pytest.LogCaptureFixture) -> None:
    """A band constant over the training split (std 0) is centred, not divided by zero; the
    statistics parser names it."""
    import logging

    from pipeline.bands import ALL_BANDS
    from pipeline.dataset.normalize import band_stats, sentinel_arrays

    std = [0.1] * len(ALL_BANDS)
    std[3] = 0.0
    with caplog.at_level(logging.WARNING):
        mean, sd = band_stats({"mean": [0.2] * len(ALL_BANDS), "std": std}, ALL_BANDS, "s.json")
    assert f"['{ALL_BANDS[3]}']" in caplog.text and "zero spread" in caplog.text
    assert sd[3] == 1.0 and sd[0] == np.float32(0.1)
    x = np.full((2, len(ALL_BANDS), 4, 4), 0.5, np.float32)
    raw_std = np.asarray(std, np.float32)  # unsanitised constants (an older stats.json)
    with np.errstate(all="raise"):
        out, valid = sentinel_arrays(x, None, mean, raw_std)
    assert np.isfinite(out).all() and valid.all()
    np.testing.assert_allclose(out[:, 3], 0.3, atol=1e-6)  # centred only
    np.testing.assert_allclose(out[:, 0], 3.0, atol=1e-5)  # (0.5 - 0.2) / 0.1
