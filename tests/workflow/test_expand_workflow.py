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
