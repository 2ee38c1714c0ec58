"""Rule ``expand_stats``: expansion cubes, statistics and summary.

Driver: :func:`pipeline.expand.drivers.expand_stats`.
"""

from pipeline.expand.drivers import expand_stats
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return expand_stats(s.config.expand, s.layout, s.config.dataset,
                        allow_empty_series=s.config.sentinel.allow_empty_series)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
