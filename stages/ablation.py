"""Rule ``ablation``: the comparison table of the Table-7 ablation runs.

Driver: :func:`pipeline.train.drivers.ablation_table`.
"""

from pipeline.train.drivers import ablation_table
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return ablation_table(s.config.train, s.layout)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
