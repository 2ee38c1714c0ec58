"""Workflow-level checks through the real snakemake CLI: lint, parse-time config validation
(--config overrides included), the default DAG, and refusal to build template AOIs.

End-to-end runs of the tiny workflow live in tests/workflow/test_cluster.py (every job as a
separate process) and tests/workflow/test_resume_workflow.py (kill + rerun converges to
identical outputs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflow.runner import Snakemake


def test_lint_is_clean(snakemake: Snakemake) -> None:
    res = snakemake.run("--lint")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('tile={"patch_sise_px": 3}', "unknown key 'tile.patch_sise_px'"),
        ('sentinel={"gee": {"concurrency": 99}}', "sentinel.gee.concurrency"),
        ('splits={"ratios": {"train": 0.9, "val": 0.1, "test": 0.2}}', "sum to 1"),
        ("dataset=bad/name", "not a safe name"),
    ],
)
def test_bad_config_override_fails_at_parse_time(override: str, message: str,
                                                 snakemake: Snakemake) -> None:
    res = snakemake.run("-n", "--config", override)
    assert res.returncode != 0
    assert message in res.stdout + res.stderr


def test_default_dry_run_plans_every_stage(tmp_path: Path, snakemake: Snakemake) -> None:
    res = snakemake.run("-n", "--quiet", "rules", config={"results_dir": str(tmp_path / "results")})
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    for rule in (
        "tile",
        "footprints",
        "labels",
        "change",
        "sentinel_init",
        "sentinel_month",
        "sentinel",
        "assemble",
        "stats",
        "stac",
        "report",
    ):
        assert f"\n{rule} " in out, f"rule {rule} missing from the default DAG:\n{out[-2000:]}"
    # one job per AOI x month for Sentinel, never per patch: the demo spans 13 months
    line = next(ln for ln in out.splitlines() if ln.startswith("sentinel_month "))
    assert int(line.split()[-1]) == 13


def test_template_aoi_is_refused(tmp_path: Path, snakemake: Snakemake) -> None:
    target = f"{tmp_path}/tpl/aois/fusu-beilin/patches.parquet"
    res = snakemake.run(
        "-n",
        target,
        "--config",
        "dataset=tpl",
        f"results_dir={tmp_path}",
        'aois=["aoi/fusu-beilin.yaml"]',
    )
    assert res.returncode != 0
    assert "template" in (res.stdout + res.stderr)


def test_a_run_of_templates_only_says_it_builds_nothing(tmp_path: Path,
                                                        snakemake: Snakemake) -> None:
    """The default target with only a template AOI used to end "1 of 1 steps (100%) done",
    exit 0, with nothing built; it is refused with what to do (the plan-only command)."""
    res = snakemake.run("--config", "dataset=tpl", f"results_dir={tmp_path}",
                        'aois=["aoi/fusu-beilin.yaml"]')
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "every AOI of this run is a template and builds nothing" in out
    assert "aoi/fusu-beilin.yaml" in out and "plan_only: true" in out


def test_duplicate_aoi_names_are_refused(tmp_path: Path, snakemake: Snakemake) -> None:
    res = snakemake.run("-n", "--config", 'aois=["aoi/demo.yaml", "aoi/demo.yaml"]')
    assert res.returncode != 0
    assert "names must be unique" in res.stdout + res.stderr
