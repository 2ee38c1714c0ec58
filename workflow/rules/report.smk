# Rules for the report part of the pipeline: the dataset's QA report (one job per dataset).
# It depends on every dataset output it shows: the merged index (which itself depends on the
# HR, label and change outputs), stats.json, every AOI-month fetch summary (the mosaics are
# complete when those exist) and the split leakage report.


rule report:
    input:
        index=L.index(),
        stats=L.stats(),
        leakage=str(L.leakage_report()),
        months=_report_month_summaries,
    output:
        str(L.report_dir() / "index.html"),
    params:
        cfg=CFG.section("report"),
        class_schema=CFG.labels.class_schema,
        root=dataset_root,
    log:
        f"{ROOT}/logs/report.log",
    benchmark:
        str(L.job_benchmark("report", "dataset")),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/report.py"


if any(not spec.template for spec in AOIS.values()):
    ALL_TARGETS.append(str(L.report_dir() / "index.html"))
