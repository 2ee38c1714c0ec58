"""Fixtures of the workflow tests (everything that runs the snakemake CLI)."""

from __future__ import annotations

import pytest

from tests.workflow.runner import Snakemake


@pytest.fixture
def snakemake() -> Snakemake:
    """The one Snakemake runner (see tests/workflow/runner.py)."""
    return Snakemake()
