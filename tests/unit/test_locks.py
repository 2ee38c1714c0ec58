"""A lock a killed Snakemake run left behind is removed only when no other Snakemake process
works in the folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.io.locks import clear_stale_locks, other_snakemake_in


def _locks(folder: Path) -> list[Path]:
    d = folder / ".snakemake" / "locks"
    d.mkdir(parents=True, exist_ok=True)
    out = [d / "0.input.lock", d / "0.output.lock"]
    for p in out:
        p.write_text("x\n")
    return out


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_stale_locks_go_live_ones_stay(tmp_path: Path) -> None:
    locks = _locks(tmp_path)
    # a live "snakemake" working in the folder (its command line names snakemake)
    live = subprocess.Popen([sys.executable, "-c",
                             "import time; print('ready', flush=True); time.sleep(60)",
                             "snakemake"], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout is not None and live.stdout.readline().strip() == "ready"  # exec'd
        assert other_snakemake_in(tmp_path) is True
        assert clear_stale_locks(tmp_path) == [] and all(p.exists() for p in locks)
        elsewhere = tmp_path / "other"
        elsewhere.mkdir()
        assert other_snakemake_in(elsewhere) is False  # it works in another folder
    finally:
        live.kill()
        live.wait()
    assert other_snakemake_in(tmp_path) is False
    assert clear_stale_locks(tmp_path) == locks and not any(p.exists() for p in locks)
    assert clear_stale_locks(tmp_path) == []  # nothing left to remove
