"""Resumability at scale: a multi-AOI build killed at three different points (SIGKILL of the
whole process group, jobs included, as a node failure or a scheduler pre-emption would) and
resumed by running the same plain command again (no --unlock, no --rerun-incomplete: the
workflow profile and the Snakefile's stale-lock check do that) converges to the outputs of an
uninterrupted build (checksums), and no job that had finished before a kill runs again.

The uninterrupted reference is the fake-cluster build of tests/workflow/test_cluster.py (same tiny
two-AOI workspace, built once per session), so this also shows the cluster and local
executors produce identical datasets.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.workflow.cluster_helpers import (
    TWO_AOIS,
    checksums,
    output_files,
    parse_jobs,
    runner,
    shared_cluster_build,
    write_workspace,
)

pytestmark = pytest.mark.slow

# Kill points: cumulative number of finished jobs after which the run is killed, and a delay
# (s) after reaching it, so that kills land both between jobs and in the middle of one.
KILL_POINTS = ((2, 0.0), (7, 1.5), (13, 3.0))


@pytest.fixture(scope="session")
def cluster_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    return shared_cluster_build(tmp_path_factory)


def _run_until(folder: Path, log_path: Path, n_finished: int, delay_s: float) -> tuple[str, bool]:
    """Start snakemake; SIGKILL its process group once ``n_finished`` jobs finished.

    Returns (its output, whether it was killed before completing).
    """
    with log_path.open("w") as fh:
        proc = subprocess.Popen(
            runner(folder).cmd(), cwd=folder, env=runner(folder).env(),
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
        killed = False
        deadline = time.monotonic() + 400
        while proc.poll() is None and time.monotonic() < deadline:
            if log_path.read_text().count("Finished jobid") >= n_finished:
                time.sleep(delay_s)
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                break
            time.sleep(0.2)
        proc.wait(timeout=60)
    text = log_path.read_text()
    if not killed and proc.returncode != 0:
        raise AssertionError(f"interrupted build failed on its own:\n{text[-4000:]}")
    return text, killed


def test_killed_build_resumes_to_identical_outputs(
    tmp_path: Path, cluster_build: tuple[Path, str, Path]
) -> None:
    ref_folder, _, _ = cluster_build
    reference = checksums(ref_folder)
    folder = tmp_path / "ws"
    write_workspace(folder, TWO_AOIS)

    done_outputs: dict[str, int] = {}  # outputs of finished jobs -> mtime_ns at the time
    n_done = 0
    kills = 0
    prev_killed = False
    for i, (target, delay) in enumerate(KILL_POINTS):
        text, killed = _run_until(folder, tmp_path / f"run{i}.log", target - n_done, delay)
        started, finished = parse_jobs(text)
        redone = {o for jid in started for o in started[jid][1]} & set(done_outputs)
        assert not redone, f"run {i} redid finished jobs: {sorted(redone)}"
        for jid in finished:
            for out in started[jid][1]:
                p = folder / out
                if p.exists():
                    done_outputs[out] = p.stat().st_mtime_ns
        n_done += len(finished - {j for j, (r, _) in started.items() if r == "all"})
        if prev_killed:  # the same command resumed: the killed run's lock was found stale
            assert "lock removed, resuming" in text, text[-3000:]
        kills += killed
        prev_killed = killed
        if killed:  # a killed run leaves its lock behind, as after a node failure
            assert any((folder / ".snakemake" / "locks").glob("*.lock"))
    assert kills >= 2, "the build finished before most kill points: lower KILL_POINTS"

    final = runner(folder).ok()  # the same command, nothing else
    started, _ = parse_jobs(final)
    redone = {o for jid in started for o in started[jid][1]} & set(done_outputs)
    assert not redone, f"the final run redid finished jobs: {sorted(redone)}"
    for out, mtime in done_outputs.items():
        assert (folder / out).stat().st_mtime_ns == mtime, f"{out} was rewritten"

    resumed = checksums(folder, output_files(folder))
    assert set(resumed) == set(reference), set(resumed) ^ set(reference)
    differ = sorted(k for k in reference if reference[k] != resumed[k])
    assert not differ, f"outputs differ from the uninterrupted build: {differ}"
    assert "Nothing to be done" in runner(folder).ok("-n")
    # the killed runs' temporaries were swept by the reruns that wrote into the same folders
    leftovers = sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.tmp-*"))
    assert not leftovers, f"temporaries of killed runs left behind: {leftovers[:10]}"


def test_deleted_or_corrupted_outputs_rebuild_just_what_is_needed(
    tmp_path: Path, cluster_build: tuple[Path, str, Path]
) -> None:
    """Files covered by a stage manifest (patch GeoTIFFs, the cube) and the per-AOI indices are
    tracked: deleting or corrupting one reruns exactly the rule that writes it (and what
    depends on it), and the result converges to the clean build."""
    import shutil

    from tests.workflow.cluster_helpers import DATASET, RESULTS

    ref_folder, _, _ = cluster_build
    reference = checksums(ref_folder)
    folder = tmp_path / "ws"
    shutil.copytree(ref_folder, folder, symlinks=True)
    root = folder / RESULTS / DATASET
    assert "Nothing to be done" in runner(folder).ok("-n")
    hr = sorted((root / "aois" / "ta" / "hr" / "t1").glob("*.tif"))[0]
    hr.unlink()  # a user deleted a patch
    label = sorted((root / "aois" / "tb" / "labels" / "t2").glob("*.tif"))[0]
    with label.open("r+b") as fh:  # a copy tool truncated a label
        fh.truncate(100)
    shutil.rmtree(root / "sentinel" / "tb.zarr")  # the cube of the other AOI
    dry = runner(folder).ok("-n")
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry, re.M))
    assert jobs.get("tile") == "1" and jobs.get("labels") == "2" and jobs.get("sentinel") == "2"
    assert "output file(s) of rule tile are missing or changed" in dry
    runner(folder).ok()
    resumed = checksums(folder, output_files(folder))
    differ = sorted(k for k in reference if reference[k] != resumed.get(k))
    assert not differ, f"rebuilt outputs differ from the clean build: {differ}"
    # the declared per-AOI indices are targets too: deleting one rebuilds it
    (root / "aois" / "tb" / "labels.parquet").unlink()
    dry = runner(folder).ok("-n")
    assert re.search(r"^labels\s+1$", dry, re.M), dry[-2000:]
    runner(folder).ok()
    # the split lists are default targets, and the per-city / change-detection lists are
    # covered by the assemble manifest: deleting one rebuilds them
    (root / "aois" / "tb" / "labels.parquet").write_bytes(b"PAR1 truncated")
    dry = runner(folder).ok("-n")
    assert re.search(r"^labels\s+1$", dry, re.M) and "unreadable" in dry, dry[-2000:]
    runner(folder).ok()
    (root / "splits" / "train.txt").unlink()
    assert re.search(r"^assemble\s+1$", runner(folder).ok("-n"), re.M)
    runner(folder).ok()
    city_list = sorted((root / "splits" / "cities").rglob("*.txt"))[0]
    city_list.unlink()
    dry = runner(folder).ok("-n")
    assert re.search(r"^assemble\s+1$", dry, re.M) and "rule assemble" in dry, dry[-2000:]
    runner(folder).ok()
    assert city_list.is_file()


def test_a_concurrent_second_run_is_refused_and_the_first_converges(
    tmp_path: Path, cluster_build: tuple[Path, str, Path]
) -> None:
    """Two builds of one workspace at once: the second stops (at the outputs the first is
    writing, at Snakemake's lock, or, when the first deleted an output it is about to
    rewrite while the second built its DAG, at Snakemake's own concurrent-deletion check),
    touches nothing, and the first finishes cleanly."""
    import shutil

    from tests.workflow.cluster_helpers import DATASET, RESULTS

    ref_folder, _, _ = cluster_build
    reference = checksums(ref_folder)
    folder = tmp_path / "ws"
    shutil.copytree(ref_folder, folder, symlinks=True)
    for aoi in TWO_AOIS:  # work to redo: labels, change and the dataset rules (~20 s)
        (folder / RESULTS / DATASET / "aois" / aoi / "labels.parquet").unlink()
    log_path = tmp_path / "first.log"
    with log_path.open("w") as fh:
        first = subprocess.Popen(runner(folder).cmd(), cwd=folder, env=runner(folder).env(),
                                 stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while "rule labels" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        # a plain second run stops at the first run's in-progress outputs; one that follows its
        # advice (--rerun-incomplete) stops at the lock
        second = runner(folder).run()
        forced = runner(folder).run("--rerun-incomplete")
        assert first.wait(timeout=300) == 0, log_path.read_text()[-3000:]
    for run in (second, forced):  # which check answers first depends on the first's progress
        text = run.stdout + run.stderr
        assert run.returncode != 0, text[-2000:]
        assert "Directory cannot be locked" in text or (
            "IncompleteFilesException" in text and "labels.parquet" in text) or (
            "Unable to obtain modification time" in text
            and "a concurrent process has deleted it" in text), text[-2000:]
    resumed = checksums(folder, output_files(folder))
    differ = sorted(k for k in reference if reference[k] != resumed.get(k))
    assert not differ, differ
