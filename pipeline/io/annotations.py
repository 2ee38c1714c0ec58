"""Annotation I/O: polygon files (GeoPackage, shapefile, GeoJSON, ...) and class-mapping CSVs.

Readers validate what the labels stage needs and raise errors that name the file, the AOI /
date and the fix. Geometry repair, reprojection and class mapping are pure and live in
:mod:`pipeline.labels`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, LabelError

log = logging.getLogger(__name__)


def read_annotations(path: str | Path, class_attribute: str, what: str = "annotations") -> Any:
    """Read an annotation polygon file and check it is usable.

    Args:
        path: a vector file pyogrio can read (GeoPackage, shapefile, GeoJSON, FlatGeobuf...).
            A multi-layer file is read from its first layer (logged).
        class_attribute: attribute (column) holding the class code or name.
        what: description for messages, e.g. ``"AOI 'demo' T1 annotations"``.

    Returns:
        GeoDataFrame with a CRS, at least one feature and the ``class_attribute`` column,
        in file order (feature order matters for ``overlap_rule: last``).

    Raises:
        InputError: missing/unreadable file, no features, no CRS.
        LabelError: the class attribute is missing (the message lists the attributes found).
    """
    import geopandas as gpd
    import pyogrio

    p = Path(path)
    if not p.exists():
        raise InputError(
            f"{what} file {p} does not exist: fix 'annotations' in the AOI definition (paths "
            "are relative to the directory snakemake runs in)"
        )
    try:
        layers = pyogrio.list_layers(p)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise InputError(
            f"{what} file {p} cannot be read as a vector file ({exc}): export the polygons as "
            "GeoPackage, shapefile or GeoJSON"
        ) from None
    if len(layers) == 0:
        raise InputError(f"{what} file {p} has no layers: export the polygons into it")
    layer = None
    if len(layers) > 1:
        layer = str(layers[0][0])
        log.warning("%s file %s has %d layers; reading the first, %r", what, p, len(layers), layer)
    try:
        gdf = gpd.read_file(p, layer=layer, engine="pyogrio")
    except Exception as exc:
        raise InputError(
            f"{what} file {p} cannot be read ({exc}): check the file or re-export it"
        ) from None
    if len(gdf) == 0:
        raise InputError(
            f"{what} file {p} has no features: export the annotation polygons into it (an "
            "area without land use still needs polygons, or use a class_mapping to background)"
        )
    if gdf.crs is None:
        raise InputError(
            f"{what} file {p} has no CRS: assign the polygons' CRS (e.g. in QGIS, or "
            f"`ogr2ogr -a_srs EPSG:XXXX out.gpkg {p.name}`)"
        )
    if class_attribute not in gdf.columns:
        cols = [c for c in gdf.columns if c != gdf.geometry.name]
        raise LabelError(
            f"{what} file {p} has no attribute {class_attribute!r} (attributes: {cols}): set "
            "'class_attribute' in the AOI definition to the attribute holding the class"
        )
    return gdf


def read_class_mapping(path: str | Path, what: str = "class mapping") -> list[tuple[str, str]]:
    """Read a class-mapping CSV with header ``source,target`` (extra columns are ignored).

    Returns:
        ``[(source, target), ...]`` as stripped strings, in file order. Interpretation (codes
        or names, validation against the schema) is done by
        :func:`pipeline.labels.parse_class_mapping`.

    Raises:
        InputError: missing/unreadable file, missing columns, no rows, or an empty cell.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"{what} CSV {p} does not exist: fix 'class_mapping' in the AOI definition"
        )
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:
        raise InputError(f"{what} CSV {p} cannot be read ({exc}): save it as plain CSV") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if "source" not in df.columns or "target" not in df.columns:
        raise InputError(
            f"{what} CSV {p} needs a header with columns 'source,target' (found "
            f"{list(df.columns)}): add the header line"
        )
    if len(df) == 0:
        raise InputError(f"{what} CSV {p} has no rows: add one 'source,target' line per class")
    rows: list[tuple[str, str]] = []
    for i, (s, t) in enumerate(zip(df["source"], df["target"], strict=True)):
        s, t = str(s).strip(), str(t).strip()
        if not s or not t:
            raise InputError(
                f"{what} CSV {p}, line {i + 2}: empty source or target: fill in both cells"
            )
        rows.append((s, t))
    return rows
