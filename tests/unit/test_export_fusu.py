"""FUSU release-layout export (pipeline.dataset.export_fusu + stages.export_fusu)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image

from pipeline.aoi import AoiSpec
from pipeline.config import ExportConfig, SplitsConfig
from pipeline.dataset.drivers import assemble_dataset, export_fusu
from pipeline.dataset.export_fusu import label_bin_values, sample_paths
from pipeline.errors import DatasetError
from pipeline.grid import AoiGrid
from pipeline.io.jsonfile import read_json
from pipeline.io.mosaic_read import read_footprint_cube
from pipeline.layout import Layout
from tests.splits_helpers import FP_PX, HR_PX, make_native_aoi

warnings.filterwarnings("ignore", message=".*Zarr V3 specification.*")

MONTHS = ("2019-08", "2019-09", "2019-10")


def _spec() -> AoiSpec:
    return AoiSpec(name="xa", city="xian", t1="2019-08-14", t2="2019-10-18", template=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    lay = Layout(tmp_path_factory.mktemp("export"))
    make_native_aoi(lay, "xa", "xian", nrow=6, ncol=6, months=MONTHS)
    assemble_dataset([_spec()], SplitsConfig(block_size_patches=2), lay)
    export_fusu([_spec()], ExportConfig(fusu_layout=True), lay, progress=False)
    return lay


def _read_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_label_bin_values() -> None:
    a = np.array([[0, 1, 255]], np.uint8)
    assert label_bin_values(a).tolist() == [[0, 1, 0]]
    assert label_bin_values(a, ignore_value=255).tolist() == [[0, 1, 255]]


def test_sample_paths_follow_fusu_naming() -> None:
    p = sample_paths("val", "xa_r001_c002", 2)
    assert p["im1"] == "val/im1/xa_r001_c002.png"
    assert p["label_bin"] == "val/label_bin/xa_r001_c002.png"
    assert p["times_1"] == "val/Times/xa_r001_c002_1.tif"
    assert p["times_2"] == "val/Times/xa_r001_c002_2.tif"


def test_file_tree_is_the_fusu_layout_without_guard_patches(built: Layout) -> None:
    lay = built
    root = lay.export_dir()
    idx = pd.read_parquet(lay.index(), columns=["patch_id", "split"])
    for s in ("train", "val", "test"):
        ids = sorted(idx.loc[idx["split"] == s, "patch_id"])
        assert ids, s
        assert (root / f"{s}.txt").read_text().split() == ids
        for d in ("im1", "im2", "label1", "label2", "label_bin"):
            assert sorted(p.stem for p in (root / s / d).glob("*.png")) == ids
        times = sorted(p.name for p in (root / s / "Times").glob("*.tif"))
        assert times == sorted(f"{i}_{k}.tif" for i in ids for k in (1, 2, 3))
        # the FUSU loader finds a sample's months with re.match(r"^<id>_.*\.tif$")
        pid = ids[0]
        found = [f for f in times if re.match(rf"^{pid}_.*\.tif$", f)]
        assert len(found) == len(MONTHS)
    guard = idx.loc[idx["split"] == "guard", "patch_id"]
    assert len(guard) > 0
    assert not any((root / s / "im1" / f"{g}.png").exists()
                   for g in guard for s in ("train", "val", "test"))
    assert json.loads(lay.export_manifest().read_text())["patches"] == int(
        (idx["split"] != "guard").sum())


def test_png_contents_equal_the_native_rasters(built: Layout) -> None:
    lay = built
    idx = pd.read_parquet(lay.index()).set_index("patch_id")
    pid = idx.index[idx["split"] == "train"][0]
    s = "train"
    root = lay.export_dir() / s
    im1 = np.array(Image.open(root / "im1" / f"{pid}.png"))
    with rasterio.open(lay.root / idx.loc[pid, "hr_t1"]) as ds:
        assert (im1 == np.moveaxis(ds.read(), 0, -1)).all()
    assert im1.shape == (HR_PX, HR_PX, 3)
    lab_img = Image.open(root / "label1" / f"{pid}.png")
    assert lab_img.mode == "P"  # palette PNG, raw values = class ids
    lab = np.array(lab_img)
    assert (lab == _read_band(lay.root / idx.loc[pid, "label_t1"])).all()
    assert set(np.unique(lab)) <= {*range(18), 255}
    assert lab_img.getpalette()[3 * 4: 3 * 4 + 3] == [126, 211, 33]  # class 4 cropland colour
    lab2 = np.array(Image.open(root / "label2" / f"{pid}.png"))
    assert (lab2 == _read_band(lay.root / idx.loc[pid, "label_t2"])).all()
    binp = np.array(Image.open(root / "label_bin" / f"{pid}.png"))
    native = _read_band(lay.root / idx.loc[pid, "change_bin"])
    assert (binp == np.where(native == 255, 0, native)).all()
    assert set(np.unique(binp)) <= {0, 1}


def test_times_tifs_are_the_footprint_windows(built: Layout) -> None:
    lay = built
    idx = pd.read_parquet(lay.index()).set_index("patch_id")
    grid = AoiGrid.from_dict(read_json(lay.grid("xa")))
    pid = idx.index[idx["split"] == "test"][0]
    r = idx.loc[pid]
    cube = read_footprint_cube(lay.mosaic("xa"), int(r.fp_col0), int(r.fp_row0),
                               int(r.fp_size_px))
    for k, month in enumerate(MONTHS, start=1):
        with rasterio.open(lay.export_dir() / "test" / "Times" / f"{pid}_{k}.tif") as ds:
            arr = ds.read()
            assert arr.shape == (14, FP_PX, FP_PX) and arr.dtype == np.float32
            assert ds.crs.to_epsg() == grid.epsg
            assert ds.transform == grid.window_transform(int(r.fp_col0), int(r.fp_row0))
            assert ds.descriptions[0] == "B1" and ds.descriptions[-1] == "VH"
            assert ds.tags()["month"] == month
            np.testing.assert_array_equal(arr, cube["x"][k - 1])
    meta = json.loads((lay.export_dir() / "meta.json").read_text())
    assert meta["months_by_aoi"]["xa"] == list(MONTHS)
    assert meta["labels"]["values"]["4"] == "Cropland"
    samples = pd.read_csv(lay.export_dir() / "samples.csv")
    assert set(samples["split"]) == {"train", "val", "test"}
    assert samples["gsd_m"].iloc[0] == 2.5


def test_refuses_non_empty_folder_unless_overwrite(tmp_path: Path, caplog) -> None:
    lay = Layout(tmp_path)
    make_native_aoi(lay, "xa", "xian", nrow=3, ncol=3, months=MONTHS)
    assemble_dataset([_spec()], SplitsConfig(mode="random"), lay)
    lay.export_dir().mkdir(parents=True)
    (lay.export_dir() / "old.txt").write_text("keep me")
    with pytest.raises(DatasetError, match=r"not empty.*export\.overwrite"):
        export_fusu([_spec()], ExportConfig(), lay, progress=False)
    assert (lay.export_dir() / "old.txt").read_text() == "keep me"
    import logging

    with caplog.at_level(logging.WARNING):
        export_fusu([_spec()], ExportConfig(overwrite=True, bin_ignore_value=255), lay,
                    progress=False)
    assert not (lay.export_dir() / "old.txt").exists()
    # the release layout says where the variant the official train.py trains on is
    assert "its train.py cannot train on it" in caplog.text
    assert "export={official_training: true}" in caplog.text
    ids = (lay.export_dir() / "train.txt").read_text().split()
    binp = np.array(Image.open(lay.export_dir() / "train" / "label_bin" / f"{ids[0]}.png"))
    assert 255 in binp  # ignored pixels kept (fixture's first row is no data)


def test_missing_months_fail_before_writing(tmp_path: Path) -> None:
    lay = Layout(tmp_path)
    make_native_aoi(lay, "xa", "xian", nrow=3, ncol=3, months=MONTHS)
    assemble_dataset([_spec()], SplitsConfig(mode="random"), lay)
    longer = AoiSpec(name="xa", city="xian", t1="2019-08-14", t2="2019-12-01", template=True)
    with pytest.raises(DatasetError, match=r"'xa'.*lacks months \['2019-11', '2019-12'\]"):
        export_fusu([longer], ExportConfig(), lay, progress=False)
    assert not lay.export_dir().exists()


def test_official_training_export_fits_the_official_train_py(tmp_path: Path, caplog) -> None:
    """export.official_training: what the official FUSU train.py needs to run. Its dataset reads
    label1/<id>.png with PIL and ``torch.from_numpy(np.array(img)).long()``, trains
    ``CrossEntropyLoss(ignore_index=-1)`` over 17 outputs, feeds the Times through
    ``UTAE(input_dim=15)`` with no NaN handling, and flips/rotates the PIL label images."""
    import torch

    lay = Layout(tmp_path / "ds")
    make_native_aoi(lay, "xa", "xian", nrow=6, ncol=6, months=MONTHS)
    assemble_dataset([_spec()], SplitsConfig(block_size_patches=2), lay)
    import logging

    with caplog.at_level(logging.WARNING):
        export_fusu([_spec()], ExportConfig(fusu_layout=True, official_training=True), lay,
                    progress=False)
    assert "cannot train on it" not in caplog.text
    idx = pd.read_parquet(lay.index()).set_index("patch_id")
    pid = idx.index[idx["split"] == "train"][0]
    img = Image.open(lay.export_dir() / "train" / "label1" / f"{pid}.png")
    img = img.transpose(Image.ROTATE_90).transpose(Image.ROTATE_270)  # its augmentation
    target = torch.from_numpy(np.array(img)).long()
    native = _read_band(lay.root / str(idx.loc[pid, "label_t1"]))
    want = np.where((native >= 1) & (native <= 17), native.astype(np.int64) - 1, -1)
    np.testing.assert_array_equal(target.numpy(), want)
    assert int(target.max()) <= 16 and int(target.min()) >= -1 and (target == -1).any()
    logits = torch.zeros(1, 17, *target.shape)  # its loss runs: no out-of-range target
    assert torch.isfinite(torch.nn.CrossEntropyLoss(ignore_index=-1)(logits, target[None]))
    with rasterio.open(lay.export_dir() / "train" / "Times" / f"{pid}_1.tif") as ds:
        arr = ds.read()
        assert arr.shape[0] == 15 and np.isfinite(arr).all()
        assert set(np.unique(arr[14])) <= {0.0, 1.0} and ds.descriptions[-1] == "clear_flag"
    meta = json.loads((lay.export_dir() / "meta.json").read_text())
    assert meta["labels"]["nodata"] == -1 and meta["labels"]["values"]["3"] == "Cropland"
    assert len(meta["times"]["bands"]) == 15
