"""Vector outputs of the HR side: footprint polygons as GeoPackage (and ESRI shapefile).

Annotation polygon *reading* lives in :mod:`pipeline.io.annotations`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.io import atomic_path

#: Shapefile field names are limited to 10 characters.
SHAPEFILE_FIELDS: dict[str, str] = {
    "patch_off_x_px": "off_x_px",
    "patch_off_y_px": "off_y_px",
    "patch_w_px": "patch_w_px",
    "patch_h_px": "patch_h_px",
}


def write_gpkg(gdf: Any, path: str | Path, layer: str = "footprints") -> Path:
    """Write a GeoDataFrame as a one-layer GeoPackage, atomically (replaces an old file)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # keep the .gpkg extension on the temporary (GDAL warns otherwise)
    tmp = final.parent / f".{final.stem}.tmp-{os.getpid()}{final.suffix}"
    try:
        tmp.unlink(missing_ok=True)
        gdf.to_file(tmp, driver="GPKG", layer=layer)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
