"""Readers of foreign change-dataset layouts for the expansion paradigm (``expand.adapter``).

Each reader returns :class:`pipeline.expand.adapters.SampleRecord` objects (id, CRS, bounds,
dates, paths to the original files); :func:`pipeline.expand.adapters.build_sample_index` turns
them into the sample index. Nothing is copied or re-tiled; paths are stored as found (relative
paths of an index file are resolved against the index file's folder).

Layouts
-------
``index``
    A patch index file: GeoParquet / GeoJSON / GeoPackage / shapefile (polygons in the file's
    CRS) or CSV. Columns: ``id`` (or ``sample_id`` / ``patch_id`` / ``name``); geometry, or a
    WKT ``geometry`` column, or ``minx, miny, maxx, maxy`` (CSV: with a per-row ``crs`` column,
    so rows may use different CRSs); ``t1``, ``t2`` (or ``dates`` separated by ``;``);
    optional ``hr_t1``, ``hr_t2``, ``label``, ``label_t1``, ``label_t2``, ``city``, ``gsd_m``.
``pairs``
    ``<root>/{t1,t2}/<id>.tif`` (also ``A/B``, ``im1/im2``, ``time1/time2``), optional
    ``<root>/label/<id>.*``; georeferenced GeoTIFFs (any CRS, may differ per pair). Dates from
    ``expand.dates_file`` or ``<root>/dates.csv`` (``id,t1,t2``; id ``*`` = every pair) or
    ``<root>/dates.json`` (``{"t1": .., "t2": ..}`` or ``{"<id>": {"t1": .., "t2": ..}}``).
``oscd``
    Onera Satellite Change Detection: ``<root>/<city>/imgs_1/*.tif`` and ``imgs_2/`` (one
    GeoTIFF per band; ``imgs_1_rect/`` preferred for the georeferencing when present),
    ``<city>/dates.txt`` (``date_1: YYYYMMDD`` / ``date_2: YYYYMMDD``), labels in
    ``<city>/cm/`` or a sibling ``*Labels*/<city>/cm/`` folder. Label values: the public
    release stores 1 = no change, 2 = change (its README says 0/1); the detected convention is
    recorded in ``label_encoding`` (see :func:`pipeline.expand.adapters.change_to_binary`).
``spacenet7``
    ``<root>/[train/]<aoi>/images/global_monthly_YYYY_MM_mosaic_<aoi>.tif`` with
    ``labels[_match]/<stem>_Buildings.geojson``: one multi-date sample per AOI whose dates are
    the first day of each mosaic's month (months run first..last).
``dynamicearthnet``, ``xbd``
    :mod:`pipeline.io.change_datasets_den` and :mod:`pipeline.io.change_datasets_xbd`.
``aoi``
    AOI definition YAML files with ``extent_wgs84`` (e.g. ``aoi/fusu-*.yaml`` templates): a
    synthetic tiling for plan-only runs.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, InputError
from pipeline.expand.adapters import (
    SampleRecord,
    detect_change_encoding,
    no_georef_error,
    parse_date,
    template_records,
)
from pipeline.io.raster import label_counts, raster_info

log = logging.getLogger(__name__)

_IMG_EXT = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
_GEO_EXT = (".tif", ".tiff")
_PAIR_DIRS = (("t1", "t2"), ("T1", "T2"), ("A", "B"), ("im1", "im2"), ("time1", "time2"))
_LABEL_DIRS = ("label", "labels", "OUT", "cm", "mask")
_SN7_RE = re.compile(r"global_monthly_(\d{4})_(\d{2})_mosaic")


def _georef(path: Path, what: str) -> dict[str, Any]:
    """:func:`pipeline.io.raster.raster_info` of a georeferenced GeoTIFF, else the error that
    says the sample cannot be placed."""
    if path.suffix.lower() not in _GEO_EXT:
        raise no_georef_error(path, what)
    info = raster_info(path)
    if info["crs"] is None:
        raise no_georef_error(path, what)
    return info


def _check_label_shape(label: Path, info: dict[str, Any], sample: str) -> None:
    """A change label must cover the image pixel for pixel."""
    lab = raster_info(label)
    if (lab["width"], lab["height"]) != (info["width"], info["height"]):
        raise InputError(
            f"{label}: label of sample {sample!r} is {lab['width']}x{lab['height']} px but its "
            f"image is {info['width']}x{info['height']} px: the label must be on the image's "
            "pixel grid (same size)"
        )


def _label_encoding(label: str | Path | None, info: dict[str, Any], sample: str) -> str:
    """The change-label convention of a sample's label file ("" without one), auto-detected,
    after checking the label's shape against the image."""
    if not label:
        return ""
    _check_label_shape(Path(label), info, sample)
    return detect_change_encoding(label_counts(label), "auto", str(label))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMG_EXT)


# --------------------------------------------------------------------------- index


_ID_COLS = ("id", "sample_id", "patch_id", "name")
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
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        raise InputError(
            f"patch index {p} is a folder: point expand.path at the index file itself (.csv, "
            ".parquet or .gpkg), or use expand.adapter 'pairs' for a folder of image pairs"
        )
    if not p.is_file():
        raise InputError(f"patch index {p} does not exist: fix expand.path")
    suffix = p.suffix.lower()
    geoms = None
    if suffix == ".csv":
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
        file_crs = None
    else:
        import geopandas as gpd

        try:
            gdf = gpd.read_parquet(p) if suffix in (".parquet", ".geoparquet") else gpd.read_file(p)
        except Exception as exc:  # pyogrio / pyarrow raise many types
            raise InputError(f"patch index {p} cannot be read ({exc}): use GeoParquet, "
                             "GeoJSON, GeoPackage or CSV") from None
        file_crs = gdf.crs.to_string() if gdf.crs is not None else None
        geoms = gdf.geometry
        df = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    cols = {c.lower(): c for c in df.columns}
    id_col = next((cols[c] for c in _ID_COLS if c in cols), None)
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
        if files.get("t1") and Path(files["t1"]).suffix.lower() in _GEO_EXT:
            info = raster_info(files["t1"])
            w, h = info["width"], info["height"]
            gsd_f = gsd_f or info["gsd_m"]
            enc = _label_encoding(files.get("label"), info, sid)
        elif files.get("label"):
            enc = detect_change_encoding(label_counts(files["label"]), "auto", files["label"])
        city = str(row.get(cols.get("city", ""), "") or "")
        out.append(SampleRecord(sid, crs, b, dates, gsd_f, w, h, files,
                                city if city != "nan" else "", enc, where))
    return out


# --------------------------------------------------------------------------- pairs


def _read_dates_table(path: Path) -> dict[str, tuple[Any, Any]]:
    """{id: (t1, t2)} from a dates CSV / JSON (id '*' = every pair)."""
    if not path.is_file():
        raise InputError(f"dates file {path} does not exist: fix expand.dates_file")
    if path.suffix.lower() == ".json":
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"dates file {path} is not valid JSON ({exc})") from None
        if isinstance(d, dict) and "t1" in d and "t2" in d:
            return {"*": (d["t1"], d["t2"])}
        return {str(k): (v.get("t1"), v.get("t2")) for k, v in d.items() if isinstance(v, dict)}
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    cols = {c.lower().strip(): c for c in df.columns}
    id_col = next((cols[c] for c in _ID_COLS if c in cols), None)
    if id_col is None or "t1" not in cols or "t2" not in cols:
        raise InputError(f"dates file {path}: needs columns id, t1, t2 (id '*' = every pair)")
    return {str(r[id_col]).strip(): (r[cols["t1"]], r[cols["t2"]]) for r in df.to_dict("records")}


def scan_pairs(root: str | Path, dates_file: str | None = None) -> list[SampleRecord]:
    """Records of a folder of georeferenced T1/T2 pairs (layout ``pairs``).

    Raises:
        InputError: no T1/T2 folders, unmatched files, no georeferencing (sidecar help),
            missing dates (listing the pairs).
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"pairs folder {r} does not exist: fix expand.path")
    pair = next(((r / a, r / b) for a, b in _PAIR_DIRS if (r / a).is_dir() and (r / b).is_dir()),
                None)
    if pair is None:
        loose = _images(r)
        if loose:
            raise no_georef_error(loose[0], "pair folder") if loose[0].suffix.lower() not in \
                _GEO_EXT else InputError(
                    f"{r}: put T1 and T2 images in sub-folders t1/ and t2/ with matching names")
        raise InputError(
            f"{r}: no T1/T2 sub-folders ({', '.join(a + '/' + b for a, b in _PAIR_DIRS)}): "
            "arrange the pairs as <root>/t1/<id>.tif and <root>/t2/<id>.tif"
        )
    d1, d2 = pair
    label_dir = next((r / n for n in _LABEL_DIRS if (r / n).is_dir()), None)
    t2_by_stem = {p.stem: p for p in _images(d2)}
    if dates_file:
        dp: Path | None = Path(dates_file)
    else:
        dp = next((r / n for n in ("dates.csv", "dates.json") if (r / n).is_file()), None)
    table = _read_dates_table(dp) if dp is not None else {}
    out, missing = [], []
    for f1 in _images(d1):
        sid = f1.stem
        f2 = t2_by_stem.get(sid)
        if f2 is None:
            raise InputError(f"{f1}: no T2 image named {sid}.* in {d2}: add it or remove {f1}")
        info = _georef(f1, "T1 image")
        _georef(f2, "T2 image")
        dates = table.get(sid, table.get("*"))
        if dates is None:
            missing.append(sid)
            continue
        files: dict[str, Any] = {"t1": str(f1), "t2": str(f2)}
        if label_dir is not None:
            lab = sorted(label_dir.glob(f"{sid}.*"))
            if lab:
                files["label"] = str(lab[0])
        where = f"{dp or r} (pair {sid!r})"
        out.append(SampleRecord(
            sid, info["crs"], info["bounds"],
            (parse_date(dates[0], where), parse_date(dates[1], where)),
            info["gsd_m"], info["width"], info["height"], files, "",
            _label_encoding(files.get("label"), info, sid), str(f1),
        ))
    if missing:
        raise InputError(
            f"{r}: no dates for pairs {missing[:10]}{' ...' if len(missing) > 10 else ''} "
            f"({len(missing)} pairs): add rows id,t1,t2 to {dp or r / 'dates.csv'} (id '*' "
            "sets the dates of every pair)"
        )
    if not out:
        raise InputError(f"{d1}: no images found: put the T1 GeoTIFFs there")
    return out


# --------------------------------------------------------------------------- OSCD


def _oscd_dates(city_dir: Path) -> tuple[dt.date, dt.date]:
    f = city_dir / "dates.txt"
    if not f.is_file():
        raise InputError(
            f"OSCD city {city_dir.name}: {f} is missing: add it with lines 'date_1: YYYYMMDD' "
            "and 'date_2: YYYYMMDD'"
        )
    found = dict(re.findall(r"date_?([12])\s*[:=]\s*(\S+)", f.read_text()))
    where = str(f)
    if "1" not in found or "2" not in found:
        raise InputError(f"{f}: needs lines 'date_1: YYYYMMDD' and 'date_2: YYYYMMDD'")
    return parse_date(found["1"], where), parse_date(found["2"], where)


def _oscd_georef_file(city_dir: Path, date: int) -> Path:
    for sub in (f"imgs_{date}_rect", f"imgs_{date}"):
        d = city_dir / sub
        if d.is_dir():
            tifs = _images(d)
            if tifs:
                # a 10 m band (B02/B03/B04/B08) defines the grid best
                pref = [t for t in tifs if re.search(r"B0?[2348]\.tif+$", t.name, re.I)]
                return (pref or tifs)[0]
    raise InputError(f"OSCD city {city_dir.name}: no images in {city_dir}/imgs_{date}/")


def _oscd_label(city_dir: Path, root: Path) -> Path | None:
    cands = [city_dir / "cm"]
    cands += [d / city_dir.name / "cm" for d in sorted(root.parent.glob("*abel*")) if d.is_dir()]
    cands += [d / city_dir.name / "cm" for d in sorted(root.glob("*abel*")) if d.is_dir()]
    for c in cands:
        if c.is_dir():
            files = sorted(c.glob("*-cm.tif")) + sorted(c.glob("*.tif")) + sorted(c.glob("*.png"))
            if files:
                return files[0]
    return None


def _oscd_splits(root: Path) -> dict[str, str]:
    """{city: "train" | "test"} from the OSCD release's ``train.txt`` / ``test.txt`` (one
    comma-separated line of city names, in the Images folder or beside it); {} without them."""
    out: dict[str, str] = {}
    for split in ("train", "test"):
        for folder in (root, root.parent):
            f = folder / f"{split}.txt"
            if f.is_file():
                for name in re.split(r"[,\s]+", f.read_text()):
                    if name.strip():
                        out[name.strip()] = split
                break
    return out


def scan_oscd(root: str | Path, encoding: str = "auto") -> list[SampleRecord]:
    """Records of the OSCD layout, one per city (layout ``oscd``).

    Raises:
        InputError: no city folders, missing dates.txt, images without georeferencing,
            labels with values of no known convention.
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"OSCD folder {r} does not exist: fix expand.path")
    cities = sorted({d.parent for d in list(r.glob("*/imgs_1")) + list(r.glob("*/*/imgs_1"))
                     if d.is_dir()})
    if not cities:
        raise InputError(
            f"{r}: no OSCD city folders (<city>/imgs_1/ and imgs_2/ with one GeoTIFF per band, "
            "<city>/dates.txt): point expand.path at the 'Images' folder of OSCD"
        )
    splits = _oscd_splits(r)
    out = []
    for c in cities:
        t1, t2 = _oscd_dates(c)
        g1 = _oscd_georef_file(c, 1)
        info = _georef(g1, "OSCD band image")
        files: dict[str, Any] = {
            "t1": str(g1.parent), "t2": str(_oscd_georef_file(c, 2).parent),
        }
        enc = ""
        lab = _oscd_label(c, r)
        if lab is not None:
            files["label"] = str(lab)
            enc = detect_change_encoding(label_counts(lab), encoding, str(lab))
            _check_label_shape(lab, info, c.name)
        out.append(SampleRecord(c.name, info["crs"], info["bounds"], (t1, t2), info["gsd_m"],
                                info["width"], info["height"], files, c.name, enc, str(c),
                                splits.get(c.name, "")))
    return out


# --------------------------------------------------------------------------- SpaceNet 7


def scan_spacenet7(root: str | Path) -> list[SampleRecord]:
    """Records of SpaceNet 7 style monthly mosaics, one multi-date sample per AOI.

    Raises:
        InputError: no AOI folders with ``images/global_monthly_YYYY_MM_mosaic_*.tif``.
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"SpaceNet 7 folder {r} does not exist: fix expand.path")
    aois = sorted({d.parent for d in list(r.glob("*/images")) + list(r.glob("*/*/images"))
                   if d.is_dir()})
    out = []
    for a in aois:
        imgs = [(m, p) for p in _images(a / "images") if (m := _SN7_RE.search(p.name))]
        if not imgs:
            continue
        imgs.sort(key=lambda mp: (int(mp[0].group(1)), int(mp[0].group(2))))
        dates = tuple(dt.date(int(m.group(1)), int(m.group(2)), 1) for m, _ in imgs)
        paths = [p for _, p in imgs]
        info = _georef(paths[0], "SpaceNet 7 mosaic")
        labels = []
        for p in paths:
            lab = next((d / f"{p.stem}_Buildings.geojson" for d in (a / "labels_match",
                        a / "labels") if (d / f"{p.stem}_Buildings.geojson").is_file()), None)
            labels.append(str(lab) if lab else "")
        files: dict[str, Any] = {"t1": str(paths[0]), "t2": str(paths[-1]),
                                 "images": [str(p) for p in paths]}
        if any(labels):
            files["labels"] = labels
        out.append(SampleRecord(a.name, info["crs"], info["bounds"], dates, info["gsd_m"],
                                info["width"], info["height"], files, a.name, "", str(a)))
    if not out:
        raise InputError(
            f"{r}: no SpaceNet 7 AOI folders (<aoi>/images/global_monthly_YYYY_MM_mosaic_*.tif): "
            "point expand.path at the SpaceNet 7 'train' folder"
        )
    return out


# --------------------------------------------------------------------------- AOI templates


def read_aoi_templates(path: str, patch_px: int, gsd_m: float) -> list[SampleRecord]:
    """Synthetic tiling of AOI definitions with ``extent_wgs84`` (file, folder or glob)."""
    from pipeline.aoi import load_aoi

    p = Path(path)
    files = sorted(p.glob("*.yaml")) if p.is_dir() else [Path(f) for f in sorted(glob.glob(path))]
    if not files:
        raise InputError(f"no AOI definition files match {path!r}: fix expand.path")
    out: list[SampleRecord] = []
    for f in files:
        spec = load_aoi(f)
        if spec.extent_wgs84 is None:
            raise InputError(f"{f}: AOI {spec.name!r} has no extent_wgs84: add "
                             "[west, south, east, north] in degrees")
        out += template_records(spec.name, spec.city, spec.t1, spec.t2, spec.extent_wgs84,
                                patch_px, gsd_m)
    return out


# --------------------------------------------------------------------------- dispatch


def read_samples(cfg: Any) -> list[SampleRecord]:
    """Records of the dataset named by an :class:`pipeline.config.ExpandConfig`.

    Raises:
        ConfigError: no adapter / path, or adapter 'aoi' without plan_only.
        InputError: from the layout readers.
    """
    if cfg.adapter is None or not cfg.path:
        raise ConfigError("expand.adapter and expand.path must both be set to expand a dataset")
    if cfg.adapter == "index":
        return read_index(cfg.path)
    if cfg.adapter == "pairs":
        return scan_pairs(cfg.path, cfg.dates_file)
    if cfg.adapter == "oscd":
        return scan_oscd(cfg.path, cfg.oscd_change_encoding)
    if cfg.adapter == "spacenet7":
        return scan_spacenet7(cfg.path)
    if cfg.adapter == "dynamicearthnet":
        from pipeline.io.change_datasets_den import scan_dynamicearthnet

        return scan_dynamicearthnet(cfg.path)
    if cfg.adapter == "xbd":
        from pipeline.io.change_datasets_xbd import scan_xbd

        return scan_xbd(cfg.path)
    if not cfg.plan_only:
        raise ConfigError(
            "expand.adapter 'aoi' tiles AOI extents synthetically and can only plan: set "
            "expand.plan_only: true (or describe real samples with adapter 'index')"
        )
    return read_aoi_templates(cfg.path, cfg.template_patch_px, cfg.template_gsd_m)


# --------------------------------------------------------------------------- copies


def copy_originals(files_json: dict[str, str], dest: str | Path) -> int:
    """Copy every original file / folder of each sample to ``dest/<sample_id>/``.

    Args:
        files_json: {sample_id: JSON {role: path or [paths]}} (the index's ``files`` column).
        dest: destination folder (``Layout.expand_originals_dir``).

    Returns:
        Number of samples copied (samples already present are skipped; each sample's folder is
        written atomically).
    """
    from pipeline.io.atomic import atomic_path

    n = 0
    for sid, fj in files_json.items():
        target = Path(dest) / sid
        if target.exists():
            continue
        with atomic_path(target) as tmp:
            tmp.mkdir(parents=True)
            for role, v in json.loads(fj).items():
                for src in v if isinstance(v, list) else [v]:
                    s = Path(src) if src else None
                    if s is None or not s.exists():
                        continue
                    d = tmp / role / s.name
                    d.parent.mkdir(parents=True, exist_ok=True)
                    if s.is_dir():
                        shutil.copytree(s, d)
                    else:
                        shutil.copy2(s, d)
        n += 1
    return n


# --------------------------------------------------------------------------- reading back


def read_sample_cube(layout: Any, sample_id: str, index: Any = None) -> dict[str, Any]:
    """The monthly Sentinel-1/2 cube of one expanded sample over its own months.

    Args:
        layout: the dataset's :class:`pipeline.layout.Layout` (``results/<dataset>``).
        sample_id: the dataset's sample id.
        index: the sample index (``layout.expand_samples()``), to avoid re-reading it per call.

    Returns:
        :func:`pipeline.io.mosaic.read_footprint_cube` dict restricted to the months
        ``month_first..month_last`` of the sample (``x`` (T, 14, S, S) float32, NaN = no data;
        ``counts`` (T, 2, S, S) uint8; ``months``; ``bands``) plus ``group``, ``crs`` (grid
        CRS), ``transform`` (affine of the footprint window, 6-tuple) and ``patch_box_px``
        (off_x, off_y, w, h: the sample inside the footprint, grid px).

    Raises:
        InputError: unknown sample id or missing mosaic.
    """
    from pipeline.grid import AoiGrid
    from pipeline.io.jsonfile import read_json
    from pipeline.io.mosaic import read_footprint_cube
    from pipeline.io.parquet import read_geoparquet

    idx = index if index is not None else read_geoparquet(layout.expand_samples())
    rows = idx[idx["sample_id"].astype(str) == str(sample_id)]
    if len(rows) != 1:
        raise InputError(f"sample {sample_id!r} is not in {layout.expand_samples()}: check the id")
    r = rows.iloc[0]
    xl = layout.expand_layout()
    store = xl.mosaic(r["aoi"])
    if not store.exists():
        raise InputError(f"{store} does not exist: run the expansion without expand.plan_only")
    c0, r0, n = int(r["fp_col0"]), int(r["fp_row0"]), int(r["fp_size_px"])
    from pipeline.io.mosaic import month_span

    # the sample's months are one contiguous run of the group's: read only those (lazy: the
    # cube of one sample costs about its own bytes)
    span = month_span(store, str(r["month_first"]), str(r["month_last"]))
    cube = read_footprint_cube(store, c0, r0, n, months=span)
    grid = AoiGrid.from_dict(read_json(xl.grid(r["aoi"])))
    return {
        "x": cube["x"],
        "counts": cube["counts"],
        "months": cube["months"],
        "bands": cube["bands"],
        "group": str(r["aoi"]),
        "crs": grid.crs,
        "transform": tuple(grid.window_transform(c0, r0))[:6],
        "patch_box_px": (float(r["patch_off_x_px"]), float(r["patch_off_y_px"]),
                         float(r["patch_w_px"]), float(r["patch_h_px"])),
    }


# --------------------------------------------------------------------------- sample pixels

#: Band files that make an RGB from a folder of single-band files (OSCD's imgs_1/).
_RGB_BANDS = ("B04", "B03", "B02")


def read_sample_rgb(path: str | Path, bands: tuple[int, int, int] = (1, 2, 3)) -> np.ndarray:
    """float32 (3, H, W) RGB of one sample date, in the file's own units (no scaling): bands
    ``bands`` of a raster (1-based; DynamicEarthNet's B, G, R, NIR files: (3, 2, 1); a one-band
    raster is repeated), or, for a folder of
    single-band files (OSCD's ``imgs_1/``), its B04 / B03 / B02 files.

    Raises:
        InputError: unreadable file, or a folder without B04 / B03 / B02.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    p = Path(path)
    try:
        if p.is_dir():
            files = []
            for b in _RGB_BANDS:
                hit = sorted(p.glob(f"*{b}.tif")) + sorted(p.glob(f"*{b}.TIF"))
                if not hit:
                    raise InputError(f"{p}: no {b} band file (*{b}.tif): an RGB needs "
                                     f"{'/'.join(_RGB_BANDS)}")
                files.append(hit[0])
            layers = []
            for f in files:
                with rasterio.open(f) as src:
                    layers.append(src.read(1).astype(np.float32))
            return np.stack(layers)
        with rasterio.open(p) as src:
            idx = list(bands) if src.count >= max(bands) else [1, 1, 1]
            return src.read(idx).astype(np.float32)
    except RasterioIOError as exc:
        raise InputError(f"{p}: cannot be read ({exc}): check the file") from None


def read_change_label(path: str | Path, encoding: str) -> np.ndarray:
    """uint8 (H, W) binary change of a sample's label file: 0 no change, 1 change, 255 ignored
    (:func:`pipeline.expand.adapters.change_to_binary` with the index's ``label_encoding``)."""
    import rasterio

    from pipeline.expand.adapters import change_to_binary

    with rasterio.open(path) as src:
        return change_to_binary(src.read(1), encoding)


# the multi-date / coordinate-placed layouts live in their own modules (re-exported here)
from pipeline.io.change_datasets_den import (  # noqa: E402
    DEN_CLASSES,
    read_den_label,
    scan_dynamicearthnet,
)
from pipeline.io.change_datasets_xbd import (  # noqa: E402
    XBD_DAMAGED,
    fit_pixel_affine,
    read_xbd_change,
    scan_xbd,
    xbd_transform,
)

__all__ = [
    "DEN_CLASSES", "XBD_DAMAGED", "copy_originals", "fit_pixel_affine", "read_aoi_templates",
    "read_change_label", "read_den_label", "read_index", "read_sample_cube", "read_sample_rgb",
    "read_samples", "read_xbd_change", "scan_dynamicearthnet", "scan_oscd", "scan_pairs",
    "scan_spacenet7", "scan_xbd", "xbd_transform",
]
