"""Stage `change` (one job per AOI): T1/T2 label rasters -> binary and from-to change rasters.

Reads ``aois/<aoi>/labels.parquet`` (written by :mod:`stages.labels`) and each patch's T1/T2
label GeoTIFFs, and writes (encodings in :mod:`pipeline.change`):

* ``aois/<aoi>/change/bin/<patch_id>.tif``: uint8, 1 changed, 0 unchanged, 255 ignored;
* ``aois/<aoi>/change/fromto/<patch_id>.tif``: uint16, ``y1 * 18 + y2``, 65535 ignored;
* ``aois/<aoi>/change.parquet`` (written last): ``patch_id``, ``aoi``, ``change_bin``,
  ``change_fromto`` (paths relative to the dataset root), ``changed_px``, ``valid_px``,
  ``change_fraction`` (changed / valid pixels, NaN without valid pixels).

Pixels are ignored where either date is no data (255) and, with ``change.ignore_background``,
where either date is background (0). Streams patch by patch; reruns reuse rasters of an
interrupted run with the same inputs (fingerprint in ``aois/<aoi>/change/_inputs.json``).
"""

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.change import (
    BIN_COLORMAP,
    BIN_NODATA,
    FROMTO_NODATA,
    binary_change,
    change_stats,
    fromto_change,
)
from pipeline.classes import load_schema
from pipeline.config import AoiSpec, ChangeConfig, parse_section
from pipeline.errors import InputError
from pipeline.io import read_geoparquet, write_geoparquet
from pipeline.io.labels import (
    clear_patch_tifs,
    input_fingerprint,
    read_fingerprint,
    read_patch_band,
    write_fingerprint,
)
from pipeline.io.raster import write_patch_tif
from pipeline.layout import Layout

log = logging.getLogger("pipeline.stages.change")

REQUIRED_COLUMNS = ("patch_id", "label_t1", "label_t2")
COLUMNS = [
    "patch_id",
    "aoi",
    "change_bin",
    "change_fromto",
    "changed_px",
    "valid_px",
    "change_fraction",
]


def run(aoi: AoiSpec | str, cfg: ChangeConfig, layout: Layout, progress: bool = True) -> Path:
    """Build the change rasters and ``change.parquet`` of one AOI; returns the index path.

    Args:
        aoi: the AOI (or its name).
        cfg: the ``change`` config section.
        layout: output layout; reads ``layout.labels_index(aoi)`` and the label tifs it lists.
        progress: show a tqdm progress bar.

    Raises:
        InputError: missing / inconsistent labels index or label rasters.
    """
    name = aoi if isinstance(aoi, str) else aoi.name
    labels_index = layout.labels_index(name)
    out_index = layout.change_index(name)
    fp = input_fingerprint([labels_index], extra={"cfg": cfg.model_dump(mode="json"), "v": 1})
    state = layout.change_state(name)
    if out_index.is_file() and read_fingerprint(state) == fp:
        log.info("AOI %r: change is up to date (%s)", name, out_index)
        return out_index

    labels = read_geoparquet(
        labels_index,
        required=REQUIRED_COLUMNS,
        what="labels index",
        fix=f"rerun the labels stage of AOI {name!r} (delete the file to force it)",
    )
    schema_ids = set(labels["class_schema"]) if "class_schema" in labels.columns else {"fusu17"}
    if len(schema_ids) > 1:
        raise InputError(
            f"labels index {labels_index} mixes class schemas {sorted(schema_ids)}: rerun the "
            "labels stage"
        )
    schema = load_schema(next(iter(schema_ids)) if schema_ids else "fusu17")

    out_dirs = {k: layout.change_dir(name, k) for k in ("bin", "fromto")}
    if read_fingerprint(state) != fp:
        n = clear_patch_tifs(list(out_dirs.values()))
        if n:
            log.info("AOI %r: inputs changed; removed %d stale change tifs", name, n)
        write_fingerprint(state, fp)
    for d in out_dirs.values():
        d.mkdir(parents=True, exist_ok=True)

    root = layout.root
    records: list[dict[str, Any]] = []
    for row in tqdm(
        labels.itertuples(index=False),
        total=len(labels),
        desc=f"change {name}",
        disable=not progress,
        mininterval=2.0,
    ):
        pid = str(row.patch_id)
        out_bin = out_dirs["bin"] / f"{pid}.tif"
        out_ft = out_dirs["fromto"] / f"{pid}.tif"
        if out_bin.is_file() and out_ft.is_file():
            bin_arr, _, _ = read_patch_band(out_bin, what=f"AOI {name!r} binary change")
        else:
            y1, tr1, crs1 = read_patch_band(root / row.label_t1, what=f"AOI {name!r} T1 label")
            y2, tr2, _ = read_patch_band(root / row.label_t2, what=f"AOI {name!r} T2 label")
            if y1.shape != y2.shape or not tr1.almost_equals(tr2, precision=1e-6 * abs(tr1.a)):
                raise InputError(
                    f"AOI {name!r} patch {pid}: T1 and T2 labels are on different grids: "
                    "rerun the labels stage"
                )
            kw = {
                "ignore_background": cfg.ignore_background,
                "nodata": schema.nodata,
                "background": schema.background,
            }
            bin_arr = binary_change(y1, y2, **kw)
            ft = fromto_change(y1, y2, n_classes=schema.n_classes, **kw)
            write_patch_tif(out_ft, ft[np.newaxis], tr1, crs1, FROMTO_NODATA)
            write_patch_tif(
                out_bin, bin_arr[np.newaxis], tr1, crs1, BIN_NODATA, colormap=BIN_COLORMAP
            )
        rec: dict[str, Any] = {
            "patch_id": pid,
            "aoi": name,
            "change_bin": out_bin.relative_to(root).as_posix(),
            "change_fromto": out_ft.relative_to(root).as_posix(),
        }
        rec.update(change_stats(bin_arr))
        records.append(rec)

    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    df["changed_px"] = df["changed_px"].astype("int64")
    df["valid_px"] = df["valid_px"].astype("int64")
    df["change_fraction"] = df["change_fraction"].astype("float64")
    write_geoparquet(df, out_index)
    valid = int(df["valid_px"].sum())
    log.info(
        "AOI %r: %d patches, %d with change, overall change fraction %.4f (%d of %d valid px)",
        name,
        len(df),
        int((df["changed_px"] > 0).sum()),
        (df["changed_px"].sum() / valid) if valid else float("nan"),
        int(df["changed_px"].sum()),
        valid,
    )
    return out_index


if __name__ == "__main__":  # pragma: no cover - run by Snakemake
    from stages._common import smk_main

    def _main(smk: Any) -> None:
        run(
            str(smk.wildcards.aoi),
            parse_section("change", smk.params.cfg),
            Layout(Path(smk.params.root)),
        )

    smk_main(snakemake, _main)  # noqa: F821
