"""One dependency list: the conda envs of `snakemake --use-conda` are generated from
pyproject.toml (scripts/gen_conda_envs.py) and must not drift from it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_conda_envs_match_pyproject() -> None:
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_conda_envs.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_runtime_dependency_reaches_the_pipeline_env() -> None:
    """Each [project.dependencies] name appears in workflow/envs/pipeline.yaml with its
    bound (conda-forge spelling or under pip:), so a `--use-conda` run has what a pip
    install has (e.g. pystac-client, zarr 3)."""
    import re

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = (REPO / "workflow" / "envs" / "pipeline.yaml").read_text()
    alias = {"matplotlib": "matplotlib-base", "snakemake": "snakemake-minimal"}
    for req in deps:
        m = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?(.*)", req)
        assert m, req
        name, bound = m.group(1).lower(), m.group(3).replace(" ", "")
        assert f"{alias.get(name, name)}{bound}" in env, (req, "missing from pipeline.yaml")
    assert "zarr>=3" in env
