"""Vector files: annotation polygons in (GeoPackage, shapefile, GeoJSON, FlatGeobuf, ...) and
the footprint polygons and demo annotations out (GeoPackage, optionally ESRI shapefile).

Readers validate what the labels stage needs and raise errors that name the file, the AOI /
date and the fix. Geometry repair, reprojection and class mapping are pure and live in
:mod:`pipeline.hr.labels`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, LabelError, MissingInputError
from pipeline.io.atomic import atomic_path

log = logging.getLogger(__name__)


def read_annotations(
    path: str | Path, class_attribute: str, what: str = "annotations", layer: str | None = None
) -> Any:
    """Read an annotation polygon file and check it is usable.

    Args:
        path: a vector file pyogrio can read (GeoPackage, shapefile, GeoJSON, FlatGeobuf...).
            A multi-layer file is read from ``layer`` when given, else from its first polygon
            layer (logged).
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
        raise MissingInputError(
            f"{what} file {p} does not exist: fix 'annotations' in the AOI definition (paths "
            "are relative to the directory snakemake runs in)", p
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
    names = [str(n) for n, _ in layers]
    if layer is not None:
        if layer not in names:
            raise InputError(f"{what} file {p} has no layer {layer!r} (layers: {names}): fix "
                             "'annotation_layer' in the AOI definition")
    elif len(layers) > 1:
        polygonal = [str(n) for n, g in layers if "polygon" in str(g).lower()]
        if not polygonal:
            raise InputError(f"{what} file {p} has no polygon layer (layers and geometry types: "
                             f"{[(str(n), str(g)) for n, g in layers]}): export the land-use "
                             "polygons into it, or name the layer with 'annotation_layer'")
        layer = polygonal[0]
        log.warning("%s file %s has %d layers; reading the first polygon layer, %r (set "
                    "'annotation_layer' in the AOI definition to choose another)", what, p,
                    len(layers), layer)
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


#: Shapefile field names are limited to 10 characters.
SHAPEFILE_FIELDS: dict[str, str] = {
    "patch_off_x_px": "off_x_px",
    "patch_off_y_px": "off_y_px",
    "patch_w_px": "patch_w_px",
    "patch_h_px": "patch_h_px",
}


def write_gpkg(gdf: Any, path: str | Path, layer: str | None = "footprints") -> Path:
    """Write a GeoDataFrame as a one-layer GeoPackage, atomically (replaces an old file).

    Args:
        layer: layer name; None = the file's stem.
    """
    final = Path(path)
    # the temporary keeps the .gpkg extension (GDAL's GPKG driver wants it)
    with atomic_path(final, suffix=final.suffix) as tmp:
        gdf.to_file(tmp, driver="GPKG", layer=layer or final.stem, engine="pyogrio")
    return final


def write_shapefile(gdf: Any, folder: str | Path, name: str) -> Path:
    """Write ``<folder>/<name>.shp`` (+ .shx/.dbf/.prj/.cpg); the folder is replaced atomically.

    Column names longer than 10 characters are shortened with :data:`SHAPEFILE_FIELDS`.
    """
    final = Path(folder)
    short = gdf.rename(columns=SHAPEFILE_FIELDS)
    too_long = [c for c in short.columns if c != short.geometry.name and len(c) > 10]
    if too_long:
        raise ValueError(f"shapefile field names longer than 10 characters: {too_long}")
    with atomic_path(final) as tmp:
        tmp.mkdir(parents=True)
        short.to_file(tmp / f"{name}.shp", driver="ESRI Shapefile", encoding="UTF-8")
    return final / f"{name}.shp"


def write_footprints_vector(
    polygons: Any, gpkg_path: str | Path, shapefile_dir: str | Path | None = None, aoi: str = ""
) -> list[Path]:
    """Write footprint polygons (grid CRS) as GeoPackage and optionally as shapefile.

    Args:
        polygons: GeoDataFrame with ``patch_id``, ``fp_col0``, ``fp_row0``, ``fp_size_px``,
            ``patch_off_x_px``, ``patch_off_y_px``, ``patch_w_px``, ``patch_h_px`` and the
            footprint polygons (grid CRS) as geometry.
        gpkg_path: the GeoPackage (layer ``footprints``).
        shapefile_dir: folder for ``<aoi>_footprints.shp`` (None = no shapefile).
        aoi: AOI name, used in the shapefile name.

    Returns:
        The paths written.
    """
    out = [write_gpkg(polygons, gpkg_path)]
    if shapefile_dir is not None:
        out.append(write_shapefile(polygons, shapefile_dir, f"{aoi or 'aoi'}_footprints"))
    return out


def read_feature_table(path: str | Path, what: str = "table") -> tuple[Any, Any, str | None]:
    """A table of features in any format: CSV (every column as text, empty cells kept), or
    GeoParquet / GeoJSON / GeoPackage / shapefile (through geopandas).

    Returns:
        (pandas DataFrame of the non-geometry columns, the GeoSeries or None for CSV, the
        file's CRS as a string or None).

    Raises:
        InputError: the file cannot be read.
    """
    import pandas as pd

    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(p, dtype=str, keep_default_na=False), None, None
        import geopandas as gpd

        gdf = gpd.read_parquet(p) if suffix in (".parquet", ".geoparquet") else gpd.read_file(p)
    except Exception as exc:  # pyogrio / pyarrow / pandas raise many types
        raise InputError(f"{what} {p} cannot be read ({exc}): use GeoParquet, GeoJSON, "
                         "GeoPackage or CSV") from None
    crs = gdf.crs.to_string() if gdf.crs is not None else None
    return pd.DataFrame(gdf.drop(columns=gdf.geometry.name)), gdf.geometry, crs
