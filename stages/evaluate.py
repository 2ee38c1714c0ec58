"""Rule ``evaluate``: metrics of a trained run on one split.

Driver: :func:`pipeline.train.drivers.evaluate_run`.
"""

from pipeline.train.drivers import evaluate_run
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return evaluate_run(s.config.train, s.layout, threads=s.threads)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
