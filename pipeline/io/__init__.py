"""All file I/O of the pipeline lives in this package (DESIGN.md: "io.py").

``pipeline.io`` is a package rather than one module so that each kind of file has its own
small module (``raster``, ``vector``, ``mosaic``, ...); pure modules never open files
themselves. This module holds the shared helpers: atomic writes, JSON, GeoParquet.

Atomic-write rule: every output is written to a temporary sibling (``.<name>.tmp-<pid>``) and
renamed into place, so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Works for files and directories (e.g. a Zarr store or a folder of PNGs). On exception the
    temporary is removed and ``path`` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        _remove(tmp)
    try:
        yield tmp
        if final.exists() and final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.exists():
            _remove(tmp)
        raise


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (fsync'd temp file + rename)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as pretty, key-sorted JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    write_bytes_atomic(path, text.encode())


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: str | Path) -> Any:
    """Read JSON; a missing or corrupt file is an InputError naming the path."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} does not exist: run the stage that produces it first")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{p} is not valid JSON ({exc}); delete it and rerun its stage") from None


def write_geoparquet(gdf: Any, path: str | Path) -> None:
    """Write a GeoDataFrame (or plain DataFrame) to (Geo)Parquet atomically."""
    import geopandas as gpd

    final = Path(path)
    with atomic_path(final) as tmp:
        if isinstance(gdf, gpd.GeoDataFrame):
            gdf.to_parquet(tmp, index=False)
        else:
            gdf.to_parquet(tmp, index=False)


def read_geoparquet(
    path: str | Path, required: tuple[str, ...] = (), what: str = "", fix: str = ""
) -> Any:
    """Read a GeoParquet file written by :func:`write_geoparquet` (GeoDataFrame; a plain
    DataFrame when the file has no geometry).

    Args:
        path: the file.
        required: columns that must be present.
        what: how to name the file in the error, e.g. ``"tile index"``.
        fix: what the user should do when columns are missing.

    Raises:
        InputError: the file is missing, or lacks ``required`` columns (names them).
    """
    import geopandas as gpd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} does not exist: run the stage that produces it first")
    try:
        df = gpd.read_parquet(p)
    except ValueError:
        import pandas as pd

        df = pd.read_parquet(p)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{what or 'table'} {p} lacks columns {missing}: {fix or 'rebuild it'}")
    return df
