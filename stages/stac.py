"""Rule ``stac``: dataset index -> STAC Collection.

Driver: :func:`pipeline.dataset.drivers.stac_collection`.
"""

from pipeline.dataset.drivers import stac_collection
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return stac_collection(s.aois, s.layout, s.config.dataset, s.config.labels.class_schema)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
