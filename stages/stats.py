"""Rule ``stats``: dataset index + mosaics + HR patches -> stats.json.

Driver: :func:`pipeline.dataset.drivers.dataset_stats`.
"""

from pipeline.dataset.drivers import dataset_stats
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return dataset_stats(s.aois, s.layout)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
