"""Rule ``expand_index``: foreign change dataset -> sample index + plan.

Driver: :func:`pipeline.expand.drivers.expand_index`.
"""

from pipeline.expand.drivers import expand_index
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return expand_index(
        s.config.expand, s.config.footprints, s.config.sentinel, s.layout, s.config.dataset
    )


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
