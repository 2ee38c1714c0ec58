"""Listing a dataset release's folders (names only, no pixels): the FUSU release importer's
view of the files (:mod:`pipeline.dataset.fusu_release` interprets the names)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import MissingInputError


def list_dir(folder: str | Path) -> tuple[list[str], list[str]]:
    """(sub-folder names, file names) of ``folder``, each sorted; ``([], [])`` when it does not
    exist. Hidden entries (``.`` prefix) are left out."""
    p = Path(folder)
    if not p.is_dir():
        return [], []
    dirs: list[str] = []
    files: list[str] = []
    with os.scandir(p) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            (dirs if e.is_dir() else files).append(e.name)
    return sorted(dirs), sorted(files)


def walk_files(folder: str | Path) -> list[tuple[str, str]]:
    """Every file under ``folder`` as ``(relative folder in POSIX form, file name)``, sorted
    (``""`` for files directly in it); empty when ``folder`` does not exist."""
    root = Path(folder)
    out: list[tuple[str, str]] = []
    if not root.is_dir():
        return out
    for d, subdirs, files in os.walk(root):
        subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
        rel = Path(d).relative_to(root).as_posix()
        out += [("" if rel == "." else rel, f) for f in files if not f.startswith(".")]
    return sorted(out)


def read_id_list(path: str | Path) -> list[str]:
    """Non-empty, stripped lines of a split list file (``train.txt``: one patch name per line,
    with or without extension).

    Raises:
        MissingInputError: the file does not exist.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingInputError(f"split list {p} does not exist", p)
    return [s.strip() for s in p.read_text(encoding="utf-8").splitlines() if s.strip()]
