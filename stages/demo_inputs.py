"""Rule ``demo_inputs``: synthetic demo AOI's HR images and annotations.

Driver: :func:`pipeline.demo.drivers.demo_inputs`.
"""

from pipeline.demo.drivers import demo_inputs
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return demo_inputs(s.aoi, s.config.demo)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
