"""Rule ``train``: train and evaluate FUSU-Net.

Driver: :func:`pipeline.train.drivers.train_model`.
"""

from pipeline.train.drivers import train_model
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    return train_model(s.config.train, s.layout, threads=s.threads)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
