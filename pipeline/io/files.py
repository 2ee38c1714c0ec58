"""Copies of files and folders (the expansion's ``expand.copy_originals``), written atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline.io.atomic import atomic_path


def copy_originals(files_json: dict[str, str], dest: str | Path) -> int:
    """Copy every original file / folder of each sample to ``dest/<sample_id>/``.

    Args:
        files_json: {sample_id: JSON {role: path or [paths]}} (the index's ``files`` column).
        dest: destination folder (``Layout.expand_originals_dir``).

    Returns:
        Number of samples copied (samples already present are skipped; each sample's folder is
        written atomically).
    """
    n = 0
    for sid, fj in files_json.items():
        target = Path(dest) / sid
        if target.exists():
            continue
        with atomic_path(target) as tmp:
            tmp.mkdir(parents=True)
            for role, v in json.loads(fj).items():
                for src in v if isinstance(v, list) else [v]:
                    s = Path(src) if src else None
                    if s is None or not s.exists():
                        continue
                    d = tmp / role / s.name
                    d.parent.mkdir(parents=True, exist_ok=True)
                    if s.is_dir():
                        shutil.copytree(s, d)
                    else:
                        shutil.copy2(s, d)
        n += 1
    return n

