"""Stage `labels` (one job per AOI): annotation polygons -> T1/T2 label GeoTIFFs per patch.

Reads the tile index ``aois/<aoi>/patches.parquet`` and the HR patch GeoTIFFs (their grid and
no-data mask), rasterizes the AOI's T1/T2 annotation polygons onto every patch grid (see
:mod:`pipeline.labels`) and writes

* ``aois/<aoi>/labels/{t1,t2}/<patch_id>.tif``: uint8, values 0..17, 255 = no data, colour table;
* ``aois/<aoi>/labels.parquet`` (written last): one row per patch with ``patch_id``, ``aoi``,
  ``class_schema``, ``label_t1``/``label_t2`` (paths relative to the dataset root) and the
  per-date class histograms ``t1_px_<v>`` / ``t2_px_<v>`` for v in 0..17 and 255.

Both annotation files are validated and mapped before any raster is written. Patches are
processed one at a time (memory stays flat). A rerun reuses label tifs of an interrupted run
made from the same inputs (fingerprint in ``aois/<aoi>/labels/_inputs.json``) and discards
them when the inputs or settings changed.
"""

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.classes import load_schema, schema_path
from pipeline.config import AoiSpec, LabelsConfig, parse_section
from pipeline.errors import InputError
from pipeline.io import read_geoparquet, write_geoparquet
from pipeline.io.annotations import read_annotations, read_class_mapping
from pipeline.io.labels import (
    clear_patch_tifs,
    input_fingerprint,
    read_fingerprint,
    read_patch_band,
    read_patch_grid,
    write_fingerprint,
)
from pipeline.io.raster import write_patch_tif
from pipeline.labels import (
    PolygonSet,
    class_histogram,
    histogram_columns,
    label_patch,
    parse_class_mapping,
    prepare_polygons,
)
from pipeline.layout import Layout

log = logging.getLogger("pipeline.stages.labels")

DATES = ("t1", "t2")
REQUIRED_COLUMNS = ("patch_id", "hr_crs", "hr_t1", "hr_t2")


def _annotation_paths(aoi: AoiSpec) -> dict[str, Path]:
    if aoi.template or aoi.annotations is None:
        raise InputError(
            f"AOI {aoi.name!r} is a template without annotations: fill in 'annotations' (t1, t2 "
            "polygon files) and 'images' in its AOI definition and set 'template: false'"
        )
    return {"t1": Path(aoi.annotations.t1), "t2": Path(aoi.annotations.t2)}


def run(aoi: AoiSpec, cfg: LabelsConfig, layout: Layout, progress: bool = True) -> Path:
    """Build the label rasters and ``labels.parquet`` of one AOI; returns the index path.

    Args:
        aoi: the AOI (annotation paths, class attribute, optional class mapping CSV).
        cfg: the ``labels`` config section.
        layout: output layout; reads ``layout.patches(aoi)`` and the HR patches it lists.
        progress: show a tqdm progress bar.

    Raises:
        InputError / LabelError: missing or bad inputs (message names file, AOI and fix).
    """
    name = aoi.name
    ann_paths = _annotation_paths(aoi)
    index_path = layout.patches(name)
    out_index = layout.labels_index(name)
    schema = load_schema(cfg.class_schema)

    mapping_path = Path(aoi.class_mapping) if aoi.class_mapping else None
    fp = input_fingerprint(
        [index_path, ann_paths["t1"], ann_paths["t2"], mapping_path, schema_path(schema.id)],
        extra={"cfg": cfg.model_dump(mode="json"), "attr": aoi.class_attribute, "v": 1},
    )
    state = layout.labels_state(name)
    if out_index.is_file() and read_fingerprint(state) == fp:
        log.info("AOI %r: labels are up to date (%s)", name, out_index)
        return out_index

    patches = read_geoparquet(
        index_path,
        required=REQUIRED_COLUMNS,
        what="tile index",
        fix=f"rerun the tile stage of AOI {name!r} (delete the file to force it)",
    )
    if len(patches) == 0:
        log.warning(
            "AOI %r: tile index %s has no patches; writing an empty labels index", name, index_path
        )

    mapping = None
    if mapping_path is not None:
        rows = read_class_mapping(mapping_path, what=f"AOI {name!r} class mapping")
        mapping = parse_class_mapping(
            rows, schema, where=f"AOI {name!r} class mapping {mapping_path}"
        )

    # read + validate + map both dates before writing anything
    crs_values = sorted(set(map(str, patches["hr_crs"]))) if len(patches) else []
    gdfs: dict[str, Any] = {}
    polys: dict[tuple[str, str], PolygonSet] = {}

    def polygons(date: str, crs: str) -> PolygonSet:
        """Polygons of ``date`` on ``crs`` (prepared once per CRS)."""
        if (date, crs) not in polys:
            polys[(date, crs)] = prepare_polygons(
                gdfs[date],
                aoi.class_attribute,
                crs,
                schema,
                mapping=mapping,
                overlap_rule=cfg.overlap_rule,
                unknown=cfg.unknown_classes,
                where=f"AOI {name!r} {date.upper()} annotations {ann_paths[date]}",
            )
        return polys[(date, crs)]

    for date in DATES:
        what = f"AOI {name!r} {date.upper()} annotations"
        gdfs[date] = read_annotations(ann_paths[date], aoi.class_attribute, what=what)
        for crs in crs_values or [gdfs[date].crs.to_string()]:
            polygons(date, crs)

    out_dirs = {d: layout.labels_dir(name, d) for d in DATES}
    if read_fingerprint(state) != fp:
        n = clear_patch_tifs(list(out_dirs.values()))
        if n:
            log.info("AOI %r: inputs changed; removed %d stale label tifs", name, n)
        write_fingerprint(state, fp)
    for d in out_dirs.values():
        d.mkdir(parents=True, exist_ok=True)

    cmap = schema.colormap()
    root = layout.root
    records: list[dict[str, Any]] = []
    n_reused = 0
    for row in tqdm(
        patches.itertuples(index=False),
        total=len(patches),
        desc=f"labels {name}",
        disable=not progress,
        mininterval=2.0,
    ):
        pid = str(row.patch_id)
        rec: dict[str, Any] = {"patch_id": pid, "aoi": name, "class_schema": schema.id}
        grid_t1 = None
        for date in DATES:
            out = out_dirs[date] / f"{pid}.tif"
            rec[f"label_{date}"] = out.relative_to(root).as_posix()
            if out.is_file():
                label, _, _ = read_patch_band(out, what=f"AOI {name!r} {date} label")
                n_reused += 1
            else:
                hr = root / str(getattr(row, f"hr_{date}"))
                grid = read_patch_grid(hr, what=f"AOI {name!r} {date.upper()} HR patch {pid}")
                if grid_t1 is None:
                    grid_t1 = grid
                elif grid.shape != grid_t1.shape or not grid.transform.almost_equals(
                    grid_t1.transform, precision=1e-6 * abs(grid_t1.transform.a)
                ):
                    raise InputError(
                        f"AOI {name!r} patch {pid}: the T2 HR patch {hr} is not on the T1 "
                        "patch grid: rerun the tile stage (T2 must be co-registered to T1)"
                    )
                label = label_patch(
                    polygons(date, grid_t1.crs),
                    grid_t1.transform,
                    grid.valid,
                    nodata=schema.nodata,
                    all_touched=cfg.all_touched,
                )
                write_patch_tif(
                    out,
                    label[np.newaxis],
                    grid_t1.transform,
                    grid_t1.crs,
                    schema.nodata,
                    colormap=cmap,
                )
            hist = class_histogram(label, schema)
            rec.update(zip(histogram_columns(date, schema), hist.tolist(), strict=True))
        records.append(rec)
    if n_reused:
        log.info(
            "AOI %r: reused %d label tifs of an earlier run with the same inputs", name, n_reused
        )

    columns = ["patch_id", "aoi", "class_schema", "label_t1", "label_t2"]
    for date in DATES:
        columns += histogram_columns(date, schema)
    df = pd.DataFrame.from_records(records, columns=columns)
    for c in columns[5:]:
        df[c] = df[c].astype("int64")
    write_geoparquet(df, out_index)
    totals = {date: df[histogram_columns(date, schema)].sum().to_numpy() for date in DATES}
    for date in DATES:
        t = totals[date]
        log.info(
            "AOI %r %s: %d patches, %d px, background %.1f%%, no data %.1f%%",
            name,
            date,
            len(df),
            int(t.sum()),
            100.0 * t[schema.background] / max(1, t.sum()),
            100.0 * t[-1] / max(1, t.sum()),
        )
    return out_index


if __name__ == "__main__":  # pragma: no cover - run by Snakemake
    from stages._common import smk_main

    def _main(smk: Any) -> None:
        run(
            AoiSpec.model_validate(smk.params.aoi),
            parse_section("labels", smk.params.cfg),
            Layout(Path(smk.params.root)),
        )

    smk_main(snakemake, _main)  # noqa: F821
