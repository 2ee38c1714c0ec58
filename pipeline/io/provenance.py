"""What produced an output: the code's git commit and a digest of the data it read."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
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


def files_digest(paths: Iterable[Path | str]) -> str:
    """SHA-256 (first 16 hex digits) over the names and bytes of ``paths`` (missing files
    count by name only): equal digests = the same data."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        h.update(p.name.encode())
        if p.is_file():
            with p.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]
