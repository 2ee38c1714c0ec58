"""Rule ``tile``: T1/T2 HR pair -> patch GeoTIFFs + tile index.

Driver: :func:`pipeline.hr.drivers.tile_aoi`.
"""

from pipeline.hr.drivers import tile_aoi
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return tile_aoi(s.aoi, s.config.tile, s.layout, threads=s.threads)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
