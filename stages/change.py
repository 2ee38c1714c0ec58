"""Rule ``change``: T1/T2 labels -> binary and from-to change GeoTIFFs.

Driver: :func:`pipeline.hr.drivers.change_aoi`.
"""

from pipeline.hr.drivers import change_aoi
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return change_aoi(s.aoi, s.config.change, s.layout, threads=s.threads)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
