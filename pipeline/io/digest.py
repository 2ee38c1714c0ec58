"""The one digest module: every fingerprint that decides whether finished work is reused.

==================================  =======================================================
digest                              decides
==================================  =======================================================
:func:`json_digest`                 the Sentinel block ledger key (recipe + source identity,
                                    :func:`pipeline.sentinel.fetch.recipe_key`)
:func:`stat_digest`                 reuse of patch rasters left by an interrupted tile /
                                    label / change run (inputs' path, size, mtime + settings)
:func:`tree_stat_digest`            a scene archive month's files (part of the ledger key)
:func:`file_sha256`                 stage manifests (every covered output's content)
:func:`content_digest`              the data version a trained model records
==================================  =======================================================

Rule-level reruns are Snakemake's (declared inputs, outputs and params; see
docs/development.md, "What triggers a rerun"); these digests decide what a rerunning job may
keep. All are SHA-256 hex digests (``n`` leading digits where stated).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pipeline.io.jsonfile import write_json


def json_digest(doc: Any, n: int = 64) -> str:
    """SHA-256 of ``doc`` as canonical JSON (sorted keys, ``str`` for other types); the first
    ``n`` hex digits."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:n]


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stat_digest(paths: Sequence[str | Path | None], extra: Any = None) -> str:
    """Digest of ``extra`` (JSON-able settings) and each path's absolute name, size and mtime
    (a missing path counts by name): tells whether rasters left by an earlier run were made
    from the same inputs and settings."""
    items: list[Any] = [extra]
    for p in paths:
        if p is None:
            items.append(None)
            continue
        q = Path(p)
        try:
            st = q.stat()
            items.append([str(q.resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            items.append([str(q), None, None])
    return json_digest(items)


def tree_stat_digest(files: Iterable[Path], base: str | Path, n: int = 16) -> str:
    """Digest of files' paths relative to ``base``, sizes and mtimes (in the given order)."""
    items = []
    for f in files:
        st = f.stat()
        items.append([f.relative_to(base).as_posix(), st.st_size, st.st_mtime_ns])
    return json_digest(items, n)


def content_digest(paths: Iterable[Path | str], n: int = 16) -> str:
    """Digest over the names and bytes of ``paths`` (sorted; a missing file counts by name
    only): equal digests = the same data."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        h.update(p.name.encode())
        if p.is_file():
            with p.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:n]


def read_fingerprint(path: str | Path) -> str | None:
    """The digest stored by :func:`write_fingerprint`, or None (missing / corrupt)."""
    try:
        return str(json.loads(Path(path).read_text())["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_fingerprint(path: str | Path, fingerprint: str) -> None:
    """Store a digest atomically (``{"fingerprint": ...}``)."""
    write_json(path, {"fingerprint": fingerprint})
