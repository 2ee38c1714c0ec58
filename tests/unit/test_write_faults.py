"""Writes are verified before they become visible; a full disk, a read-only folder or a GDAL
write error is one clear WriteError naming the file and the fix, with nothing left under the
final name; a rerun never reuses a broken file (issue: outputs you can trust)."""

from __future__ import annotations

import builtins
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
    """The file must read back exactly the bytes GDAL encoded: a disk that drops or flips
    bytes without an error is caught before the file is renamed into place."""
    real_open = builtins.open

    class Lossy:
        def __init__(self, fh: object) -> None:
            self.fh = fh

        def __enter__(self) -> Lossy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.__exit__(*exc)  # type: ignore[attr-defined]

        def write(self, data: bytes) -> int:
            flipped = bytearray(data)
            flipped[len(flipped) // 2] ^= 0xFF  # one byte of the pixel data
            return self.fh.write(bytes(flipped))  # type: ignore[attr-defined]

    def lossy_open(file: object, mode: str = "r", *a: object, **k: object) -> object:
        fh = real_open(file, mode, *a, **k)  # type: ignore[call-overload]
        return Lossy(fh.__enter__()) if "w" in mode else fh

    monkeypatch.setattr(geotiff, "open", lossy_open, raising=False)
    out = tmp_path / "p.tif"
    with pytest.raises(WriteError, match="reads back different bytes"):
        write_patch_tif(out, ARR, TR, "EPSG:32649", 255)
    assert not out.exists() and _leftovers(tmp_path) == []
    monkeypatch.undo()
    write_patch_tif(out, ARR, TR, "EPSG:32649", 255)
    with rasterio.open(out) as ds:  # the honest disk: the pixels given
        np.testing.assert_array_equal(ds.read(), ARR)


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


def test_temporaries_of_killed_runs_are_swept(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from pipeline.io.atomic import FOREIGN_TMP_AGE_S, HOST, sweep_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)  # a process that has exited
    folder = tmp_path / "labels"
    folder.mkdir()
    killed_file = folder / f".p1.tif.tmp-{HOST}-{pid}"
    killed_file.write_bytes(b"half a tif")
    killed_dir = folder / f".t1.tmp-{HOST}-{pid}"
    (killed_dir / "sub").mkdir(parents=True)
    mine = folder / f".p2.tif.tmp-{HOST}-{os.getpid()}"  # this process: alive, kept
    mine.write_bytes(b"")
    fresh_foreign = folder / f".p3.tif.tmp-othernode-{pid}"  # another machine, recent: kept
    fresh_foreign.write_bytes(b"")
    old_foreign = folder / ".p4.json.tmp-4242"  # older naming, long abandoned: removed
    old_foreign.write_bytes(b"")
    old = time.time() - FOREIGN_TMP_AGE_S - 60
    os.utime(old_foreign, (old, old))
    removed = sweep_temporaries(folder)
    assert sorted(p.name for p in removed) == sorted(
        [killed_file.name, killed_dir.name, old_foreign.name])
    assert mine.exists() and fresh_foreign.exists() and not killed_dir.exists()
    # writers sweep the folder they write into (once per process and folder)
    killed_file.write_bytes(b"again")
    sweep_temporaries(folder, force=True)
    assert not killed_file.exists()
    killed_file.write_bytes(b"again")
    write_patch_tif(tmp_path / "other" / "p.tif", ARR, TR, "EPSG:32649", 255)
    assert killed_file.exists()  # another folder: untouched
    write_patch_tif(tmp_path / "labels2" / "p.tif", ARR, TR, "EPSG:32649", 255)
    leftover = tmp_path / "labels2" / f".q.tif.tmp-{HOST}-{pid}"
    leftover.write_bytes(b"")
    write_json(tmp_path / "labels3" / "x.json", {})
    assert leftover.exists()  # labels2 was swept before the leftover appeared


_KILLED_TILE = """
import os, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import pipeline.io.geotiff as geotiff
from pipeline.config import TileConfig
from pipeline.hr.drivers import tile_aoi
from pipeline.layout import Layout
from tests.hr_helpers import aoi_spec
real, n = geotiff.write_patch_tif, [0]
def dying(*a, **k):
    n[0] += 1
    if n[0] > 7:
        os._exit(9)  # like kill -9: no cleanup runs
    return real(*a, **k)
geotiff.write_patch_tif = dying
tile_aoi(aoi_spec(Path({t1!r}), Path({t2!r})), TileConfig(patch_size_px=16), Layout(Path({root!r})),
         progress=False)
"""


def test_tile_resumes_in_the_patches_of_a_killed_run(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import subprocess
    import sys

    from pipeline.config import TileConfig
    from pipeline.hr.drivers import tile_aoi
    from pipeline.layout import Layout
    from tests.hr_helpers import aoi_spec, write_rgb

    repo = str(Path(__file__).resolve().parents[2])
    t1, t2 = write_rgb(tmp_path / "t1.tif"), write_rgb(tmp_path / "t2.tif")
    killed = tmp_path / "killed"
    code = _KILLED_TILE.format(repo=repo, t1=str(t1), t2=str(t2), root=str(killed))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr[-2000:]
    hr = Layout(killed).hr_dir("tst", "t1").parent
    temps = sorted(p.name for p in hr.iterdir())
    assert len(temps) == 2 and all(".tmp-" in t for t in temps)  # nothing final yet
    with caplog.at_level(logging.INFO):
        res = tile_aoi(aoi_spec(t1, t2), TileConfig(patch_size_px=16), Layout(killed),
                       progress=False)
    assert "kept 3 patch pairs of an interrupted run" in caplog.text  # 7 writes = 3 pairs + 1
    clean = Layout(tmp_path / "clean")
    tile_aoi(aoi_spec(t1, t2), TileConfig(patch_size_px=16), clean, progress=False)
    for pid in res.index.patch_id:
        for d in ("t1", "t2"):
            a = (Layout(killed).hr_dir("tst", d) / f"{pid}.tif").read_bytes()
            assert a == (clean.hr_dir("tst", d) / f"{pid}.tif").read_bytes()
    assert sorted(p.name for p in hr.iterdir()) == ["t1", "t2"]  # temporaries taken over
    assert not (Layout(killed).hr_dir("tst", "t1") / "_inputs.json").exists()


@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 300 KB tmpfs (root only; skipped where mounting is not allowed)."""
    import subprocess

    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_disk_full_while_tiling_says_no_space_left(tmp_path: Path, tiny_disk: Path) -> None:
    """A real full disk while tiling: GDAL reports it only to its own log ('Write failed' /
    'Read failed'); the error must say the disk is full, and no partial output remains."""
    from pipeline.config import TileConfig
    from pipeline.hr.drivers import tile_aoi
    from pipeline.layout import Layout
    from tests.hr_helpers import aoi_spec, write_rgb

    t1 = write_rgb(tmp_path / "t1.tif", width=512, height=512)
    t2 = write_rgb(tmp_path / "t2.tif", width=512, height=512)
    with pytest.raises(WriteError, match="no space left on the device writing"):
        tile_aoi(aoi_spec(t1, t2), TileConfig(patch_size_px=64), Layout(tiny_disk / "out"),
                 progress=False)
    hr = tiny_disk / "out" / "aois" / "tst" / "hr"
    assert not hr.exists() or not any(hr.rglob("*.tif"))


def test_truncated_index_is_rebuilt_not_a_traceback(tmp_path: Path) -> None:
    """A truncated labels.parquet: reading it is an InputError that says what to do, and the
    parse-time check drops it so the next run rebuilds it (it used to fail with pyarrow's
    ArrowInvalid on every rerun)."""
    import geopandas as gpd
    import shapely

    from pipeline.errors import InputError
    from pipeline.io.manifest import invalidate_broken_outputs
    from pipeline.io.parquet import read_geoparquet, write_geoparquet

    idx = tmp_path / "aois" / "a" / "labels.parquet"
    write_geoparquet(gpd.GeoDataFrame({"patch_id": ["a"]}, geometry=[shapely.Point(0, 0)],
                                      crs=4326), idx)
    good = idx.read_bytes()
    idx.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match=r"label index .*labels\.parquet is truncated or "
                                         r"corrupt .*delete it and run the same command again"):
        read_geoparquet(idx, what="label index")
    manifest = tmp_path / "aois" / "a" / "manifests" / "labels.json"
    got = invalidate_broken_outputs({"labels": (manifest, idx)}, tmp_path)
    assert "labels" in got and "unreadable" in got["labels"][0] and not idx.exists()
    idx.write_bytes(good)  # an intact index is left alone
    assert invalidate_broken_outputs({"labels": (manifest, idx)}, tmp_path) == {}
    assert idx.exists()


def test_geo_and_plain_tables_read_back_as_written(tmp_path: Path) -> None:
    """read_geoparquet: a file with geometry comes back as a GeoDataFrame with its CRS and
    geometries, a plain table as a plain DataFrame with the same values; a truncated plain
    table is the same InputError as a truncated GeoParquet."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    from pipeline.errors import InputError
    from pipeline.io.parquet import read_geoparquet, write_geoparquet

    geo, plain = tmp_path / "geo.parquet", tmp_path / "plain.parquet"
    write_geoparquet(gpd.GeoDataFrame({"patch_id": ["a", "b"]},
                                      geometry=[shapely.Point(1, 2), shapely.Point(3, 4)],
                                      crs=32649), geo)
    write_geoparquet(pd.DataFrame({"patch_id": ["a", "b"], "changed_px": [3, 0]}), plain)
    g = read_geoparquet(geo)
    assert isinstance(g, gpd.GeoDataFrame) and g.crs.to_epsg() == 32649
    assert [p.x for p in g.geometry] == [1.0, 3.0]
    t = read_geoparquet(plain, required=("changed_px",))
    assert type(t) is pd.DataFrame and t["changed_px"].tolist() == [3, 0]
    with pytest.raises(InputError, match=r"lacks columns \['geometry'\]"):
        read_geoparquet(plain, required=("geometry",), what="change index")
    plain.write_bytes(plain.read_bytes()[:40])
    with pytest.raises(InputError, match=r"change index .* is truncated or corrupt"):
        read_geoparquet(plain, what="change index")


def test_rule_change_runs_without_geopandas(tmp_path: Path) -> None:
    """Rule change reads and writes plain tables: its process imports neither geopandas nor
    pyproj nor pyogrio (about 0.25 s of the job's start-up), with the driver module or when
    reading the labels index."""
    import subprocess
    import sys

    import pandas as pd

    from pipeline.io.parquet import write_geoparquet

    plain = tmp_path / "labels.parquet"
    write_geoparquet(pd.DataFrame({"patch_id": ["a"], "label_t1": ["x"],
                                   "label_t2": ["y"]}), plain)
    code = (
        "import sys\n"
        "from pipeline.hr.drivers import change_aoi\n"
        "from pipeline.io.parquet import read_geoparquet\n"
        f"read_geoparquet({str(plain)!r}, required=('patch_id', 'label_t1'))\n"
        "print(sorted(m for m in ('geopandas', 'pyproj', 'pyogrio') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_output_folder_linked_to_another_disk(tmp_path: Path) -> None:
    """An output folder that is a symbolic link (patches kept on another disk) is written
    through: the link stays, its target gets the patches (it used to fail with
    NotADirectoryError from the atomic rename)."""
    from pipeline.config import TileConfig
    from pipeline.hr.drivers import tile_aoi
    from pipeline.layout import Layout
    from tests.hr_helpers import aoi_spec, write_rgb

    t1 = write_rgb(tmp_path / "t1.tif")
    t2 = write_rgb(tmp_path / "t2.tif")
    other = tmp_path / "big_disk" / "hr"
    other.mkdir(parents=True)
    link = tmp_path / "out" / "aois" / "tst" / "hr"
    link.parent.mkdir(parents=True)
    link.symlink_to(other, target_is_directory=True)
    res = tile_aoi(aoi_spec(t1, t2), TileConfig(patch_size_px=32), Layout(tmp_path / "out"),
                   progress=False)
    assert res.n_kept == 4 and link.is_symlink()
    assert len(list(other.rglob("*.tif"))) == 8  # T1 + T2 of 4 patches, on the other disk


def test_a_patch_changed_in_place_is_caught_by_its_checksum(tmp_path: Path) -> None:
    """An HR patch whose bytes change with its size and mtime kept: the stat check at start
    trusts it, the checksum recorded at write time does not: the labels stage refuses to read
    it (naming the file and the fix), and so does the change stage for a label, and
    ``verify_checksums`` makes the start rebuild rule tile."""
    import os

    from pipeline.config import ChangeConfig
    from pipeline.errors import InputError
    from pipeline.hr.drivers import change_aoi
    from pipeline.io.manifest import invalidate_broken_outputs, write_manifest

    def flip_last_byte(f: Path) -> None:  # same size, same mtime, other bytes
        st, raw = f.stat(), bytearray(f.read_bytes())
        raw[-1] ^= 0xFF
        f.write_bytes(bytes(raw))
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))

    t1 = [(px_box(0, 0, 0, 0, 16, 16), 4), (px_box(0, 1, 0, 0, 16, 16), 3)]
    aoi, layout = make_tiny_aoi(tmp_path, t1, t1)
    hr = sorted((layout.root / "aois").rglob("*.tif"))
    tile_manifest = layout.manifest("tiny", "tile")
    write_manifest(tile_manifest, layout.root, "tile", hr)
    label_aoi(aoi, LabelsConfig(), layout, progress=False)  # intact patches pass the check
    label = layout.labels_dir("tiny", "t2") / hr[0].name
    flip_last_byte(label)
    with pytest.raises(InputError, match=r"T2 label .*differ from what rule labels wrote"):
        change_aoi(aoi, ChangeConfig(), layout, progress=False)

    victim = hr[0]
    flip_last_byte(victim)
    layout.labels_index("tiny").unlink()
    layout.labels_state("tiny").unlink()
    with pytest.raises(InputError, match=r"HR patch .*differ from what rule tile wrote.*"
                                         r"verify_checksums=true"):
        label_aoi(aoi, LabelsConfig(), layout, progress=False)
    covered = {"tile": (tile_manifest, layout.patches("tiny"))}
    assert invalidate_broken_outputs(covered, layout.root) == {}  # size and mtime kept
    got = invalidate_broken_outputs(covered, layout.root, checksums=True)
    assert got == {"tile": [f"{victim.relative_to(layout.root).as_posix()}: modified"]}
    assert not layout.patches("tiny").exists()


def test_a_mask_is_kept_inside_the_written_bytes(tmp_path: Path) -> None:
    """Patches are encoded in memory: a mask written as a sidecar (GDAL's default before 3.9,
    forced here from outside) would stay in memory and be lost. The mask must be in the file."""
    data = np.full((3, 32, 32), 7, np.uint8)
    mask = np.ones((32, 32), bool)
    mask[:5] = False
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False):
        p = write_patch_tif(tmp_path / "m.tif", data, TR, "EPSG:32649", None, mask=mask)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["m.tif"]
    with rasterio.open(p) as ds:
        np.testing.assert_array_equal(ds.read_masks(1) > 0, mask)
