"""Rule ``train_ablation_run``: one run of the Table-7 ablation (wildcard ``run``).

Driver: :func:`pipeline.train.drivers.train_model` on the run of
:func:`~pipeline.train.drivers.ablation_runs`.
"""

from pipeline.train.drivers import ablation_runs, train_model
from stages._common import Stage, run_stage


def main(s: Stage) -> object:
    cfg = ablation_runs(s.config.train)[str(s.smk.wildcards.run)]
    return train_model(cfg, s.layout, threads=s.threads)


run_stage(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
