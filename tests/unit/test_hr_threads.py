"""The HR jobs' threads (rules tile, labels and change run patches concurrently): the files and
indexes do not depend on the number of threads, and an error in a worker thread stops the job
with its own message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from pipeline.aoi import AoiSpec
from pipeline.config import ChangeConfig, DemoConfig, LabelsConfig, TileConfig
from pipeline.demo.drivers import demo_inputs
from pipeline.errors import InputError
from pipeline.hr.drivers import change_aoi, label_aoi, tile_aoi
from pipeline.io.parquet import read_geoparquet
from pipeline.layout import Layout


def _aoi(folder: Path) -> AoiSpec:
    return AoiSpec.model_validate({
        "name": "thr", "city": "bench", "t1": "2019-08-14", "t2": "2020-08-18",
        "images": {"t1": str(folder / "hr_t1.tif"), "t2": str(folder / "hr_t2.tif")},
        "annotations": {"t1": str(folder / "labels_t1.gpkg"),
                        "t2": str(folder / "labels_t2.gpkg")},
        "generated": True,
    })


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> AoiSpec:
    """The smallest demo city: 1200 x 1200 HR px, T2 on a shifted grid (warped), ~100 polygons."""
    folder = tmp_path_factory.mktemp("city")
    aoi = _aoi(folder)
    demo_inputs(aoi, DemoConfig(size_m=600.0))
    return aoi


def _build(aoi: AoiSpec, root: Path, threads: int) -> Layout:
    lay = Layout(root)
    tile_aoi(aoi, TileConfig(patch_size_px=128), lay, progress=False, threads=threads)
    label_aoi(aoi, LabelsConfig(), lay, progress=False, threads=threads)
    change_aoi(aoi, ChangeConfig(), lay, progress=False, threads=threads)
    return lay


def _pixels(root: Path) -> dict[str, tuple[np.ndarray, str, tuple[float, ...]]]:
    out = {}
    for p in sorted(root.rglob("*.tif")):
        with rasterio.open(p) as ds:
            out[p.relative_to(root).as_posix()] = (ds.read(), str(ds.crs), tuple(ds.transform))
    return out


def test_outputs_do_not_depend_on_threads(city: AoiSpec, tmp_path: Path) -> None:
    one = _build(city, tmp_path / "one", threads=1)
    three = _build(city, tmp_path / "three", threads=3)
    for index in ("patches", "labels_index", "change_index"):
        a = read_geoparquet(getattr(one, index)("thr"), what=index)
        b = read_geoparquet(getattr(three, index)("thr"), what=index)
        assert len(a) > 50  # several lattice rows: the next strip is read while one is written
        pd.testing.assert_frame_equal(pd.DataFrame(a).drop(columns="geometry", errors="ignore"),
                                      pd.DataFrame(b).drop(columns="geometry", errors="ignore"))
    pa, pb = _pixels(one.root), _pixels(three.root)
    assert pa.keys() == pb.keys() and len(pa) == 6 * len(a)  # hr x2, labels x2, change x2
    for name, (arr, crs, tr) in pa.items():
        arr_b, crs_b, tr_b = pb[name]
        assert crs == crs_b and tr == tr_b, name
        np.testing.assert_array_equal(arr, arr_b, err_msg=name)
    # the labels are not trivially equal (both empty, say): classes and change are present
    lab = read_geoparquet(one.labels_index("thr"), what="labels")
    assert (lab[[c for c in lab.columns if c.startswith("t1_px_")]].sum() > 0).sum() >= 5
    assert read_geoparquet(one.change_index("thr"), what="change")["changed_px"].sum() > 0


def test_an_error_in_a_worker_thread_stops_the_job_with_its_message(
    city: AoiSpec, tmp_path: Path
) -> None:
    lay = Layout(tmp_path / "o")
    tile_aoi(city, TileConfig(patch_size_px=128), lay, progress=False, threads=3)
    index = read_geoparquet(lay.patches("thr"), what="tile index")
    bad = lay.root / index["hr_t2"].iloc[len(index) // 2]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated in place
    with pytest.raises(InputError, match=bad.name):
        label_aoi(city, LabelsConfig(), lay, progress=False, threads=3)
    assert not lay.labels_index("thr").exists()


def test_the_geotransform_warning_filter_is_installed_once_for_every_thread() -> None:
    """rasterio's in-memory rasters (rasterize) warn "Dataset has no geotransform" before their
    transform is set; its own thread-unsafe catch_warnings let that through once in a demo build
    on 4 threads. pipeline.io.geotiff installs one process-wide filter at import instead: only
    rasterio's own NotGeoreferencedWarning is ignored, a warning of ours still shows."""
    import subprocess
    import sys

    code = (
        "import warnings\n"
        "import pipeline.io.geotiff\n"
        "from rasterio.errors import NotGeoreferencedWarning as W\n"
        "with warnings.catch_warnings(record=True) as rec:\n"
        "    warnings.warn_explicit(W('Dataset has no geotransform'), W, 'features.py', 382,\n"
        "                           module='rasterio.features')\n"
        "    warnings.warn_explicit(W('writer'), W, '__init__.py', 366, module='rasterio')\n"
        "    warnings.warn_explicit(W('ours'), W, 'x.py', 1, module='pipeline.expand.x')\n"
        "print([str(w.message) for w in rec])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "['ours']"
