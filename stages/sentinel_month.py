"""Rule ``sentinel_month``: one AOI-month of composites into the staging mosaic.

Driver: :func:`pipeline.sentinel.drivers.fetch_month`.
"""

from pipeline.sentinel.drivers import fetch_month
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return fetch_month(
        s.aoi, s.month, s.config.sentinel, s.layout, threads=s.threads, dask=s.config.dask
    )


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
