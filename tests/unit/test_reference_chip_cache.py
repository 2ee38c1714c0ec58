"""The download cache of the s2cloudless reference chip (``benchmarks.cloud_mask.reference_chip``,
read by the real-data tests and the cloud-mask benchmark) is safe when several test workers
fill it at once on a fresh machine: nothing appears under a final name before it is complete."""

from __future__ import annotations

import io
import multiprocessing as mp
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import cloud_mask


def _fake_sdist(path: Path, value: int, side: int = 4) -> None:
    """A tar.gz holding the chip member (an npz of ``side`` x ``side`` px) at the sdist's
    path."""
    buf = io.BytesIO()
    np.savez(buf, s2_im=np.full((1, side, side, 13), value, np.float32))
    data = buf.getvalue()
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(cloud_mask.MEMBER)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def test_the_download_lands_in_a_private_folder_and_appears_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FUSU_TEST_CACHE", str(cache))
    seen: list[Path] = []

    def fake_pip(cmd: list[str], **_: object) -> subprocess.CompletedProcess[bytes]:
        d = Path(cmd[cmd.index("-d") + 1])
        seen.append(d)
        assert d.parent == cache and d != cache  # a folder of this call's own
        assert not (cache / cloud_mask.SDIST).exists()  # nothing under the final name yet
        _fake_sdist(d / cloud_mask.SDIST, 7)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(cloud_mask.subprocess, "run", fake_pip)
    npz = cloud_mask.reference_chip()
    assert len(seen) == 1 and not seen[0].exists()  # the private folder is gone
    assert npz == cache / "s2cloudless-1.1.0-input_arrays.npz"
    assert float(np.load(npz)["s2_im"][0, 0, 0, 0]) == 7.0
    assert sorted(p.name for p in cache.iterdir()) == sorted([cloud_mask.SDIST, npz.name])
    cloud_mask.reference_chip()  # cached: no second download
    assert len(seen) == 1


def _extract(cache: str, start: Any, out: Any) -> None:
    import os

    os.environ["FUSU_TEST_CACHE"] = cache
    from benchmarks.cloud_mask import reference_chip

    start.wait()  # all workers call at once
    try:
        out.put(str(reference_chip()))
    except BaseException as exc:  # reported to the test
        out.put(f"error: {exc!r}")


def test_workers_extracting_at_once_all_read_the_complete_chip(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    _fake_sdist(cache / cloud_mask.SDIST, 3, side=400)  # 8 MB: extractions overlap
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_extract, args=(str(cache), start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    paths = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert len(set(paths)) == 1, paths
    assert float(np.load(paths[0])["s2_im"].sum()) == 3.0 * 400 * 400 * 13
    # no temporaries left behind, whoever won the race
    left = sorted(p.name for p in cache.iterdir())
    assert left == sorted([cloud_mask.SDIST, Path(paths[0]).name])
