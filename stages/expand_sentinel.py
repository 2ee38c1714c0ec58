"""Rules ``expand_sentinel_init`` / ``expand_sentinel_month``: an expansion group's staging
mosaic, and one (group, month) of composites into it (drivers:
:func:`pipeline.expand.drivers.expand_init`, :func:`pipeline.expand.drivers.expand_month`)."""

from pipeline.expand.drivers import expand_init, expand_month
from stages._common import Stage, run_stage


def _run(s: Stage) -> object:
    if s.smk.params.mode == "init":
        return expand_init(s.group, s.layout)
    return expand_month(s.group, s.month, s.config.sentinel, s.config.expand, s.layout,
                        threads=s.threads, dask=s.config.dask)


run_stage(snakemake, _run)  # type: ignore[name-defined]  # noqa: F821
