"""Rule ``footprints``: tile index -> footprints on the AOI's 10 m grid.

Driver: :func:`pipeline.hr.drivers.footprints_aoi`.
"""

from pipeline.hr.drivers import footprints_aoi
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return footprints_aoi(s.aoi, s.config.footprints, s.layout)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
