"""Writes are verified before they become visible; a full disk, a read-only folder or a GDAL
write error is one clear WriteError naming the file and the fix, with nothing left under the
final name; a rerun never reuses a broken file (issue: outputs you can trust)."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from pipeline.config import LabelsConfig
from pipeline.errors import PipelineError, WriteError
from pipeline.hr.drivers import label_aoi
from pipeline.io import atomic, geotiff
from pipeline.io.geotiff import write_patch_tif
from pipeline.io.jsonfile import write_json
from tests.labels_helpers import make_tiny_aoi, px_box

TR = Affine(1, 0, 650000, 0, -1, 3795000)
ARR = np.arange(32 * 32, dtype=np.uint16).reshape(1, 32, 32) % 250


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_disk_full_is_a_write_error_and_leaves_nothing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*a, **k):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    out = tmp_path / "p.tif"
    with pytest.raises(WriteError, match=r"no space left on the device writing .*p\.tif") as info:
        write_patch_tif(out, ARR, TR, "EPSG:32649", 255)
    assert isinstance(info.value, OSError) and "free space" in str(info.value)
    assert not out.exists() and _leftovers(tmp_path) == []
    with pytest.raises(WriteError, match=r"a\.json"):
        write_json(tmp_path / "a.json", {"x": 1})
    assert _leftovers(tmp_path) == []


def test_read_only_file_system_is_a_write_error(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(*a, **k):  # type: ignore[no-untyped-def]
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(WriteError, match="make its folder writable"):
        write_json(tmp_path / "x" / "a.json", {"x": 1})
    monkeypatch.undo()
    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(WriteError, match="Read-only file system"):
        write_patch_tif(tmp_path / "y" / "p.tif", ARR, TR, "EPSG:32649", 255)


def test_silently_corrupted_write_is_caught_by_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = rasterio.io.DatasetWriter.write

    def lossy(self, arr, *a, **k):  # type: ignore[no-untyped-def]
        return real(self, np.zeros_like(arr), *a, **k)  # what a failing disk may do

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", lossy)
    out = tmp_path / "p.tif"
    with pytest.raises(WriteError, match="reads back different pixels"):
        write_patch_tif(out, ARR, TR, "EPSG:32649", 255)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_gdal_errors_during_a_write_are_raised(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = rasterio.io.DatasetWriter.write

    def noisy(self, arr, *a, **k):  # type: ignore[no-untyped-def]
        logging.getLogger("rasterio._env").info(
            "GDAL signalled an error: err_no=1, msg='TIFFAppendToStrip: Write error at scanline 3'")
        return real(self, arr, *a, **k)

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", noisy)
    with pytest.raises(WriteError, match="TIFFAppendToStrip"):
        write_patch_tif(tmp_path / "p.tif", ARR, TR, "EPSG:32649", 255)


def test_colour_tables_are_written_without_gdal_errors(tmp_path: Path) -> None:
    with geotiff.gdal_errors() as errors:
        write_patch_tif(tmp_path / "l.tif", ARR.astype(np.uint8), TR, "EPSG:32649", 255,
                        colormap={0: (0, 0, 0), 1: (255, 0, 0)})
    assert errors == []
    with rasterio.open(tmp_path / "l.tif") as ds:
        assert ds.colormap(1)[1] == (255, 0, 0, 255)


def test_labels_rerun_recomputes_a_broken_tif_instead_of_reusing_it(tmp_path: Path) -> None:
    t1 = [(px_box(0, 0, 0, 0, 16, 16), 4), (px_box(0, 1, 0, 0, 16, 16), 3)]
    aoi, layout = make_tiny_aoi(tmp_path, t1, t1)
    label_aoi(aoi, LabelsConfig(), layout, progress=False)
    tif = layout.labels_dir("tiny", "t1") / "tiny_r000_c001.tif"
    good = tif.read_bytes()
    # an interrupted earlier run on a full disk left a 0-byte file; the index was never written
    layout.labels_index("tiny").unlink()
    tif.write_bytes(b"")
    label_aoi(aoi, LabelsConfig(), layout, progress=False)
    with rasterio.open(tif) as ds:
        assert (ds.read(1) == 3).all()
    assert tif.read_bytes() == good


def test_write_error_is_a_pipeline_error() -> None:
    assert issubclass(WriteError, PipelineError) and issubclass(WriteError, OSError)
