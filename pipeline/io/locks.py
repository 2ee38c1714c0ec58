"""Snakemake's working-directory lock after a killed run.

Snakemake locks the working directory (``.snakemake/locks/``) while it runs and removes the
lock when it ends; a run killed with SIGKILL (a node failure, an out-of-memory kill, ``kill
-9``) leaves it behind, and the next run refuses to start until ``snakemake --unlock``. The
Snakefile calls :func:`clear_stale_locks` when it is parsed by a user's run: when no other
Snakemake process works in this folder (Linux ``/proc``), the leftover lock is removed, so the
same command resumes. Where processes cannot be listed, locks are left alone.
"""

from __future__ import annotations

import os
from pathlib import Path


def _ancestors() -> set[int]:
    """This process and its parents (Linux ``/proc``; just this process elsewhere)."""
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def other_snakemake_in(workdir: str | Path) -> bool | None:
    """True when another Snakemake process (not this one or its parents) has ``workdir`` as
    its working directory; None when processes cannot be listed (no ``/proc``)."""
    proc = Path("/proc")
    if not (proc / "self").exists():
        return None
    target = Path(workdir).resolve()
    mine = _ancestors()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"snakemake" not in cmdline:
                continue
            if Path(os.readlink(entry / "cwd")).resolve() == target:
                return True
        except OSError:  # gone meanwhile, or another user's
            continue
    return False


def clear_stale_locks(workdir: str | Path) -> list[Path]:
    """Remove the lock files of ``workdir/.snakemake/locks`` when no other Snakemake process
    works in ``workdir``; returns the files removed ([] when there were none, or when another
    run holds them, or when that cannot be told)."""
    locks = sorted((Path(workdir) / ".snakemake" / "locks").glob("*.lock"))
    if not locks or other_snakemake_in(workdir) is not False:
        return []
    removed = []
    for lock in locks:
        try:
            lock.unlink()
            removed.append(lock)
        except FileNotFoundError:
            continue
    return removed
