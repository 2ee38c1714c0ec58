"""Rule ``demo_scenes``: synthetic Sentinel-1/2 scene archive of a demo AOI.

Driver: :func:`pipeline.demo.drivers.demo_scenes`.
"""

from pipeline.demo.drivers import demo_scenes
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return demo_scenes(s.aoi, s.config.demo, s.output[0])


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
