"""Stage `expand_stats` (one job per dataset): statistics and summary of an expansion.

Reads the sample index, every group's staging mosaic and month summary; consolidates each
staging store into the read-optimised cube ``expand/sentinel/<group>.zarr``
(:func:`pipeline.io.mosaic.consolidate_mosaic`); writes
``expand/stats.json`` (per-band mean/std over every sample's footprint window in the sample's
own months, clear pixels only -- see :func:`pipeline.stats.sentinel_moments`) and
``expand/summary.json`` (samples, groups, months, fetch totals per group, label encodings,
whether originals were referenced or copied). With ``expand.copy_originals`` the original
files are copied to ``expand/originals/<sample_id>/`` first.
"""


import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.config import ExpandConfig, parse_section
from pipeline.io import read_geoparquet, read_json, write_json
from pipeline.io.expand_io import copy_originals
from pipeline.io.mosaic import consolidate_mosaic, mosaic_months, read_footprint_cube
from pipeline.layout import Layout
from pipeline.sources.base import ALL_BANDS
from pipeline.stats import check_sentinel_inputs, sentinel_moments

log = logging.getLogger("pipeline.stages.expand_stats")

_SUM = ("requests", "pixels", "bytes", "retries", "blocks")


def _windows(index: Any, layout: Layout, tile_px: int = 256) -> Iterator[dict[str, Any]]:
    """Footprint windows of every sample over its own months, read in tiles of at most
    ``tile_px`` px (memory stays flat for large footprints, e.g. 1536 px)."""
    from pipeline.expand.plan import months_of

    xl = layout.expand_layout()
    for row in index.itertuples(index=False):
        want = set(months_of(row.month_first, row.month_last))
        c0, r0, n = int(row.fp_col0), int(row.fp_row0), int(row.fp_size_px)
        for dr in range(0, n, tile_px):
            for dc in range(0, n, tile_px):
                h, w = min(tile_px, n - dr), min(tile_px, n - dc)
                cube = read_footprint_cube(xl.mosaic(row.aoi), c0 + dc, r0 + dr, (h, w))
                t = [i for i, m in enumerate(cube["months"]) if m in want]
                yield {"x": cube["x"][t], "counts": cube["counts"][t]}


def run(cfg: ExpandConfig, layout: Layout, dataset: str) -> dict[str, Any]:
    """Write stats.json and summary.json of the expansion; returns the summary.

    Raises:
        DatasetError: a group mosaic or month is missing (run the expand_sentinel jobs).
    """
    xl = layout.expand_layout()
    index = read_geoparquet(layout.expand_samples())
    plan = read_json(layout.expand_plan())
    groups = {g["group"]: g for g in plan["groups"]}
    available = {}
    for g in groups:
        store = xl.mosaic_staging(g)
        available[g] = mosaic_months(store) if store.exists() else None
    check_sentinel_inputs({g: p["months"] for g, p in groups.items()}, available)
    gsum: dict[str, Any] = {}
    for g, p in groups.items():
        tot = dict.fromkeys(_SUM, 0)
        products = {}
        for m in p["months"]:
            s = read_json(xl.month_summary(g, m))
            for k in _SUM:
                tot[k] += int(s.get(k, 0) or 0)
            products[m] = s.get("s2_product") or "none"
        consolidate_mosaic(xl.mosaic_staging(g), xl.mosaic(g), products)
        gsum[g] = {"samples": p["n_samples"], "months": p["months"], "grid": p["grid"],
                   "s2_product": products, **tot}
    acc = sentinel_moments(_windows(index, layout), ALL_BANDS)
    stats = {"dataset": dataset, "samples": len(index), "sentinel": acc.as_dict(ALL_BANDS),
             "note": "clear pixels of every sample's footprint window over its own months"}
    write_json(xl.stats(), stats)
    copied = 0
    if cfg.copy_originals:
        copied = copy_originals(dict(zip(index["sample_id"], index["files"], strict=True)),
                                layout.expand_originals_dir())
    summary = {
        "dataset": dataset,
        "adapter": cfg.adapter,
        "path": cfg.path,
        "samples": len(index),
        "groups": gsum,
        "totals": {k: int(sum(v[k] for v in gsum.values())) for k in _SUM},
        "plan_totals": plan["totals"],
        "months_per_sample": {
            "min": int(index["n_months"].min()), "max": int(index["n_months"].max()),
        },
        "label_encodings": dict(Counter(x for x in index["label_encoding"] if x)),
        "originals": "copied" if cfg.copy_originals else "referenced",
        "originals_dir": str(layout.expand_originals_dir()) if cfg.copy_originals else None,
        "originals_copied_now": copied,
        "files_example": json.loads(index["files"].iloc[0]),
    }
    write_json(layout.expand_summary(), summary)
    log.info("%s: %d samples, %d groups, %d requests", dataset, len(index), len(gsum),
             summary["totals"]["requests"])
    return summary


def _main(smk: Any) -> None:
    run(parse_section("expand", dict(smk.params.cfg)), Layout(Path(smk.params.root)),
        str(smk.params.dataset))


if __name__ == "__main__":
    from stages._common import smk_main

    smk_main(snakemake, _main)  # type: ignore[name-defined]  # noqa: F821
