"""Rule ``assemble``: per-AOI indices -> dataset index + splits.

Driver: :func:`pipeline.dataset.drivers.assemble_dataset`.
"""

from pipeline.dataset.drivers import assemble_dataset
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return assemble_dataset(s.aois, s.config.splits, s.layout)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
