"""What produced an output: the code's git commit (the data digest is
:func:`pipeline.io.digest.content_digest`)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def code_commit() -> str:
    """The git commit of this checkout (``<sha>``, ``<sha>-dirty`` with uncommitted changes to
    tracked files), or ``unknown`` outside a git checkout (an installed wheel)."""
    repo = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "-uno"],
                               check=True, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha
