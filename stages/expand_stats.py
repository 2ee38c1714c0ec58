"""Rule ``expand_stats``: expansion cubes, statistics and summary.

Driver: :func:`pipeline.expand.drivers.expand_stats`.
"""

from pipeline.expand.drivers import expand_stats
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return expand_stats(s.config.expand, s.layout, s.config.dataset)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
