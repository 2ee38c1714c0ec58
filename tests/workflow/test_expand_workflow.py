"""The expansion rules through the snakemake CLI: plan-only runs and the DAG's job counts."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.expand_helpers import make_pairs
from tests.workflow.runner import Snakemake


def _expand(snakemake: Snakemake, tmp_path: Path, expand: dict,
            *args: str) -> subprocess.CompletedProcess[str]:
    cfg = {"results_dir": str(tmp_path / "results"), "dataset": "ds", "expand": expand,
           "aois": ["aoi/fusu-beilin.yaml"]}  # a template: builds nothing itself
    cfgfile = tmp_path / "cfg.yaml"
    cfgfile.write_text(json.dumps(cfg))
    return snakemake.run(*args, configfile=cfgfile, timeout=240)


def test_snakemake_plan_only_and_dag(tmp_path: Path, snakemake: Snakemake) -> None:
    root = make_pairs(tmp_path / "pairs")
    r = _expand(snakemake, tmp_path, {"adapter": "pairs", "path": str(root), "plan_only": True},
                   "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    plan = json.loads((tmp_path / "results" / "ds" / "expand" / "plan.json").read_text())
    assert plan["totals"]["samples"] == 2
    # full expansion (the checkpoint's outputs exist): one job per group x month, not per sample
    r = _expand(snakemake, tmp_path, {"adapter": "pairs", "path": str(root),
                              "sentinel_archive": str(tmp_path)}, "-n", "--rerun-triggers",
                   "mtime")
    assert r.returncode == 0, r.stderr[-3000:]
    counts = dict(re.findall(r"^(expand_\w+)\s+(\d+)$", r.stdout + r.stderr, re.M))
    assert counts == {"expand_sentinel_init": "1", "expand_sentinel_month": "2",
                      "expand_stats": "1"}


def test_no_expand_rules_without_adapter(tmp_path: Path, snakemake: Snakemake) -> None:
    r = _expand(snakemake, tmp_path, {"adapter": None}, "--list-rules")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "expand" not in r.stdout
    r = _expand(snakemake, tmp_path, {"adapter": "pairs", "path": str(tmp_path),
                                      "sentinel_archive": str(tmp_path)}, "--list-rules")
    assert r.returncode == 0, r.stderr[-3000:]
    assert {"expand_index", "expand_sentinel_month", "expand_stats"} <= set(r.stdout.split())


def test_an_unreachable_catalogue_fails_once_before_any_job(tmp_path: Path,
                                                            snakemake: Snakemake) -> None:
    """The source is checked when the run starts: an unreachable STAC API fails the build at
    once, naming its host, instead of after the index / HR jobs and once per month job."""
    root = make_pairs(tmp_path / "pairs")
    cfg = {"results_dir": str(tmp_path / "results"), "dataset": "ds",
           "aois": ["aoi/fusu-beilin.yaml"],
           "expand": {"adapter": "pairs", "path": str(root)},
           "sentinel": {"source": "stac", "stac": {"url": "http://127.0.0.1:9/api",
                                                   "max_retries": 0}}}
    cfgfile = tmp_path / "cfg.yaml"
    cfgfile.write_text(json.dumps(cfg))
    r = snakemake.run(configfile=cfgfile, timeout=240)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "the host 127.0.0.1:9 could not be reached" in out, out[-3000:]
    assert "expand: the Sentinel source cannot be used" in out
    assert not (tmp_path / "results" / "ds" / "expand" / "samples.parquet").exists()
