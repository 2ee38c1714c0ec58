"""Drivers of the dataset rules (one job per dataset): ``assemble``, ``stats``, ``stac`` and
``export_fusu`` (the QA report's driver is :func:`pipeline.dataset.qa.build_report`).

* :func:`assemble_dataset` merges the per-AOI footprints / labels / change indices into the
  dataset index ``patches.parquet`` (one row per patch, with ``split``) and writes
  ``splits/{train,val,test,guard}.txt``, ``splits/change_detection/{train,val,test}.txt``,
  ``splits/cities/<city>/{train,val,test}.txt``, ``splits/summary.json`` (FUSU Table 11-style
  counts) and ``splits/leakage.json`` (see :mod:`pipeline.dataset.splits`).
* :func:`dataset_stats` writes ``stats.json`` (see :mod:`pipeline.dataset.stats`); before
  reading anything, every AOI's mosaic must hold every month of its T1..T2 range.
* :func:`stac_collection` writes ``stac/collection.json`` + one item JSON per patch.
* :func:`export_fusu` writes the FUSU release layout under ``export/fusu/`` (conventions in
  :mod:`pipeline.dataset.export_fusu`): the whole folder is written to a temporary sibling and
  swapped into place at the end; an existing non-empty folder is refused unless
  ``export.overwrite``. ``export/fusu_manifest.json`` records what was written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.aoi import AoiSpec
from pipeline.bands import ALL_BANDS, ALL_WAVELENGTHS_NM
from pipeline.classes import load_schema
from pipeline.config import ExportConfig, SplitsConfig
from pipeline.dataset.assemble import AoiTables, build_index, split_lists
from pipeline.dataset.export_fusu import (
    SPLITS,
    check_months,
    check_target,
    export_rows,
    label_bin_values,
    meta_document,
    official_label_values,
    official_times,
    sample_paths,
)
from pipeline.dataset.split_report import achieved_ratios, leakage_report, split_summary
from pipeline.dataset.stac_collection import build_collection
from pipeline.dataset.stats import check_sentinel_inputs, compute_stats
from pipeline.grid import AoiGrid
from pipeline.io.atomic import atomic_path, dir_is_nonempty, write_lines, write_text_atomic
from pipeline.io.geotiff import read_patch, write_times_tif
from pipeline.io.jsonfile import read_json, write_json
from pipeline.io.manifest import tree_files, write_manifest
from pipeline.io.mosaic_read import mosaic_months, read_footprint_cube
from pipeline.io.parquet import read_geoparquet, read_index_geo, read_index_table, write_geoparquet
from pipeline.io.png import write_int_label_tiff, write_png
from pipeline.io.stac_catalog import save_stac
from pipeline.layout import Layout

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- assemble


def _read_aoi(aoi: AoiSpec, layout: Layout) -> AoiTables:
    name = aoi.name
    fix = f"run the HR rules of AOI {name!r} first"
    ch_path = layout.change_index(name)
    return AoiTables(
        aoi=name,
        city=aoi.city,
        footprints=read_geoparquet(layout.footprints(name), what="footprint index", fix=fix),
        labels=read_geoparquet(layout.labels_index(name), what="labels index", fix=fix),
        change=read_geoparquet(ch_path) if ch_path.is_file() else None,
        grid=read_json(layout.grid(name)) if layout.grid(name).is_file() else None,
    )


def assemble_dataset(aois: Sequence[AoiSpec], cfg: SplitsConfig, layout: Layout) -> Path:
    """Driver of rule ``assemble``: the dataset index of ``aois`` with its split files.

    Raises:
        InputError: a per-AOI index is missing (run its stage first).
        DatasetError: inconsistent indices or splits impossible (see
            :mod:`pipeline.dataset.splits`).
    """
    tables = [_read_aoi(a, layout) for a in aois]
    index, res, patches, fps = build_index(tables, cfg)
    report = leakage_report(res.split, index["city"].to_numpy(), patches, fps, res.info)
    # flat summary keys, handy for the QA report
    report["mode"] = res.info["mode"]
    report["guard"] = res.info["guard"]
    report["dropped_patches"] = report["overall"]["guard_patches"]
    report["pairs"] = [
        {"split_a": k.split("-")[0], "split_b": k.split("-")[1],
         "overlapping_footprints": v["n_leaking"], **v}
        for k, v in report["overall"].items() if isinstance(v, dict)
    ]
    summary: dict[str, Any] = split_summary(res.split, index["city"].to_numpy(),
                                            index["changed_px"].to_numpy())
    summary["achieved_ratios"] = achieved_ratios(res.split)
    summary["config"] = res.info
    for name, ids in split_lists(index).items():
        write_lines(layout.split_list(name), list(ids))
    write_json(layout.leakage_report(), report)
    write_json(layout.split_summary(), summary)
    manifest, _ = layout.dataset_covered_outputs()["assemble"]
    declared = set(layout.declared_split_files())
    write_manifest(manifest, layout.root, "assemble",
                   [f for f in tree_files(layout.splits_dir()) if f not in declared])
    write_geoparquet(index, layout.index())
    log.info(
        "dataset index %s: %d patches, splits %s, achieved %s, guard %d",
        layout.index(), len(index), summary["complete"],
        {k: round(v, 3) for k, v in summary["achieved_ratios"].items()},
        report["dropped_patches"],
    )
    return layout.index()


# --------------------------------------------------------------------------- stats


def available_months(layout: Layout, aois: Sequence[str]) -> dict[str, list[str] | None]:
    """{aoi: months of its mosaic, or None if the mosaic is missing/unreadable}."""
    out: dict[str, list[str] | None] = {}
    for a in aois:
        p = layout.mosaic(a)
        try:
            out[a] = mosaic_months(p) if p.exists() else None
        except Exception:  # an unreadable store counts as missing
            out[a] = None
    return out


def dataset_stats(
    aois: Sequence[AoiSpec], layout: Layout, sentinel: bool = True, progress: bool = True
) -> Path:
    """Driver of rule ``stats``: ``stats.json`` of the dataset under ``layout``.

    Args:
        aois: AOI definitions (their months are the Sentinel months the dataset needs).
        sentinel: False skips the Sentinel statistics (HR-only datasets).

    Raises:
        DatasetError: missing mosaic / months (lists AOIs and months).
        MissingInputError: missing index.
    """
    index = read_index_table(layout.index())
    used = sorted(set(index["aoi"].astype(str)))
    specs = {a.name: a for a in aois}
    read_cube = None
    if sentinel:
        expected = {a: specs[a].months for a in used if a in specs}
        check_sentinel_inputs(expected, available_months(layout, list(expected)))

        def read_cube(aoi: str, col0: int, row0: int, size: int) -> dict[str, Any]:
            return read_footprint_cube(layout.mosaic(aoi), col0, row0, size)

    root = layout.root

    def read_hr(rel: str) -> Any:
        p = read_patch(root / rel, "HR patch", bands="rgb", valid=True)
        assert p.data is not None
        return p.data.astype("uint8", copy=False), p.valid

    wrap = (lambda it: tqdm(it, desc="stats", mininterval=2.0)) if progress else None
    stats = compute_stats(index, read_cube, read_hr, list(ALL_BANDS), progress=wrap)
    write_json(layout.stats(), stats)
    log.info("wrote %s (%d train patches)", layout.stats(), stats["n_patches"]["train"])
    return layout.stats()


# --------------------------------------------------------------------------- stac


def stac_collection(
    aois: Sequence[AoiSpec], layout: Layout, dataset: str = "dataset",
    class_schema: str = "fusu17",
) -> Path:
    """Driver of rule ``stac``: ``stac/collection.json`` + one item per patch."""
    index = read_index_geo(layout.index())
    schema = load_schema(class_schema)
    coll = build_collection(
        index, layout.root, {a.name: a.months for a in aois}, schema.names,
        collection_id=dataset,
        description=f"{dataset}: FUSU-style bi-temporal HR land-use change dataset with "
        "monthly Sentinel-2/1 series (one item per patch)", stac_dir=layout.stac_dir(),
    )
    out = save_stac(coll, layout.stac_dir())
    log.info("wrote %s (%d items)", out, len(index))
    return out


# --------------------------------------------------------------------------- export_fusu

_SAMPLE_COLUMNS = ("patch_id", "split", "aoi", "city", "gsd_m", "hr_crs", "t1", "t2",
                   "grid_crs", "fp_col0", "fp_row0", "fp_size_px", "patch_off_x_px",
                   "patch_off_y_px", "patch_w_px", "patch_h_px")


def export_fusu(
    aois: Sequence[AoiSpec],
    cfg: ExportConfig,
    layout: Layout,
    class_schema: str = "fusu17",
    progress: bool = True,
) -> Path:
    """Driver of rule ``export_fusu``: every train/val/test patch in the FUSU layout.

    Raises:
        DatasetError: non-empty target without ``export.overwrite``, months missing.
        InputError: a native file is missing.
    """
    dest = layout.export_dir()
    check_target(dest, dir_is_nonempty(dest), cfg.overwrite)
    rows = export_rows(read_index_table(layout.index()))
    schema = load_schema(class_schema)
    palette = {v: rgba[:3] for v, rgba in schema.colormap().items()}
    specs = {a.name: a for a in aois}
    months: dict[str, list[str]] = {}
    grids: dict[str, AoiGrid] = {}
    for a in sorted(set(rows["aoi"].astype(str))):
        want = {a: specs[a].months} if a in specs else {}
        months[a] = check_months(want, mosaic_months(layout.mosaic(a)), a)
        grids[a] = AoiGrid.from_dict(read_json(layout.grid(a)))
    root = layout.root
    n_written = 0
    with atomic_path(dest) as tmp:
        it = rows.itertuples(index=False)
        for r in tqdm(it, total=len(rows), desc="export_fusu", disable=not progress,
                      mininterval=2.0):
            pid, split, aoi = str(r.patch_id), str(r.split), str(r.aoi)
            paths = sample_paths(split, pid, len(months[aoi]))
            for date, key in (("t1", "im1"), ("t2", "im2")):
                im = read_patch(root / str(getattr(r, f"hr_{date}")), "HR patch", bands="rgb")
                assert im.data is not None
                write_png(tmp / paths[key], im.data.astype("uint8", copy=False))
            for d, key in (("t1", "label1"), ("t2", "label2")):
                lab = read_patch(root / str(getattr(r, f"label_{d}")), f"{d.upper()} label")
                if cfg.official_training:
                    write_int_label_tiff(tmp / paths[key], official_label_values(lab.band1))
                else:
                    write_png(tmp / paths[key], lab.band1, palette=palette)
            chg = read_patch(root / str(r.change_bin), "binary change").band1
            write_png(tmp / paths["label_bin"], label_bin_values(chg, cfg.bin_ignore_value))
            cube = read_footprint_cube(layout.mosaic(aoi), int(r.fp_col0), int(r.fp_row0),
                                       int(r.fp_size_px))
            pos = {m: i for i, m in enumerate(cube["months"])}
            transform = grids[aoi].window_transform(int(r.fp_col0), int(r.fp_row0))
            for k, m in enumerate(months[aoi], start=1):
                x, names = cube["x"][pos[m]], list(cube["bands"])
                if cfg.official_training:
                    x = official_times(x, cube["counts"][pos[m]][0], cfg.official_nodata_fill)
                    names.append("clear_flag")
                write_times_tif(
                    tmp / paths[f"times_{k}"], x, transform, grids[aoi].crs,
                    names, tags={"month": m, "k": str(k), "patch_id": pid},
                )
            n_written += 1
        for s in SPLITS:
            write_lines(tmp / f"{s}.txt",
                        rows.loc[rows["split"] == s, "patch_id"].astype(str).tolist())
        samples = rows[[c for c in _SAMPLE_COLUMNS if c in rows.columns]].copy()
        samples["months"] = [";".join(months[str(a)]) for a in samples["aoi"]]
        write_text_atomic(tmp / "samples.csv", samples.to_csv(index=False))
        write_json(tmp / "meta.json", meta_document(
            ALL_BANDS, ALL_WAVELENGTHS_NM, schema.names, cfg.bin_ignore_value, months,
            official=(cfg.official_training, cfg.official_nodata_fill),
        ))
    counts = {s: int((rows["split"] == s).sum()) for s in SPLITS}
    write_json(layout.export_manifest(), {"folder": str(dest), "samples": counts,
                                          "months_by_aoi": months, "patches": n_written})
    log.info("exported %d patches to %s (%s)", n_written, dest, counts)
    if not cfg.official_training:
        log.warning(
            "%s holds the FUSU release layout (14 bands, labels 0..17, NaN no data): the "
            "official FUSU code loads it but its train.py cannot train on it. For that, export "
            "with `--config 'export={official_training: true}'` (15 bands with the clear flag, "
            "labels -1..16, no NaN; docs/formats.md)", dest,
        )
    return layout.export_manifest()
