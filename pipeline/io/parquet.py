"""(Geo)Parquet tables: per-AOI indices (tile, footprints, labels, change), the dataset index
``patches.parquet`` and the expansion's ``samples.parquet``. Written atomically; reads name the
file and the rule to rerun when it is missing or lacks columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import InputError, MissingInputError
from pipeline.io.atomic import atomic_path

#: Columns of the dataset index that hold geometries (dropped by :func:`read_index_table`).
GEOMETRY_COLUMNS = frozenset({"geometry", "fp_geometry_wkb", "hr_geometry_wkb"})


def write_geoparquet(gdf: Any, path: str | Path) -> None:
    """Write a GeoDataFrame (or plain DataFrame) to (Geo)Parquet atomically."""
    with atomic_path(Path(path)) as tmp:
        gdf.to_parquet(tmp, index=False)


def _missing(p: Path, what: str, fix: str) -> MissingInputError:
    return MissingInputError(
        f"{what or 'table'} {p} does not exist: {fix or 'run the stage that produces it first'}",
        p,
    )


def _corrupt(p: Path, what: str, exc: BaseException) -> InputError:
    return InputError(
        f"{what or 'table'} {p} is truncated or corrupt ({type(exc).__name__}: {exc}): delete "
        "it and run the same command again (the rule that writes it rebuilds it)"
    )


def read_geoparquet(
    path: str | Path, required: tuple[str, ...] = (), what: str = "", fix: str = ""
) -> Any:
    """Read a GeoParquet file written by :func:`write_geoparquet` (GeoDataFrame; a plain
    DataFrame when the file has no geometry).

    Args:
        path: the file.
        required: columns that must be present.
        what: how to name the file in the error, e.g. ``"tile index"``.
        fix: what the user should do when the file or columns are missing.

    Raises:
        MissingInputError: the file is missing.
        InputError: it lacks ``required`` columns (names them).
    """
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise _missing(p, what, fix)
    try:
        # geopandas (with shapely and pyproj, 0.25 s to import) only for a file that has
        # geometry: rule change reads and writes plain tables
        if b"geo" in (pq.read_schema(p).metadata or {}):
            import geopandas as gpd

            df = gpd.read_parquet(p)
        else:
            import pandas as pd

            df = pd.read_parquet(p)
    except Exception as exc:  # pyarrow's ArrowInvalid / OSError on a truncated file
        raise _corrupt(p, what, exc) from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{what or 'table'} {p} lacks columns {missing}: {fix or 'rebuild it'}")
    return df


_INDEX_FIX = "build the dataset first (snakemake --cores N) or pass the right dataset root"


def read_index_table(path: str | Path) -> Any:
    """Read the merged dataset index (``patches.parquet``) as a plain pandas DataFrame.

    The geometry columns are dropped: the dataset only needs the scalar columns, and a plain
    frame pickles cheaply into DataLoader workers.

    Raises:
        MissingInputError: the index is missing (run the ``dataset`` rule first).
    """
    import pandas as pd
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise _missing(p, "dataset index", _INDEX_FIX)
    try:
        cols = [c for c in pq.read_schema(p).names if c not in GEOMETRY_COLUMNS]
        return pd.read_parquet(p, columns=cols)
    except Exception as exc:  # pyarrow's ArrowInvalid / OSError on a truncated file
        raise _corrupt(p, "dataset index", exc) from None


def read_index_geo(path: str | Path) -> Any:
    """Read the merged dataset index with its geometry (GeoDataFrame if it has one).

    Raises:
        MissingInputError: the index is missing.
    """
    return read_geoparquet(path, what="dataset index", fix=_INDEX_FIX)
