"""The tile index's ``nodata_frac_<date>`` is the no-data fraction of the mask a reader of the
written patch sees (:func:`pipeline.io.geotiff.read_patch`, any-band rule), for every kind of
source the tile stage takes. The labels stage relies on it: a patch recorded without no data is
labelled without decoding its pixels for the mask, with the same label bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from pipeline.config import LabelsConfig, TileConfig
from pipeline.hr.drivers import label_aoi, tile_aoi
from pipeline.io.geotiff import read_patch
from pipeline.io.parquet import read_geoparquet, write_geoparquet
from pipeline.layout import Layout
from tests.hr_helpers import EPSG, X0, Y0, aoi_spec, render, write_rgb
from tests.labels_helpers import make_tiny_aoi, px_box

TR = Affine(1, 0, X0, 0, -1, Y0)


def _holes(tmp: Path) -> tuple[Path, Path]:
    img = render(TR, 64, 64)
    img[:, 0, 0:4] = 0  # a few no-data pixels
    img[0, 40, 40] = 0  # one channel 0 is data
    return write_rgb(tmp / "t1.tif", data=img), write_rgb(tmp / "t2.tif")


def _black_without_nodata(tmp: Path) -> tuple[Path, Path]:
    img = render(TR, 64, 64)
    img[:, 20:24, 20:24] = 0  # black pixels of a source that declares no nodata: data
    return (write_rgb(tmp / "t1.tif", data=img, nodata=None),
            write_rgb(tmp / "t2.tif", data=img, nodata=None))


def _alpha(tmp: Path) -> tuple[Path, Path]:
    rgba = np.concatenate([render(TR, 32, 32), np.full((1, 32, 32), 255, np.uint8)])
    rgba[3, :4, :4] = 0
    p = tmp / "rgba.tif"
    with rasterio.open(p, "w", driver="GTiff", width=32, height=32, count=4, dtype="uint8",
                       crs=f"EPSG:{EPSG}", transform=TR, photometric="RGB",
                       alpha="YES") as dst:
        dst.write(rgba)
    return p, write_rgb(tmp / "t2.tif", width=32, height=32, nodata=None)


def _scaled_16_bit(tmp: Path) -> tuple[Path, Path]:
    img = np.random.default_rng(3).integers(100, 4000, (3, 64, 64)).astype(np.uint16)
    img[:, :4, :4] = 0
    return (write_rgb(tmp / "t1.tif", data=img, dtype="uint16"),
            write_rgb(tmp / "t2.tif", data=img, dtype="uint16"))


def _shifted_t2(tmp: Path) -> tuple[Path, Path]:
    return (write_rgb(tmp / "t1.tif", nodata=None),
            write_rgb(tmp / "t2.tif", nodata=None, transform=Affine(1, 0, X0 + 2, 0, -1, Y0)))


def _shifted_t2_with_nodata(tmp: Path) -> tuple[Path, Path]:
    return (write_rgb(tmp / "t1.tif"),
            write_rgb(tmp / "t2.tif", transform=Affine(1, 0, X0 + 2.5, 0, -1, Y0 - 1.5)))


SOURCES: dict[str, Callable[[Path], tuple[Path, Path]]] = {
    "nodata-holes": _holes, "black-without-nodata": _black_without_nodata, "alpha": _alpha,
    "16-bit-scaled": _scaled_16_bit, "shifted-t2": _shifted_t2,
    "shifted-t2-nodata": _shifted_t2_with_nodata,
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_index_nodata_fraction_is_the_written_mask(tmp_path: Path, source: str) -> None:
    t1, t2 = SOURCES[source](tmp_path)
    lay = Layout(tmp_path / "o")
    res = tile_aoi(aoi_spec(t1, t2), TileConfig.model_validate(
        {"patch_size_px": 16, "max_nodata_fraction": 0.3}), lay, progress=False)
    assert len(res.index) > 0
    whole = 0
    for row in res.index.itertuples(index=False):
        for date in ("t1", "t2"):
            got = read_patch(lay.root / getattr(row, f"hr_{date}"), valid=True)
            valid = got.valid
            assert valid is not None
            # the grid rule labels takes from the index is the file's, exactly
            assert tuple(json.loads(row.hr_transform)) == tuple(got.transform)[:6]
            assert (row.size_px, row.size_px) == got.shape and row.hr_crs == got.crs
            frac = float(getattr(row, f"nodata_frac_{date}"))
            assert frac == pytest.approx(1.0 - valid.mean(), abs=1e-9), (row.patch_id, date)
            assert (frac == 0.0) == bool(valid.all()), (row.patch_id, date)
            whole += frac == 0.0
    assert whole > 0


def _label_digests(lay: Layout, name: str) -> dict[str, str]:
    return {p.relative_to(lay.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(lay.root.rglob("labels/*/*.tif"))}


def _record_tiled(lay: Layout, name: str) -> None:
    """The tile stage's manifest of the HR patches (their SHA-256), as tile_aoi writes it."""
    from pipeline.io.manifest import tree_files, write_manifest

    files = [f for d in ("t1", "t2") for f in tree_files(lay.hr_dir(name, d))]
    write_manifest(lay.manifest(name, "tile"), lay.root, "tile", files)


def test_the_index_grid_is_used_only_for_a_patch_that_holds_what_tile_wrote(
        tmp_path: Path) -> None:
    """A whole patch that is missing, or that was rewritten on another grid, is never labelled
    from the index's grid: missing is MissingInputError, changed is the checksum's InputError
    (without a manifest the file is opened: test_labels.py::test_stage_t2_patch_off_grid)."""
    from pipeline.errors import InputError, MissingInputError
    from pipeline.io.geotiff import write_patch_tif
    from tests.labels_helpers import SIZE, patch_transform

    feats = [(px_box(0, 0, 2, 2, 30, 12), 3)]
    aoi, lay = make_tiny_aoi(tmp_path, feats, feats, patches=((0, 0),))
    _record_tiled(lay, aoi.name)
    t1 = lay.hr_dir(aoi.name, "t1") / "tiny_r000_c000.tif"
    t1.rename(t1.with_suffix(".bak"))
    with pytest.raises(MissingInputError, match=r"T1 HR patch .* does not exist"):
        label_aoi(aoi, LabelsConfig(), lay, progress=False)
    t1.with_suffix(".bak").rename(t1)
    t2 = lay.hr_dir(aoi.name, "t2") / "tiny_r000_c000.tif"
    write_patch_tif(t2, np.ones((3, SIZE, SIZE), np.uint8),
                    patch_transform(0, 0) @ Affine.translation(0.5, 0), EPSG, 0)
    with pytest.raises(InputError, match="bytes differ from what rule tile wrote"):
        label_aoi(aoi, LabelsConfig(), lay, progress=False)
    assert not lay.labels_index(aoi.name).exists()


def test_a_t2_patch_off_grid_is_caught_after_a_reused_t1_label(tmp_path: Path) -> None:
    """An interrupted run left the T1 label (reused, so T1's file is not opened); the T2 HR
    patch, rewritten on another grid since and not covered by a manifest, is still compared
    with the patch grid the index records."""
    from pipeline.errors import InputError
    from pipeline.io.geotiff import write_patch_tif
    from tests.labels_helpers import SIZE, patch_transform

    feats = [(px_box(0, 0, 2, 2, 30, 12), 3)]
    aoi, lay = make_tiny_aoi(tmp_path, feats, feats, patches=((0, 0),))
    label_aoi(aoi, LabelsConfig(), lay, progress=False)
    lay.labels_index(aoi.name).unlink()  # interrupted before the index: the T1 label is kept
    (lay.labels_dir(aoi.name, "t2") / "tiny_r000_c000.tif").unlink()
    t2 = lay.hr_dir(aoi.name, "t2") / "tiny_r000_c000.tif"
    write_patch_tif(t2, np.ones((3, SIZE, SIZE), np.uint8),
                    patch_transform(0, 0) @ Affine.translation(0.5, 0), EPSG, 0)
    with pytest.raises(InputError, match="not on the T1 patch grid"):
        label_aoi(aoi, LabelsConfig(), lay, progress=False)


def test_labels_are_the_same_with_and_without_the_index_shortcut(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Patches with and without no data, labelled once from the index's fractions and grids
    (no HR patch without no data is opened) and once from an index without them (every grid
    and mask read from the file): the same label bytes."""
    import pipeline.hr.drivers as drivers

    feats = [(px_box(0, 0, 2, 2, 30, 12), 3), (px_box(0, 0, 8, 0, 20, 30), 5)]
    runs, opened = {}, {}
    real_read_patch = drivers.read_patch
    for how in ("index", "files"):
        aoi, lay = make_tiny_aoi(tmp_path / how, feats, feats, t2_nodata_cols=3,
                                 patches=((0, 0), (0, 1), (1, 0)))
        _record_tiled(lay, aoi.name)
        if how == "files":
            idx = read_geoparquet(lay.patches(aoi.name))
            write_geoparquet(idx.drop(columns=["nodata_frac_t1", "nodata_frac_t2",
                                               "hr_transform"]), lay.patches(aoi.name))
        seen: list[str] = []

        def counting(path: object, *a: object, _seen: list[str] = seen, **kw: object) -> object:
            _seen.append(Path(str(path)).parent.name)
            return real_read_patch(path, *a, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(drivers, "read_patch", counting)
        label_aoi(aoi, LabelsConfig(), lay, progress=False)
        monkeypatch.setattr(drivers, "read_patch", real_read_patch)
        runs[how] = _label_digests(lay, aoi.name)
        opened[how] = sorted(seen)
        t2 = pd.read_parquet(lay.labels_index(aoi.name))
        assert len(t2) == 3
    assert runs["index"] == runs["files"] and len(runs["index"]) == 6
    # from the index only the T2 patches, which hold no data, are opened (for their masks)
    assert opened == {"index": ["t2"] * 3, "files": ["t1"] * 3 + ["t2"] * 3}
    # the T2 no-data columns are no data in the labels (the file's mask was read for them)
    lay = Layout(tmp_path / "index" / "results" / "ds")
    lab = read_patch(next(iter(sorted(lay.root.rglob("labels/t2/*.tif"))))).band1
    assert (lab[:, :3] == 255).all() and (lab[:, 3:] != 255).any()


#: a Transverse Mercator without an EPSG code (as a reprojection by GDAL leaves it): the tile
#: index records its WKT, not an ``EPSG:n`` string
CUSTOM_TM = ('+proj=tmerc +lat_0=0 +lon_0=111.3 +k=0.9996 +x_0=500000 +y_0=0 +ellps=GRS80 '
             '+units=m +no_defs')


@pytest.mark.parametrize("crs", [f"EPSG:{EPSG}", CUSTOM_TM], ids=["epsg", "no-epsg-code"])
def test_labels_from_the_index_grid_equal_labels_from_the_files_whatever_the_crs(
        tmp_path: Path, crs: str) -> None:
    """Tile writes the patches and records their grid (with the CRS as a string: ``EPSG:n``,
    or WKT for a CRS without a code); labels written from that record and labels written from
    the files' own grids are the same bytes, and carry the HR patches' CRS."""
    import geopandas as gpd
    from rasterio.crs import CRS
    from shapely.geometry import box

    from pipeline.aoi import AoiSpec

    def build(root: Path, from_index: bool) -> dict[str, str]:
        root.mkdir(parents=True)
        t1 = write_rgb(root / "t1.tif", crs=crs, nodata=None)
        t2 = write_rgb(root / "t2.tif", crs=crs, nodata=None)
        ann = {}
        for date, cls in (("t1", 3), ("t2", 5)):
            gdf = gpd.GeoDataFrame({"class": [cls, 7]}, crs=CRS.from_user_input(crs).to_wkt(),
                                   geometry=[box(X0 + 3, Y0 - 40, X0 + 30, Y0 - 5),
                                             box(X0 + 35, Y0 - 60, X0 + 61, Y0 - 33)])
            ann[date] = str(root / f"ann_{date}.gpkg")
            gdf.to_file(ann[date], driver="GPKG", engine="pyogrio")
        aoi = AoiSpec.model_validate({
            "name": "w", "city": "c", "t1": "2019-08-14", "t2": "2020-08-18",
            "images": {"t1": str(t1), "t2": str(t2)}, "annotations": ann})
        lay = Layout(root / "o")
        tile_aoi(aoi, TileConfig.model_validate({"patch_size_px": 16}), lay, progress=False)
        if not from_index:
            idx = read_geoparquet(lay.patches("w"))
            write_geoparquet(idx.drop(columns=["hr_transform"]), lay.patches("w"))
        label_aoi(aoi, LabelsConfig(min_coverage=0.0), lay, progress=False)
        for p in sorted(lay.root.rglob("labels/*/*.tif")):
            hr = lay.root / "aois" / "w" / "hr" / p.parent.name / p.name
            with rasterio.open(p) as lab, rasterio.open(hr) as img:
                assert lab.crs == img.crs and lab.transform == img.transform, p
        return _label_digests(lay, "w")

    by_index, by_files = build(tmp_path / "a", True), build(tmp_path / "b", False)
    assert len(by_index) == 2 * 16 and by_index == by_files
