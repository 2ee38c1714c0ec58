"""Rule ``report``: the dataset's QA report.

Driver: :func:`pipeline.dataset.qa.build_report`.
"""

from pipeline.dataset.qa import build_report
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return build_report(s.config.report, s.layout, s.config.labels.class_schema)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
