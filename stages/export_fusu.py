"""Rule ``export_fusu``: native dataset -> FUSU release layout.

Driver: :func:`pipeline.dataset.drivers.export_fusu`.
"""

from pipeline.dataset.drivers import export_fusu
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return export_fusu(s.aois, s.config.export, s.layout, s.config.labels.class_schema)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
