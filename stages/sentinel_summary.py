"""Stage ``sentinel`` (one job per AOI): aggregate the month summaries and build the cube.

Consolidates the write-optimised staging store (``Layout.mosaic_staging``, one chunk per
month) into the read-optimised cube ``Layout.mosaic(aoi)`` (chunks spanning all months and
bands, Blosc-LZ4; atomic, byte-identical on rerun; root attr ``s2_product`` = {month: L2A |
L1C | none}), then writes ``Layout.sentinel_summary(aoi)`` (totals + per-month table).
"""

import logging
from pathlib import Path
from typing import Any

from pipeline.io import read_json, write_json
from pipeline.io.mosaic import consolidate_mosaic
from pipeline.layout import Layout

log = logging.getLogger("pipeline.stages.sentinel_summary")

_TOTALS = ("requests", "pixels", "bytes", "retries", "seconds", "blocks_done", "blocks_skipped")


def run(aoi: str, months: list[str], layout: Layout) -> dict[str, Any]:
    """Aggregate ``months`` of ``aoi``; returns (and writes) the AOI summary."""
    per = {m: read_json(layout.month_summary(aoi, m)) for m in months}
    totals = {k: sum(float(s.get(k, 0) or 0) for s in per.values()) for k in _TOTALS}
    products = {m: (s.get("s2_product") or "none") for m, s in per.items()}
    summary = {
        "aoi": aoi,
        "store": str(layout.mosaic(aoi)),
        "staging": str(layout.mosaic_staging(aoi)),
        "months": months,
        "totals": {k: (round(v, 3) if k == "seconds" else int(v)) for k, v in totals.items()},
        "s2_product": products,
        "months_without_s2": [m for m, p in products.items() if p == "none"],
        "months_without_s1": [m for m, s in per.items() if not s.get("n_scenes", {}).get("s1")],
        "per_month": per,
    }
    cube = consolidate_mosaic(layout.mosaic_staging(aoi), layout.mosaic(aoi), products)
    summary["cube"] = {"chunks": cube["chunks"], "bytes": cube["bytes"]}
    write_json(layout.sentinel_summary(aoi), summary)
    log.info("%s: %d months, %d requests, %.1f s; no S2 in %s", aoi, len(months),
             summary["totals"]["requests"], summary["totals"]["seconds"],
             summary["months_without_s2"] or "none")
    return summary


def _main(smk: Any) -> None:
    run(smk.wildcards.aoi, list(smk.params.months), Layout(Path(smk.params.root)))


if __name__ == "__main__":
    from stages._common import smk_main

    smk_main(snakemake, _main)  # type: ignore[name-defined]  # noqa: F821
