"""Drivers of the HR rules (one job per AOI, never per patch): ``tile``, ``footprints``,
``labels`` and ``change``.

Each driver reads through :mod:`pipeline.io`, computes with the pure functions of
:mod:`pipeline.hr` and writes through :mod:`pipeline.io`; the per-AOI index parquet, the rule's
declared output, is written last. Patch rasters are streamed one patch at a time (memory stays
flat). A rerun reuses label / change tifs of an interrupted run made from the same inputs
(fingerprint in ``<stage dir>/_inputs.json``) and discards them when inputs or settings changed.

Outputs (paths from :class:`pipeline.layout.Layout`):

* tile: ``aois/<aoi>/hr/{t1,t2}/<patch_id>.tif`` and ``patches.parquet`` (see
  :func:`pipeline.hr.tiling.tile_pair`).
* footprints: ``footprints.parquet`` (tile index + footprint columns), ``grid.json`` and
  ``footprints.gpkg`` (+ a shapefile folder with ``footprints.export_shapefile``).
* labels: ``labels/{t1,t2}/<patch_id>.tif`` (uint8, 0..17, 255 = no data, colour table) and
  ``labels.parquet``: ``patch_id``, ``aoi``, ``class_schema``, ``label_t1``/``label_t2``
  (paths relative to the dataset root) and per-date class histograms ``t1_px_<v>`` /
  ``t2_px_<v>`` for v in 0..17 and 255.
* change: ``change/bin/<patch_id>.tif`` (uint8, 1 changed, 0 unchanged, 255 ignored),
  ``change/fromto/<patch_id>.tif`` (uint16, ``y1 * 18 + y2``, 65535 ignored) and
  ``change.parquet``: ``patch_id``, ``aoi``, ``change_bin``, ``change_fromto``,
  ``changed_px``, ``valid_px``, ``change_fraction`` (NaN without valid pixels).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from affine import Affine
from tqdm import tqdm

from pipeline.aoi import AoiSpec
from pipeline.classes import ClassSchema, load_schema, schema_path
from pipeline.config import ChangeConfig, FootprintsConfig, LabelsConfig, TileConfig
from pipeline.errors import ConfigError, InputError
from pipeline.grid import FootprintRule
from pipeline.hr.change import (
    BIN_COLORMAP,
    BIN_NODATA,
    FROMTO_NODATA,
    binary_change,
    change_stats,
    fromto_change,
)
from pipeline.hr.footprints import FootprintResult, build_footprints
from pipeline.hr.labels import (
    PolygonSet,
    check_coverage,
    check_overlap,
    class_histogram,
    histogram_columns,
    label_patch,
    parse_class_mapping,
    prepare_polygons,
)
from pipeline.hr.tiling import TileResult, tile_pair
from pipeline.io.atomic import remove_empty_dir
from pipeline.io.digest import read_fingerprint, stat_digest, write_fingerprint
from pipeline.io.geotiff import (
    PatchRaster,
    clear_patch_tifs,
    quiet_rasterio_geotransform_warning,
    read_patch,
    write_patch_tif,
)
from pipeline.io.jsonfile import write_json
from pipeline.io.manifest import RecordedFiles, tree_files, write_manifest
from pipeline.io.parquet import read_geoparquet, write_geoparquet
from pipeline.io.tables import read_class_mapping
from pipeline.io.vector import read_annotations, write_footprints_vector
from pipeline.layout import Layout
from pipeline.parallel import forked_map

log = logging.getLogger(__name__)

DATES = ("t1", "t2")


# --------------------------------------------------------------------------- tile


def tile_aoi(aoi: AoiSpec, cfg: TileConfig, layout: Layout, progress: bool = True,
             threads: int = 1) -> TileResult:
    """Driver of rule ``tile``: tile one AOI and write its patches and ``patches.parquet``
    (``threads``: patches compressed and written at once; the bytes do not depend on it).

    Raises:
        ConfigError: the AOI is a template without imagery.
        InputError (TilingError): bad or inconsistent imagery (nothing is written then).
    """
    if aoi.template or aoi.images is None:
        raise ConfigError(
            f"AOI {aoi.name!r} is a template without imagery: set 'images' (and 'annotations') "
            "to your own files in its AOI definition and remove 'template: true'"
        )
    hr_parent = layout.hr_dir(aoi.name, "t1").parent
    existed = hr_parent.exists()
    try:
        result = tile_pair(aoi, cfg, layout, progress=progress, threads=threads)
        write_manifest(layout.manifest(aoi.name, "tile"), layout.root, "tile",
                       tree_files(layout.hr_dir(aoi.name, "t1"))
                       + tree_files(layout.hr_dir(aoi.name, "t2")))
        write_geoparquet(result.index, layout.patches(aoi.name))
    except BaseException:
        # atomic writers already removed their temporaries; drop folders this run created
        if not existed:
            remove_empty_dir(hr_parent)
        raise
    log.info(
        "%s: wrote %d patches (T1 + T2) and %s", aoi.name, result.n_kept, layout.patches(aoi.name)
    )
    return result


# --------------------------------------------------------------------------- footprints


def footprints_aoi(aoi: AoiSpec, cfg: FootprintsConfig, layout: Layout) -> FootprintResult:
    """Driver of rule ``footprints``: footprints of one AOI on its 10 m grid.

    Raises:
        InputError: missing / empty / inconsistent tile index.
        GridError: impossible footprint size or grid settings.
    """
    name = aoi.name
    index = read_geoparquet(layout.patches(name), what="tile index",
                            fix=f"run rule tile for AOI {name!r}")
    res = build_footprints(index, name, FootprintRule.from_config(cfg))
    shp_dir = layout.footprints_shp_dir(name) if cfg.export_shapefile else None
    write_footprints_vector(res.polygons, layout.footprints_gpkg(name), shp_dir, name)
    write_json(layout.grid(name), res.grid_doc)
    write_geoparquet(res.index, layout.footprints(name))
    g, doc = res.footprints.grid, res.grid_doc
    log.info(
        "%s: %d footprints of %d px on %s grid %dx%d px at %g m (origin %.0f, %.0f); union %d px "
        "vs %d px requested per footprint (%.1fx)",
        name, len(res.index), doc["size_px"], g.crs, g.width, g.height, g.res_m,
        g.x0, g.y0, doc["union_px"], doc["requested_px"],
        doc["requested_px"] / max(1, doc["union_px"]),
    )
    return res


# --------------------------------------------------------------------------- labels


def _annotation_paths(aoi: AoiSpec) -> dict[str, Path]:
    if aoi.template or aoi.annotations is None:
        raise InputError(
            f"AOI {aoi.name!r} is a template without annotations: fill in 'annotations' (t1, t2 "
            "polygon files) and 'images' in its AOI definition and set 'template: false'"
        )
    return {"t1": Path(aoi.annotations.t1), "t2": Path(aoi.annotations.t2)}


class _Polygons:
    """Both dates' annotations, read, validated and mapped once; prepared once per CRS."""

    def __init__(self, aoi: AoiSpec, cfg: LabelsConfig, schema: ClassSchema,
                 crs_values: list[str]) -> None:
        self.aoi, self.cfg, self.schema = aoi, cfg, schema
        self.paths = _annotation_paths(aoi)
        self.mapping = None
        if aoi.class_mapping:
            where = f"AOI {aoi.name!r} class mapping"
            rows = read_class_mapping(aoi.class_mapping, what=where)
            self.mapping = parse_class_mapping(rows, schema,
                                               where=f"{where} {aoi.class_mapping}")
        self.gdfs: dict[str, Any] = {}
        self.prepared: dict[tuple[str, str], PolygonSet] = {}
        # read + validate + map both dates before anything is written
        for date in DATES:
            what = f"AOI {aoi.name!r} {date.upper()} annotations"
            self.gdfs[date] = read_annotations(self.paths[date], aoi.class_attribute, what=what,
                                               layer=aoi.annotation_layer)
            for crs in crs_values or [self.gdfs[date].crs.to_string()]:
                self.on(date, crs)

    def on(self, date: str, crs: str) -> PolygonSet:
        """Polygons of ``date`` on ``crs``."""
        if (date, crs) not in self.prepared:
            self.prepared[(date, crs)] = prepare_polygons(
                self.gdfs[date], self.aoi.class_attribute, crs, self.schema,
                mapping=self.mapping, overlap_rule=self.cfg.overlap_rule,
                unknown=self.cfg.unknown_classes,
                where=f"AOI {self.aoi.name!r} {date.upper()} annotations {self.paths[date]}",
            )
        return self.prepared[(date, crs)]


def _reset_outputs(state: Path, fp: str, folders: list[Path], what: str, aoi: str) -> None:
    """Discard patch tifs of an earlier run made from other inputs; record the new inputs."""
    if read_fingerprint(state) != fp:
        n = clear_patch_tifs(folders)
        if n:
            log.info("AOI %r: inputs changed; removed %d stale %s tifs", aoi, n, what)
        write_fingerprint(state, fp)


def _reusable(path: Path, what: str) -> np.ndarray | None:
    """Band 1 of a patch tif an earlier run of the same inputs left, or None when there is none
    or it cannot be read (truncated by a full disk, say): then it is computed again."""
    if not path.is_file():
        return None
    try:
        return read_patch(path, what).band1
    except InputError as exc:
        log.warning("%s; computing it again", exc)
        return None


def _same_grid(a: Any, b: Any) -> bool:
    return bool(a.shape == b.shape and a.transform.almost_equals(
        b.transform, precision=1e-6 * abs(a.transform.a)))


def _fully_valid(row: Any, date: str) -> bool:
    """Whether the tile index records the patch's ``date`` HR image without no data (its
    ``nodata_frac_<date>`` is the fraction of the mask the tile stage wrote into the file,
    under the same any-band rule as :func:`pipeline.io.geotiff.read_patch`,
    ``tests/unit/test_patch_validity.py``); False when the index lacks the column."""
    frac = getattr(row, f"nodata_frac_{date}", None)
    return frac is not None and float(frac) == 0.0


def _index_grid(row: Any) -> PatchRaster | None:
    """The grid of a patch's HR GeoTIFFs as the tile index records it (``hr_transform``,
    ``size_px`` square, ``hr_crs``): tile writes both dates' files with exactly that transform
    (JSON floats round-trip) and CRS, so it is the grid of a file that still holds the bytes
    tile wrote (:meth:`RecordedFiles.check`). None for an index without the column (written
    before it existed) or without a CRS."""
    tr, crs = getattr(row, "hr_transform", None), getattr(row, "hr_crs", None)
    if not isinstance(tr, str) or not isinstance(crs, str) or not crs:
        return None
    size = int(row.size_px)
    return PatchRaster(None, Affine(*(float(v) for v in json.loads(tr))), crs, None,
                       (size, size))


def label_aoi(aoi: AoiSpec, cfg: LabelsConfig, layout: Layout, progress: bool = True,
              threads: int = 1) -> Path:
    """Driver of rule ``labels``: label rasters and ``labels.parquet`` of one AOI
    (``threads``: patches labelled at once; the bytes do not depend on it).

    Reads the tile index and the HR patch GeoTIFFs (their grid and no-data mask) and
    rasterizes the AOI's T1/T2 annotation polygons onto every patch grid (see
    :mod:`pipeline.hr.labels`). Returns the index path.

    Raises:
        InputError / LabelError: missing or bad inputs (message names file, AOI and fix).
    """
    name = aoi.name
    ann_paths = _annotation_paths(aoi)
    index_path, out_index = layout.patches(name), layout.labels_index(name)
    schema = load_schema(cfg.class_schema)
    mapping_path = Path(aoi.class_mapping) if aoi.class_mapping else None
    fp = stat_digest(
        [index_path, ann_paths["t1"], ann_paths["t2"], mapping_path, schema_path(schema.id)],
        extra={"cfg": cfg.model_dump(mode="json"), "attr": aoi.class_attribute, "v": 1},
    )
    state = layout.labels_state(name)
    if out_index.is_file() and read_fingerprint(state) == fp:
        log.info("AOI %r: labels are up to date (%s)", name, out_index)
        return out_index
    patches = read_geoparquet(
        index_path, required=("patch_id", "hr_crs", "hr_t1", "hr_t2"), what="tile index",
        fix=f"rerun the tile stage of AOI {name!r} (delete the file to force it)",
    )
    if len(patches) == 0:
        log.warning("AOI %r: tile index %s has no patches; writing an empty labels index",
                    name, index_path)
    crs_values = sorted(set(map(str, patches["hr_crs"]))) if len(patches) else []
    polygons = _Polygons(aoi, cfg, schema, crs_values)
    if len(patches):
        for date in DATES:
            check_overlap(polygons.on(date, crs_values[0]), patches.total_bounds,
                          f"AOI {name!r} {date.upper()} annotations {ann_paths[date]}")
    out_dirs = {d: layout.labels_dir(name, d) for d in DATES}
    _reset_outputs(state, fp, list(out_dirs.values()), "label", name)

    cmap, root = schema.colormap(), layout.root
    tiled = RecordedFiles(layout.manifest(name, "tile"), root)  # HR patches checked on reading

    def one(row: Any) -> tuple[dict[str, Any], int]:
        """The index record of one patch (its label tifs written or reused) and the number
        of tifs reused. Thread-safe: the polygons are prepared before, files are per patch."""
        pid = str(row.patch_id)
        rec: dict[str, Any] = {"patch_id": pid, "aoi": name, "class_schema": schema.id}
        grid_t1 = None
        reused_here = 0
        for date in DATES:
            out = out_dirs[date] / f"{pid}.tif"
            rec[f"label_{date}"] = out.relative_to(root).as_posix()
            reused = _reusable(out, f"AOI {name!r} {date} label")
            if reused is not None:
                label = reused
                reused_here += 1
                # a T2 patch labelled after a reused T1 label is still held to the patch grid
                grid_t1 = grid_t1 or _index_grid(row)
            else:
                hr = root / str(getattr(row, f"hr_{date}"))
                verified = tiled.check(hr, f"AOI {name!r} {date.upper()} HR patch")
                # a patch the tile index records without no data needs no mask read (the mask
                # of a GeoTIFF with a nodata value means decoding every pixel); when it also
                # holds the bytes tile wrote, its grid is the index's: no open at all
                whole = _fully_valid(row, date)
                grid = _index_grid(row) if whole and verified else None
                if grid is None:
                    grid = read_patch(hr, f"AOI {name!r} {date.upper()} HR patch {pid}",
                                      data=False, valid=not whole, require_crs=True)
                valid = np.ones(grid.shape, bool) if whole else grid.valid
                if grid_t1 is None:
                    grid_t1 = grid
                elif not _same_grid(grid, grid_t1):
                    raise InputError(
                        f"AOI {name!r} patch {pid}: the T2 HR patch {hr} is not on the T1 "
                        "patch grid: rerun the tile stage (T2 must be co-registered to T1)"
                    )
                assert valid is not None  # read_patch(valid=True) unless whole
                label = label_patch(polygons.on(date, grid_t1.crs), grid_t1.transform,
                                    valid, nodata=schema.nodata, all_touched=cfg.all_touched)
                write_patch_tif(out, label[np.newaxis], grid_t1.transform, grid_t1.crs,
                                schema.nodata, colormap=cmap)
            hist = class_histogram(label, schema)
            rec.update(zip(histogram_columns(date, schema), hist.tolist(), strict=True))
        return rec, reused_here

    records: list[dict[str, Any]] = []
    n_reused = 0
    quiet_rasterio_geotransform_warning()  # before the threads (see pipeline.io.geotiff)
    # patches are labelled ``threads`` at a time on forked processes (the Python work around
    # each rasterio open holds the GIL: threads kept 1.1 cores busy), in order: the index and
    # the files do not depend on it
    rows = list(patches.itertuples(index=False))
    for rec, k in tqdm(forked_map(one, rows, threads, f"labels of AOI {name!r}"),
                       total=len(patches), desc=f"labels {name}", disable=not progress,
                       mininterval=2.0):
        records.append(rec)
        n_reused += k
    if n_reused:
        log.info("AOI %r: reused %d label tifs of an earlier run with the same inputs",
                 name, n_reused)
    columns = ["patch_id", "aoi", "class_schema", "label_t1", "label_t2"]
    for date in DATES:
        columns += histogram_columns(date, schema)
    df = pd.DataFrame.from_records(records, columns=columns)
    for c in columns[5:]:
        df[c] = df[c].astype("int64")
    for date in DATES:
        t = df[histogram_columns(date, schema)].sum().to_numpy()
        log.info("AOI %r %s: %d patches, %d px, background %.1f%%, no data %.1f%%", name, date,
                 len(df), int(t.sum()), 100.0 * t[schema.background] / max(1, t.sum()),
                 100.0 * t[-1] / max(1, t.sum()))
        if len(df):
            check_coverage(t, schema, cfg.min_coverage, cfg.warn_coverage,
                           f"AOI {name!r} {date.upper()} annotations {ann_paths[date]}")
    write_manifest(layout.manifest(name, "labels"), root, "labels",
                   [root / str(p) for d in DATES for p in df[f"label_{d}"]])
    write_geoparquet(df, out_index)
    return out_index


# --------------------------------------------------------------------------- change

CHANGE_COLUMNS = ["patch_id", "aoi", "change_bin", "change_fromto", "changed_px", "valid_px",
                  "change_fraction"]


def change_aoi(aoi: AoiSpec, cfg: ChangeConfig, layout: Layout, progress: bool = True,
               threads: int = 1) -> Path:
    """Driver of rule ``change``: binary and from-to change rasters and ``change.parquet``
    (``threads``: patches processed at once; the bytes do not depend on it).

    Pixels are ignored where either date is no data (255) and, with
    ``change.ignore_background``, where either date is background (0). Returns the index path.

    Raises:
        InputError: missing / inconsistent labels index or label rasters.
    """
    name = aoi.name
    labels_index, out_index = layout.labels_index(name), layout.change_index(name)
    fp = stat_digest([labels_index], extra={"cfg": cfg.model_dump(mode="json"), "v": 1})
    state = layout.change_state(name)
    if out_index.is_file() and read_fingerprint(state) == fp:
        log.info("AOI %r: change is up to date (%s)", name, out_index)
        return out_index
    labels = read_geoparquet(
        labels_index, required=("patch_id", "label_t1", "label_t2"), what="labels index",
        fix=f"rerun the labels stage of AOI {name!r} (delete the file to force it)",
    )
    schema_ids = set(labels["class_schema"]) if "class_schema" in labels.columns else {"fusu17"}
    if len(schema_ids) > 1:
        raise InputError(f"labels index {labels_index} mixes class schemas {sorted(schema_ids)}: "
                         "rerun the labels stage")
    schema = load_schema(next(iter(schema_ids)) if schema_ids else "fusu17")
    out_dirs = {k: layout.change_dir(name, k) for k in ("bin", "fromto")}
    _reset_outputs(state, fp, list(out_dirs.values()), "change", name)
    kw: dict[str, Any] = {"ignore_background": cfg.ignore_background, "nodata": schema.nodata,
                          "background": schema.background}
    root = layout.root
    labelled = RecordedFiles(layout.manifest(name, "labels"), root)  # checked on reading

    def one(row: Any) -> dict[str, Any]:
        """The index record of one patch, its change tifs written or reused (thread-safe)."""
        pid = str(row.patch_id)
        out_bin, out_ft = out_dirs["bin"] / f"{pid}.tif", out_dirs["fromto"] / f"{pid}.tif"
        reused = _reusable(out_bin, f"AOI {name!r} binary change") if out_ft.is_file() else None
        if reused is not None and _reusable(out_ft, f"AOI {name!r} from-to change") is not None:
            bin_arr = reused
        else:
            for date in DATES:
                labelled.check(root / getattr(row, f"label_{date}"),
                               f"AOI {name!r} {date.upper()} label")
            y1 = read_patch(root / row.label_t1, f"AOI {name!r} T1 label")
            y2 = read_patch(root / row.label_t2, f"AOI {name!r} T2 label")
            if not _same_grid(y1, y2):
                raise InputError(f"AOI {name!r} patch {pid}: T1 and T2 labels are on different "
                                 "grids: rerun the labels stage")
            bin_arr = binary_change(y1.band1, y2.band1, **kw)
            ft = fromto_change(y1.band1, y2.band1, n_classes=schema.n_classes, **kw)
            write_patch_tif(out_ft, ft[np.newaxis], y1.transform, y1.crs, FROMTO_NODATA)
            write_patch_tif(out_bin, bin_arr[np.newaxis], y1.transform, y1.crs, BIN_NODATA,
                            colormap=BIN_COLORMAP)
        rec: dict[str, Any] = {"patch_id": pid, "aoi": name,
                               "change_bin": out_bin.relative_to(root).as_posix(),
                               "change_fromto": out_ft.relative_to(root).as_posix()}
        rec.update(change_stats(bin_arr))
        return rec

    quiet_rasterio_geotransform_warning()  # before the threads (see pipeline.io.geotiff)
    # forked processes, as in label_aoi (threads kept 1.2 cores busy)
    records = list(tqdm(forked_map(one, list(labels.itertuples(index=False)), threads,
                                   f"change of AOI {name!r}"),
                        total=len(labels), desc=f"change {name}", disable=not progress,
                        mininterval=2.0))
    df = pd.DataFrame.from_records(records, columns=CHANGE_COLUMNS)
    df["changed_px"] = df["changed_px"].astype("int64")
    df["valid_px"] = df["valid_px"].astype("int64")
    df["change_fraction"] = df["change_fraction"].astype("float64")
    write_manifest(layout.manifest(name, "change"), root, "change",
                   [root / str(p) for c in ("change_bin", "change_fromto") for p in df[c]])
    write_geoparquet(df, out_index)
    valid, changed = int(df["valid_px"].sum()), int(df["changed_px"].sum())
    log.info("AOI %r: %d patches, %d with change, overall change fraction %.4f (%d of %d valid "
             "px)", name, len(df), int((df["changed_px"] > 0).sum()),
             (changed / valid) if valid else float("nan"), changed, valid)
    return out_index
