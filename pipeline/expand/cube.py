"""Reading an expanded sample back: its monthly Sentinel cube over its own months."""

from __future__ import annotations

from typing import Any

from pipeline.errors import InputError
from pipeline.grid import AoiGrid
from pipeline.io.jsonfile import read_json
from pipeline.io.mosaic_read import month_span, read_footprint_cube
from pipeline.io.parquet import read_geoparquet


def read_sample_cube(layout: Any, sample_id: str, index: Any = None) -> dict[str, Any]:
    """The monthly Sentinel-1/2 cube of one expanded sample over its own months.

    Args:
        layout: the dataset's :class:`pipeline.layout.Layout` (``results/<dataset>``).
        sample_id: the dataset's sample id.
        index: the sample index (``layout.expand_samples()``), to avoid re-reading it per call.

    Returns:
        :func:`pipeline.io.mosaic_read.read_footprint_cube` dict restricted to the months
        ``month_first..month_last`` of the sample (``x`` (T, 14, S, S) float32, NaN = no data;
        ``counts`` (T, 2, S, S) uint8; ``months``; ``bands``) plus ``group``, ``crs`` (grid
        CRS), ``transform`` (affine of the footprint window, 6-tuple) and ``patch_box_px``
        (off_x, off_y, w, h: the sample inside the footprint, grid px).

    Raises:
        InputError: unknown sample id or missing mosaic.
    """
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

