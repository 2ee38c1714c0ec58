"""Every stage module that Snakemake runs through `script:` must survive Snakemake's preamble.

Snakemake prepends code (the pickled `snakemake` object) to the script before running it, so a
`from __future__ import ...` line in a stage becomes a SyntaxError at run time only. This test
compiles each stage exactly that way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    {
        (rules.parent / m).resolve()
        for rules in (REPO / "workflow" / "rules").glob("*.smk")
        for m in re.findall(r'script:\s*\n\s*"([^"]+)"', rules.read_text())
    }
)


def test_rules_reference_stage_scripts() -> None:
    assert len(SCRIPTS) >= 10
    for path in SCRIPTS:
        assert path.is_file(), f"rule script {path} does not exist"
        assert path.parent == REPO / "stages"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_stage_compiles_behind_snakemake_preamble(path: Path) -> None:
    source = "import sys\nsnakemake = None\n" + path.read_text()
    compile(source, str(path), "exec")
