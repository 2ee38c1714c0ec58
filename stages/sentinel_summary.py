"""Rule ``sentinel``: month summaries -> AOI summary + read-optimised cube.

Driver: :func:`pipeline.sentinel.drivers.summarize_aoi`.
"""

from pipeline.sentinel.drivers import summarize_aoi
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return summarize_aoi(s.aoi, s.layout,
                         allow_empty_series=s.config.sentinel.allow_empty_series)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
