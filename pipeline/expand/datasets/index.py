"""Layout ``index``: a generic patch index file (GeoParquet / GeoJSON / GeoPackage / shapefile
or CSV); see :mod:`pipeline.expand.datasets`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.expand.adapters import SampleRecord, detect_change_encoding, parse_date
from pipeline.expand.datasets.common import GEO_EXT, label_encoding
from pipeline.io.raster import inspect_raster, label_counts
from pipeline.io.vector import read_feature_table

ID_COLS = ("id", "sample_id", "patch_id", "name")
_PATH_COLS = ("hr_t1", "hr_t2", "label", "label_t1", "label_t2")


def _resolve(base: Path, value: Any) -> str:
    text = "" if value is None else str(value).strip()
    if text.lower() in ("", "nan", "none"):
        return ""
    p = Path(text)
    return str(p if p.is_absolute() else base / p)


def read_index(path: str | Path) -> list[SampleRecord]:
    """Records of a generic patch index (module docstring, layout ``index``).

    Raises:
        InputError: missing file / columns, no CRS, missing dates, referenced files missing.
    """

    p = Path(path)
    if p.is_dir():
        raise InputError(
            f"patch index {p} is a folder: point expand.path at the index file itself (.csv, "
            ".parquet or .gpkg), or use expand.adapter 'pairs' for a folder of image pairs"
        )
    if not p.is_file():
        raise InputError(f"patch index {p} does not exist: fix expand.path")
    df, geoms, file_crs = read_feature_table(p, "patch index")
    cols = {c.lower(): c for c in df.columns}
    id_col = next((cols[c] for c in ID_COLS if c in cols), None)
    if id_col is None:
        raise InputError(f"patch index {p}: no id column: add one named 'id'")
    has_bounds = all(c in cols for c in ("minx", "miny", "maxx", "maxy"))
    if geoms is None and not has_bounds and "geometry" not in cols:
        raise InputError(
            f"patch index {p}: no geometry: add columns minx, miny, maxx, maxy and crs (or a "
            "WKT 'geometry' column)"
        )
    if geoms is None and "geometry" in cols and not has_bounds:
        import shapely

        geoms = shapely.from_wkt(df[cols["geometry"]].to_numpy())
    base = p.parent
    out = []
    for i, row in enumerate(df.to_dict("records")):
        sid = str(row[id_col]).strip()
        where = f"{p} row {i + 1} (id {sid!r})"
        if not sid or sid.lower() == "nan":
            raise InputError(f"{p} row {i + 1}: empty id: give every sample an id")
        row_crs = str(row.get(cols.get("crs", ""), "") or "").strip()
        # polygons of a geo file are in the file's CRS; bounds / WKT columns in the row's
        crs = file_crs if (file_crs and not has_bounds) else (row_crs or file_crs)
        if crs and crs.isdigit():
            crs = f"EPSG:{crs}"
        if has_bounds:
            b = (float(row[cols["minx"]]), float(row[cols["miny"]]), float(row[cols["maxx"]]),
                 float(row[cols["maxy"]]))
        else:
            assert geoms is not None  # no bounds columns: the file has geometries
            g = geoms.iloc[i] if hasattr(geoms, "iloc") else geoms[i]
            if g is None or g.is_empty:
                raise InputError(f"{where}: empty geometry: give the patch polygon")
            gb = g.bounds
            b = (float(gb[0]), float(gb[1]), float(gb[2]), float(gb[3]))
        if "dates" in cols and str(row[cols["dates"]]).strip():
            raw = [d for d in re.split(r"[;|]", str(row[cols["dates"]])) if d.strip()]
        else:
            raw = [row.get(cols.get("t1", ""), None), row.get(cols.get("t2", ""), None)]
        dates = tuple(parse_date(d, where) for d in raw)
        files = {}
        for c in _PATH_COLS:
            if c in cols:
                v = _resolve(base, row[cols[c]])
                if v:
                    if not Path(v).exists():
                        raise InputError(f"{where}: {c} file {v} does not exist: fix the path "
                                         "(relative paths are relative to the index file)")
                    files[c.replace("hr_", "")] = v
        gsd = row.get(cols.get("gsd_m", ""), None)
        w = h = None
        gsd_f = float(gsd) if gsd not in (None, "", "nan") else None
        enc = ""
        if files.get("t1") and Path(files["t1"]).suffix.lower() in GEO_EXT:
            info = inspect_raster(files["t1"], f"T1 image of sample {sid!r}", georeferenced=False)
            w, h = info.width, info.height
            gsd_f = gsd_f or info.gsd_m
            enc = label_encoding(files.get("label"), info, sid)
        elif files.get("label"):
            enc = detect_change_encoding(label_counts(files["label"]), "auto", files["label"])
        city = str(row.get(cols.get("city", ""), "") or "")
        out.append(SampleRecord(sid, crs, b, dates, gsd_f, w, h, files,
                                city if city != "nan" else "", enc, where))
    return out
