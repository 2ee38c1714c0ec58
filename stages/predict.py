"""Rule ``predict``: georeferenced predictions of a trained run on one split.

Driver: :func:`pipeline.train.drivers.predict_run`.
"""

from pipeline.train.drivers import predict_run
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return predict_run(s.config.train, s.layout, threads=s.threads)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
