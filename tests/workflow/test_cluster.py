"""The workflow on a (fake) cluster: snakemake-executor-plugin-cluster-generic submitting every
job through tests/workflow/cluster/submit.sh, which starts it as a detached process in its own
session with a scrubbed environment, so jobs share nothing but files (as on SLURM / Kubernetes).

The build is the tiny two-AOI demo workspace (tests/workflow/cluster_helpers.py); its checksums
are also the reference of tests/workflow/test_resume_workflow.py (one build serves both, session
fixture).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import pytest

from tests.workflow.cluster_helpers import (
    DATASET,
    REPO,
    RESULTS,
    TWO_AOIS,
    parse_jobs,
    runner,
    shared_cluster_build,
    write_workspace,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def cluster_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(workspace, snakemake output, fake-cluster state) of the tiny two-AOI cluster build."""
    return shared_cluster_build(tmp_path_factory)


def test_every_job_runs_as_a_separate_cluster_job(cluster_build: tuple[Path, str, Path]) -> None:
    _, log, state = cluster_build
    started, finished = parse_jobs(log)
    assert finished == set(started), "some jobs did not finish"
    local = {r for r, _ in started.values() if re.search(rf"localrule {r}:", log)}
    assert local <= {"all"}, f"rules ran inside the submitting process: {local}"
    remote = [r for r, _ in started.values() if r not in local]
    # every non-local job went through submit.sh exactly once and exited 0 there
    submitted = re.findall(r"Submitted job \d+ with external jobid '(\w+)'", log)
    assert len(submitted) == len(remote) == len(set(submitted))
    scripts = sorted(state.glob("*.sh"))
    assert len(scripts) == len(remote)
    assert all((state / f"{i}.rc").read_text().strip() == "0" for i in submitted)
    pids = {(state / f"{i}.pid").read_text().strip() for i in submitted}
    assert len(pids) == len(submitted)  # one process (session) per job
    ran = {}
    for s in scripts:
        text = s.read_text()
        rule = json.loads(text.splitlines()[1].split("properties = ", 1)[1])["rule"]
        ran[rule] = ran.get(rule, 0) + 1
        assert "--mode 'remote'" in text or "--mode remote" in text
    for rule in ("tile", "footprints", "labels", "change", "sentinel_init", "sentinel_month"):
        assert ran.get(rule) == len(TWO_AOIS), (rule, ran)
    for rule in ("assemble", "stats", "stac", "report"):
        assert ran.get(rule) == 1, (rule, ran)


def test_cluster_build_outputs_and_nothing_left_to_do(
    cluster_build: tuple[Path, str, Path],
) -> None:
    folder, _, _ = cluster_build
    root = folder / RESULTS / DATASET
    index = gpd.read_parquet(root / "patches.parquet")
    assert sorted(index["aoi"].unique()) == sorted(TWO_AOIS)
    # 600 m at 2 m = 300 px: 2 full windows of 128 px per side plus a padded edge window
    # (44 px inside, over tile.min_edge_fraction); windows over the T2 no-data corner are skipped
    per_aoi = index.groupby("aoi").size()
    assert all(4 < n <= 9 for n in per_aoi), per_aoi
    assert (index["edge_pad_frac"] > 0).any() and (index["edge_pad_frac"] == 0).sum() >= 8
    assert set(index["split"]) <= {"train", "val", "test"}
    for aoi in TWO_AOIS:
        assert (root / "sentinel" / f"{aoi}.zarr").is_dir()
        summary = json.loads((root / "sentinel" / aoi / "months" / "2019-08.json").read_text())
        assert summary  # the month job of the AOI ran to completion on its own node
        n_bin = len(list((root / "aois" / aoi / "change" / "bin").glob("*.tif")))
        assert n_bin == per_aoi[aoi]
    # a second (dry) run finds nothing to do: the cluster jobs' outputs are complete
    dry = runner(folder).ok("-n")
    assert "Nothing to be done" in dry, dry[-2000:]
    # execution settings are not rule params: changing them reruns nothing ...
    execution = ('sentinel={"gee": {"concurrency": 3, "max_retries": 2, "timeout_s": 90}}',
                 'dask={"threads": 3}', 'train={"num_workers": 0}')
    for override in execution:
        dry = runner(folder).ok("-n", "--config", override)
        assert "Nothing to be done" in dry, (override, dry[-2000:])
    # ... while a setting that decides the bytes reruns the jobs it feeds (and only those)
    dry = runner(folder).ok("-n", "--config", 'sentinel={"cloud_probability_threshold": 30}')
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry, re.M))
    assert "sentinel_month" in jobs and "tile" not in jobs and "labels" not in jobs, jobs


@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profiles_are_valid_for_this_snakemake(tmp_path: Path, profile: str) -> None:
    # the slurm plugin is not installed here: validate every other key of the profile by
    # swapping its executor for the dry-run one; the resources must reach the jobs
    text = (REPO / "profiles" / profile / "config.yaml").read_text()
    assert (profile != "slurm") or re.search(r"^executor: slurm$", text, re.M)
    prof = tmp_path / "profile"
    prof.mkdir()
    (prof / "config.yaml").write_text(re.sub(r"^executor: slurm$", "executor: dryrun", text,
                                             flags=re.M))
    folder = tmp_path / "ws"
    write_workspace(folder, ("pa",))
    out = runner(folder).ok("--profile", str(prof), "-n")
    assert "sentinel_month" in out
    if profile == "slurm":
        month_jobs = re.findall(r"rule sentinel_month:.*?resources: ([^\n]+)", out, re.S)
        assert month_jobs and all("slurm_partition=io" in r and "constraint=internet" in r
                                  for r in month_jobs)
        assert re.search(r"rule tile:.*?resources: [^\n]*slurm_partition=cpu", out, re.S)


def test_fusu_scale_dry_run_jobs_scale_with_aois_and_months_not_patches(tmp_path: Path) -> None:
    from benchmarks.scale_dryrun import dry_run, write_config

    n_aois, months = 5, 25
    counts = {}
    for side in (113, 7):  # 63,845 patches vs 245: the same DAG
        folder = tmp_path / str(side)
        folder.mkdir()
        cfg, patches, _ = write_config(folder, n_aois, side, months)
        assert patches >= 63_000 if side == 113 else patches == 5 * 49
        _, counts[side] = dry_run(cfg, folder)
    assert counts[113] == counts[7]
    jobs = counts[113]
    assert jobs["sentinel_month"] == n_aois * months
    for rule in ("tile", "footprints", "labels", "change", "sentinel_init", "sentinel"):
        assert jobs[rule] == n_aois, (rule, jobs)
    assert all(v in (1, n_aois, n_aois * months) for k, v in jobs.items() if k != "total")
    assert jobs["total"] <= n_aois * (months + 15) + 15
