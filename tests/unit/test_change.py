"""Change: binary / from-to known answers, ignore rules, stage run and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from pipeline.config import ChangeConfig, LabelsConfig
from pipeline.errors import InputError, PipelineError
from pipeline.hr.change import (
    BIN_NODATA,
    FROMTO_NODATA,
    binary_change,
    change_stats,
    decode_fromto,
    fromto_change,
    valid_mask,
)
from pipeline.hr.drivers import change_aoi, label_aoi
from tests.hr_helpers import named_aoi
from tests.labels_helpers import make_tiny_aoi, patch_transform, px_box

# columns: same class, changed, background in T1, nodata in T2, background both, changed
Y1 = np.array([[3, 4, 0, 5, 0, 17]], np.uint8)
Y2 = np.array([[3, 11, 6, 255, 0, 1]], np.uint8)


def test_binary_change_ignore_background() -> None:
    out = binary_change(Y1, Y2, ignore_background=True)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 1, 255, 255, 255, 1]]


def test_binary_change_keep_background() -> None:
    out = binary_change(Y1, Y2, ignore_background=False)
    assert out.tolist() == [[0, 1, 1, 255, 0, 1]]


def test_fromto_values() -> None:
    out = fromto_change(Y1, Y2, n_classes=18, ignore_background=True)
    assert out.dtype == np.uint16
    assert out.tolist() == [[3 * 18 + 3, 4 * 18 + 11, 65535, 65535, 65535, 17 * 18 + 1]]
    out = fromto_change(Y1, Y2, ignore_background=False)
    assert out.tolist() == [[57, 83, 6, 65535, 0, 307]]
    y1, y2 = decode_fromto(out[out != FROMTO_NODATA])
    valid = valid_mask(Y1, Y2, ignore_background=False)
    np.testing.assert_array_equal(y1, Y1[valid])
    np.testing.assert_array_equal(y2, Y2[valid])


def test_fromto_nodata_in_t1() -> None:
    y1 = np.array([[255, 2]], np.uint8)
    y2 = np.array([[2, 255]], np.uint8)
    assert fromto_change(y1, y2, ignore_background=False).tolist() == [[65535, 65535]]
    assert binary_change(y1, y2, ignore_background=False).tolist() == [[255, 255]]


def test_change_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        binary_change(Y1, Y2[:, :3])
    with pytest.raises(ValueError, match="n_classes"):
        fromto_change(np.array([[20]], np.uint8), np.array([[1]], np.uint8))
    with pytest.raises(ValueError, match="too large"):
        fromto_change(Y1, Y2, n_classes=300)
    # only labelled pixels must fit: a large value where the other date is no data is ignored
    assert fromto_change(np.array([[20, 3]], np.uint8),
                         np.array([[255, 4]], np.uint8)).tolist() == [[65535, 3 * 18 + 4]]


def test_change_stats() -> None:
    s = change_stats(binary_change(Y1, Y2))
    assert s == {"changed_px": 2, "valid_px": 3, "change_fraction": pytest.approx(2 / 3)}
    s = change_stats(np.full((2, 2), BIN_NODATA, np.uint8))
    assert s["valid_px"] == 0 and np.isnan(s["change_fraction"])


# --------------------------------------------------------------------------- stage


def _build(tmp_path: Path):
    t1 = [
        (px_box(0, 0, 0, 0, 16, 16), 4),  # patch 0: cropland
        (px_box(0, 1, 0, 0, 16, 8), 3),  # patch 1: top half residential, bottom background
    ]
    t2 = [
        (px_box(0, 0, 0, 0, 8, 16), 3),  # patch 0: left half -> residential (change)
        (px_box(0, 0, 8, 0, 16, 16), 4),  # right half stays cropland
        (px_box(0, 1, 0, 0, 16, 16), 3),  # patch 1: residential everywhere
    ]
    aoi, layout = make_tiny_aoi(tmp_path, t1, t2, t2_nodata_cols=2)
    label_aoi(aoi, LabelsConfig(), layout, progress=False)
    return aoi, layout


def test_stage_change_tiny_aoi(tmp_path: Path) -> None:
    aoi, layout = _build(tmp_path)
    index = change_aoi(aoi, ChangeConfig(), layout, progress=False)
    assert index == layout.change_index("tiny")
    df = pd.read_parquet(index)
    assert df["patch_id"].tolist() == ["tiny_r000_c000", "tiny_r000_c001"]
    assert list(df.columns) == ["patch_id", "aoi", "change_bin", "change_fromto", "changed_px",
                                "valid_px", "change_fraction"]
    assert [str(df[c].dtype) for c in ("changed_px", "valid_px", "change_fraction")] == [
        "int64", "int64", "float64"]
    # patch 0: columns 0-1 no data in T2; columns 2-7 changed 4->3; 8-15 unchanged
    assert df.loc[0, "valid_px"] == 14 * 16 and df.loc[0, "changed_px"] == 6 * 16
    assert df.loc[0, "change_fraction"] == pytest.approx(6 / 14)
    # patch 1: bottom half background in T1 -> ignored; top half residential both dates
    assert df.loc[1, "valid_px"] == 14 * 8 and df.loc[1, "changed_px"] == 0
    with rasterio.open(layout.root / df.loc[0, "change_bin"]) as ds:
        b = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255
        assert ds.transform.almost_equals(patch_transform(0, 0))
        assert ds.colormap(1)[1][:3] == (255, 255, 255)
    assert (b[:, :2] == 255).all() and (b[:, 2:8] == 1).all() and (b[:, 8:] == 0).all()
    with rasterio.open(layout.root / df.loc[0, "change_fromto"]) as ds:
        f = ds.read(1)
        assert ds.dtypes[0] == "uint16" and ds.nodata == 65535
    assert (f[:, :2] == 65535).all()
    assert (f[:, 2:8] == 4 * 18 + 3).all() and (f[:, 8:] == 4 * 18 + 4).all()

    # keep background: patch 1 bottom half 0 -> 3 counts as change
    change_aoi(named_aoi("tiny"), ChangeConfig(ignore_background=False), layout, progress=False)
    df2 = pd.read_parquet(index)
    assert df2.loc[1, "valid_px"] == 14 * 16 and df2.loc[1, "changed_px"] == 14 * 8

    # unchanged inputs + settings: nothing rewritten
    p = layout.root / df2.loc[0, "change_bin"]
    mtime = p.stat().st_mtime_ns
    change_aoi(named_aoi("tiny"), ChangeConfig(ignore_background=False), layout, progress=False)
    assert p.stat().st_mtime_ns == mtime


def test_stage_change_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"labels\.parquet does not exist"):
        change_aoi(named_aoi("tiny"), ChangeConfig(), _layout_only(tmp_path), progress=False)
    aoi, layout = _build(tmp_path)
    lab = layout.labels_dir("tiny", "t2") / "tiny_r000_c001.tif"
    lab.unlink()
    with pytest.raises(InputError, match=r"T2 label .*tiny_r000_c001\.tif does not exist"):
        change_aoi(aoi, ChangeConfig(), layout, progress=False)
    assert not layout.change_index("tiny").exists()
    idx = pd.read_parquet(layout.labels_index("tiny")).drop(columns=["label_t1"])
    idx.to_parquet(layout.labels_index("tiny"))
    with pytest.raises(InputError, match=r"lacks columns \['label_t1'\]"):
        change_aoi(aoi, ChangeConfig(), layout, progress=False)


def _layout_only(tmp_path: Path):
    from pipeline.layout import Layout

    return Layout(tmp_path / "empty")
