"""Stage ``export_fusu``: native dataset -> FUSU release layout under ``export/fusu/``.

Naming and value conventions: :mod:`pipeline.export_fusu`. The whole folder is written to a
temporary sibling and swapped into place at the end, so a failed export leaves nothing
half-written; an existing non-empty export folder is refused unless ``export.overwrite``.
A manifest (``export/fusu_manifest.json``, the rule's output) records what was written.
"""


import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.classes import load_schema
from pipeline.config import AoiSpec, ExportConfig, parse_section
from pipeline.export_fusu import (
    SPLITS,
    check_months,
    check_target,
    export_rows,
    label_bin_values,
    meta_document,
    sample_paths,
)
from pipeline.grid import AoiGrid
from pipeline.io import atomic_path, read_json, write_bytes_atomic, write_json
from pipeline.io.dataset_io import read_index_table
from pipeline.io.export import dir_is_nonempty, read_band, read_rgb, write_png, write_times_tif
from pipeline.layout import Layout
from pipeline.sources.base import ALL_BANDS, S1_WAVELENGTH_NM, S2_WAVELENGTHS_NM

log = logging.getLogger("pipeline.export_fusu")


def manifest_path(layout: Layout) -> Path:
    """The export's manifest (outside the export folder, so Snakemake never deletes the folder
    itself before the overwrite check)."""
    return layout.export_dir().parent / "fusu_manifest.json"


def run(
    aois: Sequence[AoiSpec],
    cfg: ExportConfig,
    layout: Layout,
    class_schema: str = "fusu17",
    progress: bool = True,
) -> Path:
    """Export every train/val/test patch of the dataset to the FUSU layout.

    Raises:
        DatasetError: non-empty target without ``export.overwrite``, months missing.
        InputError: a native file is missing.
    """
    from pipeline.io.mosaic import mosaic_months, read_footprint_cube

    dest = layout.export_dir()
    check_target(dest, dir_is_nonempty(dest), cfg.overwrite)
    index = read_index_table(layout.index())
    rows = export_rows(index)
    schema = load_schema(class_schema)
    palette = {v: rgba[:3] for v, rgba in schema.colormap().items()}
    specs = {a.name: a for a in aois}
    used = sorted(set(rows["aoi"].astype(str)))
    months: dict[str, list[str]] = {}
    grids: dict[str, AoiGrid] = {}
    for a in used:
        have = mosaic_months(layout.mosaic(a))
        want = {a: specs[a].months} if a in specs else {}
        months[a] = check_months(want, have, a)
        grids[a] = AoiGrid.from_dict(read_json(layout.grid(a)))
    root = layout.root
    n_written = 0
    with atomic_path(dest) as tmp:
        it = rows.itertuples(index=False)
        for r in tqdm(it, total=len(rows), desc="export_fusu", disable=not progress,
                      mininterval=2.0):
            pid, split, aoi = str(r.patch_id), str(r.split), str(r.aoi)
            paths = sample_paths(split, pid, len(months[aoi]))
            im1, _ = read_rgb(root / str(r.hr_t1))
            im2, _ = read_rgb(root / str(r.hr_t2))
            write_png(tmp / paths["im1"], im1)
            write_png(tmp / paths["im2"], im2)
            for d, key in (("t1", "label1"), ("t2", "label2")):
                lab = read_band(root / str(getattr(r, f"label_{d}")), f"{d.upper()} label")
                write_png(tmp / paths[key], lab, palette=palette)
            chg = read_band(root / str(r.change_bin), "binary change")
            write_png(tmp / paths["label_bin"], label_bin_values(chg, cfg.bin_ignore_value))
            cube = read_footprint_cube(layout.mosaic(aoi), int(r.fp_col0), int(r.fp_row0),
                                       int(r.fp_size_px))
            pos = {m: i for i, m in enumerate(cube["months"])}
            transform = grids[aoi].window_transform(int(r.fp_col0), int(r.fp_row0))
            for k, m in enumerate(months[aoi], start=1):
                write_times_tif(
                    tmp / paths[f"times_{k}"], cube["x"][pos[m]], transform, grids[aoi].crs,
                    cube["bands"], tags={"month": m, "k": str(k), "patch_id": pid},
                )
            n_written += 1
        for s in SPLITS:
            ids = rows.loc[rows["split"] == s, "patch_id"].astype(str).tolist()
            write_bytes_atomic(tmp / f"{s}.txt", "".join(f"{i}\n" for i in ids).encode())
        cols = [c for c in ("patch_id", "split", "aoi", "city", "gsd_m", "hr_crs", "t1", "t2",
                            "grid_crs", "fp_col0", "fp_row0", "fp_size_px", "patch_off_x_px",
                            "patch_off_y_px", "patch_w_px", "patch_h_px") if c in rows.columns]
        samples = rows[cols].copy()
        samples["months"] = [";".join(months[str(a)]) for a in samples["aoi"]]
        write_bytes_atomic(tmp / "samples.csv", samples.to_csv(index=False).encode())
        write_json(tmp / "meta.json", meta_document(
            ALL_BANDS, (*S2_WAVELENGTHS_NM, S1_WAVELENGTH_NM, S1_WAVELENGTH_NM),
            schema.names, cfg.bin_ignore_value, months,
        ))
    counts = {s: int((rows["split"] == s).sum()) for s in SPLITS}
    write_json(manifest_path(layout), {"folder": str(dest), "samples": counts,
                                       "months_by_aoi": months, "patches": n_written})
    log.info("exported %d patches to %s (%s)", n_written, dest, counts)
    return manifest_path(layout)


if __name__ == "__main__":  # pragma: no cover - run by Snakemake
    from stages._common import smk_main

    def _main(smk: Any) -> None:
        run(
            [AoiSpec.model_validate(a) for a in smk.params.aois],
            parse_section("export", smk.params.cfg),
            Layout(Path(smk.params.root)),
            class_schema=smk.params.class_schema,
        )

    smk_main(snakemake, _main)  # noqa: F821
