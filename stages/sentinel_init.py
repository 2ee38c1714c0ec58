"""Rule ``sentinel_init``: block plan + staging mosaic of one AOI.

Driver: :func:`pipeline.sentinel.drivers.init_aoi`.
"""

from pipeline.sentinel.drivers import init_aoi
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return init_aoi(s.aoi, s.config.sentinel, s.layout)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
