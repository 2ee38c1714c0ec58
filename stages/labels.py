"""Rule ``labels``: annotation polygons -> T1/T2 label GeoTIFFs per patch.

Driver: :func:`pipeline.hr.drivers.label_aoi`.
"""

from pipeline.hr.drivers import label_aoi
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return label_aoi(s.aoi, s.config.labels, s.layout, threads=s.threads)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
