"""Stage manifests: every file a stage writes besides its declared Snakemake output (patch
GeoTIFFs, the Sentinel cube's chunks), with its size, modification time and SHA-256.

A manifest is written just before the stage's declared output. :func:`check_manifest` (stat
only by default: cheap enough to run when the Snakefile is parsed, ~1 s for 300k files) finds
covered files that were deleted, truncated or rewritten since; the workflow then drops the
declared output so Snakemake rebuilds just that stage (which reuses every file that is still
intact). A file changed in place with its size and mtime kept is found by the checksums: when
the next stage reads it (:class:`RecordedFiles`), or at start with ``verify_checksums: true``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.io.digest import file_sha256
from pipeline.io.jsonfile import read_json_if_exists, write_json

VERSION = 1


def file_entries(root: Path, files: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """``{path relative to root: {size, mtime_ns, sha256}}`` of existing files."""
    out: dict[str, dict[str, Any]] = {}
    for f in files:
        p = Path(f)
        st = p.stat()
        out[p.relative_to(root).as_posix()] = {
            "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(p),
        }
    return out


def tree_files(folder: Path) -> list[Path]:
    """Every regular file below ``folder`` (sorted; temporaries and hidden files left out)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def write_manifest(path: Path, root: Path, stage: str, files: Iterable[Path]) -> None:
    """Record ``files`` (below ``root``) as the outputs of ``stage``."""
    write_json(path, {"version": VERSION, "stage": stage, "files": file_entries(root, files)})


def check_manifest(path: Path, root: Path, checksums: bool = False) -> list[str]:
    """Problems with the files a manifest covers: ``"<file>: missing"``, ``"<file>: size
    changed"``, ``"<file>: modified"`` (mtime; with ``checksums``, content). An absent or
    unreadable manifest covers nothing (returns [])."""
    doc = None
    try:
        doc = read_json_if_exists(path)
    except Exception:  # an unreadable manifest: the stage output is rebuilt by its own checks
        return [f"{path}: unreadable manifest"]
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return []
    problems = []
    for rel, e in doc.get("files", {}).items():
        p = root / rel
        try:
            st = p.stat()
        except FileNotFoundError:
            problems.append(f"{rel}: missing")
            continue
        if st.st_size != e["size"]:
            problems.append(f"{rel}: size changed")
        elif st.st_mtime_ns != e["mtime_ns"] or (checksums and file_sha256(p) != e["sha256"]):
            problems.append(f"{rel}: modified")
    return problems


class RecordedFiles:
    """The SHA-256 a stage's manifest recorded for its files at write time, checked when a later
    stage reads one of them (an HR patch read by ``labels``, a label read by ``change``)."""

    def __init__(self, manifest: Path, root: Path) -> None:
        self.manifest, self.root = Path(manifest), Path(root)
        doc = read_json_if_exists(self.manifest)
        files = doc.get("files", {}) if isinstance(doc, dict) else {}
        self.stage = str(doc.get("stage", "?")) if isinstance(doc, dict) else "?"
        self._sha = {rel: str(e.get("sha256")) for rel, e in files.items() if isinstance(e, dict)}

    def check(self, path: Path, what: str) -> bool:
        """Raise when ``path`` no longer holds the bytes its stage wrote. Returns True when it
        was verified (it holds exactly those bytes), False when nothing was checked: a file
        the manifest does not cover, an absent manifest, or a missing file (the reader then
        says it is missing).

        Raises:
            InputError: naming the file, the manifest and the command that rebuilds it.
        """
        try:
            rel = Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return False
        expected = self._sha.get(rel)
        if expected is None or not Path(path).is_file():
            return False
        if file_sha256(path) == expected:
            return True
        raise InputError(
            f"{what} {path}: its bytes differ from what rule {self.stage} wrote (SHA-256 in "
            f"{self.manifest}): the file was modified or corrupted in place. Run the workflow "
            "with `--config verify_checksums=true` once: it checks every file's checksum and "
            f"rebuilds rule {self.stage}'s outputs"
        )


def _unreadable(declared: Path) -> list[str]:
    """A declared Parquet index whose footer cannot be read (truncated, corrupt): one problem
    line, else []. Reads the footer only (a few KB)."""
    if declared.suffix != ".parquet" or not declared.is_file():
        return []
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(declared)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError
        return [f"{declared.name}: unreadable ({exc})"]
    return []


def invalidate_broken_outputs(
    covered: dict[str, tuple[Path, Path]], root: Path, checksums: bool = False
) -> dict[str, list[str]]:
    """For each ``stage: (manifest, declared output)`` whose declared output exists but whose
    covered files are missing or changed (size, mtime; with ``checksums`` also content), or
    which is itself an unreadable Parquet index, remove the declared output (and the manifest)
    so that Snakemake rebuilds that stage. Returns ``{stage: problems}`` of the stages
    invalidated."""
    from pipeline.io.atomic import remove_tree

    out: dict[str, list[str]] = {}
    for stage, (manifest, declared) in covered.items():
        if not declared.exists():
            continue
        problems = check_manifest(manifest, root, checksums) + _unreadable(declared)
        if problems:
            remove_tree(declared)
            remove_tree(manifest)
            out[stage] = problems
    return out
