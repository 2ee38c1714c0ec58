# Rules for the train part of the pipeline: FUSU-Net (or a baseline) on the built dataset.
# Not part of `all`: run it explicitly, e.g.
#   snakemake --cores 8 --resources gpu=1 train
#   snakemake --cores 2 train --config 'train={"tiny": true, "hr_size_px": 128, "max_steps": 20}'
# The job declares `gpu=1` (so a cluster profile / `--resources gpu=1` limits concurrent
# training jobs); it falls back to CPU when no GPU is visible (train.device: auto).
# Outputs go to train/<train.run>/; killing and re-running resumes from
# train/<run>/checkpoints/last.pt. Several runs per dataset: --config train='{run: t9, months: 9}'.


rule train:
    input:
        index=L.index(),
        stats=L.stats(),
    output:
        metrics=f"{L.train_dir(CFG.train.run)}/metrics.json",
        model=f"{L.train_dir(CFG.train.run)}/model.pt",
    params:
        cfg=CFG.section("train"),
        root=dataset_root,
    threads: CFG.train.num_workers + 1
    resources:
        gpu=1,
    log:
        f"{ROOT}/logs/train/{CFG.train.run}.log",
    benchmark:
        str(L.job_benchmark("train", CFG.train.run)),
    conda:
        "../envs/train.yaml"
    script:
        "../../stages/train.py"


# Evaluate / predict a trained run (train.run) with its best-on-val (or final: train.weights)
# weights on one split (train.eval_split), e.g.
#   snakemake --cores 2 evaluate --config 'train={"run": "t9", "eval_split": "val"}'
#   snakemake --cores 2 predict     (GeoTIFFs on each patch's grid + one VRT mosaic per AOI)
rule evaluate:
    input:
        model=f"{L.train_dir(CFG.train.run)}/model.pt",
        index=L.index(),
    output:
        f"{L.train_dir(CFG.train.run)}/eval_{CFG.train.eval_split}_{CFG.train.weights}.json",
    params:
        cfg=CFG.section("train"),
        root=dataset_root,
    threads: CFG.train.num_workers + 1
    resources:
        gpu=1,
    log:
        f"{ROOT}/logs/evaluate/{CFG.train.run}_{CFG.train.eval_split}.log",
    benchmark:
        str(L.job_benchmark("evaluate", f"{CFG.train.run}_{CFG.train.eval_split}")),
    conda:
        "../envs/train.yaml"
    script:
        "../../stages/evaluate.py"


rule predict:
    input:
        model=f"{L.train_dir(CFG.train.run)}/model.pt",
        index=L.index(),
    output:
        f"{L.train_dir(CFG.train.run)}/predictions/{CFG.train.eval_split}/done.json",
    params:
        cfg=CFG.section("train"),
        root=dataset_root,
    threads: CFG.train.num_workers + 1
    resources:
        gpu=1,
    log:
        f"{ROOT}/logs/predict/{CFG.train.run}_{CFG.train.eval_split}.log",
    benchmark:
        str(L.job_benchmark("predict", f"{CFG.train.run}_{CFG.train.eval_split}")),
    conda:
        "../envs/train.yaml"
    script:
        "../../stages/predict.py"


# The Table-7 ablation: runs t<N> (train.ablation_months; t0 = HR only) and the U-TAE baseline
# 'utae', each a named run trained with this config, then one comparison table:
#   snakemake --cores 2 ablation --config 'train={"tiny": true, "max_steps": 20}'
from pipeline.train.drivers import ablation_runs as _ablation_runs

_ABLATION = _ablation_runs(CFG.train)


rule train_ablation_run:
    input:
        index=L.index(),
        stats=L.stats(),
    output:
        metrics=f"{L.train_dir('{run}')}/metrics.json",
        model=f"{L.train_dir('{run}')}/model.pt",
    wildcard_constraints:
        run="|".join(_ABLATION),
    params:
        cfg=lambda wc: CFG.section("train") | {k: getattr(_ABLATION[wc.run], k)
                                               for k in ("run", "months", "model")},
        root=dataset_root,
    threads: CFG.train.num_workers + 1
    resources:
        gpu=1,
    log:
        f"{ROOT}/logs/train/{{run}}.log",
    benchmark:
        str(L.job_benchmark("train_ablation_run", "{run}")),
    conda:
        "../envs/train.yaml"
    script:
        "../../stages/train_ablation_run.py"


rule ablation:
    input:
        [f"{L.train_dir(name)}/metrics.json" for name in _ABLATION],
    output:
        csv=f"{ROOT}/train/ablation.csv",
        md=f"{ROOT}/train/ablation.md",
    params:
        cfg=CFG.section("train"),
        root=dataset_root,
    log:
        f"{ROOT}/logs/train/ablation.log",
    benchmark:
        str(L.job_benchmark("ablation", "dataset")),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/ablation.py"
