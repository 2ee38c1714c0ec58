"""Atomic writes: the one mechanism every writer in :mod:`pipeline.io` uses.

Every output is written to a temporary sibling (``.<name>.tmp-<pid>`` for paths and folders,
``.<name>.<random>.tmp`` for byte blobs) and renamed into place, so a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.errors import PipelineError, WriteError

log = logging.getLogger(__name__)

#: errno values that mean "the output cannot be written here" (not a bug in the pipeline)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


#: Free bytes under which a failed write is reported as "no space left" (GDAL reports a full
#: disk only to its own log, then "Write failed" / "Read failed").
DISK_FULL_BYTES = 1 << 20


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing folder); None when
    it cannot be told."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return None


def write_error(path: str | Path, exc: BaseException) -> WriteError | None:
    """The :class:`WriteError` for ``exc`` raised while writing ``path``, or None when ``exc`` is
    not a write failure (disk full, quota, read-only file system, permission denied; also
    GDAL's messages of the same, and any failure while the disk has under 1 MiB free)."""
    text = str(exc).lower()
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    full = full or "no space left" in text or "disk quota" in text
    if not full:
        free = free_bytes(path)
        full = free is not None and free < DISK_FULL_BYTES
    denied = isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    denied = denied or "read-only file system" in text or "permission denied" in text
    if full:
        return WriteError(f"no space left on the device writing {path}: free space (or set "
                          "results_dir to a larger disk) and rerun the same command; finished "
                          "outputs are kept")
    if denied:
        return WriteError(f"cannot write {path} ({exc}): make its folder writable (or set "
                          "results_dir elsewhere) and rerun")
    return None


def _make_parent(final: Path) -> None:
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        err = write_error(final, exc)
        if err is not None:
            raise err from exc
        raise


#: This machine, as it appears in temporary names (letters, digits and '_').
HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:32] or "host"
_TMP_RE = re.compile(
    r"^\.(?P<name>.+)\.tmp-(?:(?P<host>[A-Za-z0-9_]+)-)?(?P<pid>\d+)(?:[-.].*)?$"
)
#: A temporary of another machine (shared file systems) counts as abandoned after this long.
FOREIGN_TMP_AGE_S = 24 * 3600.0
_SWEPT: set[Path] = set()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_temporaries(folder: str | Path, force: bool = False) -> list[Path]:
    """Remove the temporaries (``.<name>.tmp-<host>-<pid>...``) that processes killed mid-write
    left in ``folder``: those of processes of this machine that no longer run, and those of
    other machines (a shared file system) untouched for :data:`FOREIGN_TMP_AGE_S`. Done once per
    folder and process (``force`` repeats it); returns what was removed."""
    d = Path(folder)
    if (d in _SWEPT and not force) or not d.is_dir():
        return []
    _SWEPT.add(d)
    removed = []
    now = time.time()
    for p in d.iterdir():
        m = _TMP_RE.match(p.name)
        if m is None:
            continue
        pid = int(m["pid"])
        if m["host"] == HOST:
            stale = pid != os.getpid() and not _pid_alive(pid)
        else:  # another machine's (or an older naming): only when it is long abandoned
            try:
                stale = now - p.lstat().st_mtime > FOREIGN_TMP_AGE_S
            except FileNotFoundError:
                continue
        if stale:
            _remove(p)
            removed.append(p)
    if removed:
        log.info("removed %d temporaries of interrupted runs in %s", len(removed), d)
    return removed


def temp_path(final: Path, suffix: str = "") -> Path:
    """This process's temporary for ``final``: ``.<name>.tmp-<host>-<pid><suffix>`` beside it."""
    return final.parent / f".{final.name}.tmp-{HOST}-{os.getpid()}{suffix}"


def adopt_temporary(final: str | Path, accept: Callable[[Path], bool]) -> bool:
    """Take over the temporary folder a killed run of this machine left for ``final`` (its
    pid no longer runs) when ``accept(folder)`` says it was made from the same inputs: it is
    renamed to this process's temporary, so :func:`atomic_path` with ``keep=True`` resumes in
    it. Returns whether one was adopted."""
    target = Path(final)
    if not target.parent.is_dir():
        return False
    mine = temp_path(target)
    for p in sorted(target.parent.iterdir()):
        m = _TMP_RE.match(p.name)
        if (m is None or m["name"] != target.name or m["host"] != HOST or not p.is_dir()
                or int(m["pid"]) == os.getpid() or _pid_alive(int(m["pid"]))):
            continue
        if accept(p):
            if mine.exists():
                _remove(mine)
            os.replace(p, mine)
            log.info("resuming in the temporary %s of an interrupted run", p.name)
            return True
    return False


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "", keep: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Works for files and directories (e.g. a Zarr store or a folder of PNGs). On exception the
    temporary is removed and ``path`` is left untouched. ``suffix`` ends the temporary's name
    (for drivers that want an extension, e.g. ``.gpkg``). Temporaries that killed runs left
    beside ``path`` are swept first (:func:`sweep_temporaries`); ``keep`` keeps this
    process's own temporary when it exists (adopted with :func:`adopt_temporary`). When
    ``path`` is a symbolic link (an output folder linked to another disk), the link is kept
    and its target is replaced, atomically, beside the target.
    """
    final = Path(path)
    if final.is_symlink():
        final = final.resolve()
    _make_parent(final)
    sweep_temporaries(final.parent)
    tmp = temp_path(final, suffix)
    if tmp.exists() and not keep:
        _remove(tmp)
    try:
        yield tmp
        if final.exists() and final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as exc:
        if tmp.exists():
            _remove(tmp)
        err = write_error(final, exc) if isinstance(exc, Exception) else None  # not Ctrl-C
        if isinstance(exc, PipelineError) and not (err and "no space left" in str(err)):
            err = None  # our own message stands, unless the disk is full
        if err is not None:
            raise err from exc
        raise


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask (read and restored; ``os.umask`` has no read-only form)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Mode of files written by :func:`write_bytes_atomic`: what ``open()`` would give (0666 minus
#: the umask), not mkstemp's private 0600.
FILE_MODE = 0o666 & ~_umask()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (fsync'd temp file + rename); the file gets the
    mode a plain ``open()`` would give it (the umask's, see :data:`FILE_MODE`)."""
    final = Path(path)
    _make_parent(final)
    sweep_temporaries(final.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=final.parent,
                                   prefix=f".{final.name}.tmp-{HOST}-{os.getpid()}-")
    except OSError as exc:
        err = write_error(final, exc)
        if err is not None:
            raise err from exc
        raise
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        err = write_error(final, exc)
        if err is not None:
            raise err from exc
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode())


def write_lines(path: str | Path, lines: list[str]) -> None:
    """Write one item per line (``"a\\nb\\n"``; an empty list gives an empty file), atomically."""
    write_bytes_atomic(path, "".join(f"{x}\n" for x in lines).encode())


def dir_is_nonempty(path: str | Path) -> bool:
    """True when ``path`` is a folder holding at least one entry."""
    p = Path(path)
    return p.is_dir() and any(p.iterdir())


def remove_tree(path: str | Path) -> None:
    """Delete a file or folder if it exists (no error when it does not)."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        _remove(p)


def set_public_modes(folder: str | Path) -> None:
    """Make a finished output folder world-readable (0755) and its files 0644."""
    p = Path(folder)
    for f in p.iterdir():
        f.chmod(0o644)
    p.chmod(0o755)


def remove_empty_dir(path: str | Path) -> None:
    """Remove ``path`` if it is an empty folder (used to undo folders a failed run created)."""
    p = Path(path)
    if p.is_dir() and not any(p.iterdir()):
        p.rmdir()


def ensure_dir(path: str | Path) -> Path:
    """Create a folder (and its parents) if needed; returns it."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p
