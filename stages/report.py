"""Stage adapter of rule ``report``: the dataset's QA report.

Writes ``<root>/report/index.html`` and its PNGs (see :mod:`pipeline.io.report_io`) from the
dataset index, the HR / label / change GeoTIFFs of a few sample patches, the Sentinel mosaics,
the per-month fetch summaries, ``splits/leakage.json`` and ``stats.json``.
"""

import logging
from pathlib import Path
from typing import Any

from pipeline.config import ReportConfig, parse_section
from pipeline.io.report_io import build_report
from pipeline.layout import Layout

log = logging.getLogger("pipeline.report")


def run(cfg: ReportConfig, layout: Layout, class_schema: str = "fusu17") -> Path:
    """Build the QA report of the dataset at ``layout.root``; return the page's path."""
    page = build_report(layout, n_samples=cfg.n_samples, class_schema=class_schema)
    log.info("QA report written to %s", page)
    return page


if __name__ == "__main__":  # pragma: no cover - run by Snakemake
    from stages._common import smk_main

    def _main(smk: Any) -> None:
        run(
            parse_section("report", smk.params.cfg),
            Layout(Path(smk.params.root)),
            class_schema=smk.params.class_schema,
        )

    smk_main(snakemake, _main)  # noqa: F821
