# Rules for the labels part of the pipeline: class labels per patch, then change masks.
# One job per AOI (never per patch). The label / change GeoTIFF folders are written alongside;
# the index parquet is the declared output and is written last.

rule labels:
    input:
        patches=L.patches("{aoi}"),
        annotations=_annotation_inputs,
    output:
        L.labels_index("{aoi}"),
    params:
        cfg=CFG.section("labels"),
        aoi=_label_aoi_params,
        aoi_file=_aoi_file,
        root=dataset_root,
    log:
        f"{ROOT}/logs/labels/{{aoi}}.log",
    benchmark:
        str(L.job_benchmark("labels", "{aoi}")),
    # patches labelled on one forked process per thread (pipeline.parallel.forked_map: the
    # Python work around each rasterio open holds the GIL, so threads kept 1.1 cores busy)
    threads: 4
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/labels.py"


rule change:
    input:
        L.labels_index("{aoi}"),
    output:
        L.change_index("{aoi}"),
    params:
        cfg=CFG.section("change"),
        aoi_file=_aoi_file,
        root=dataset_root,
    log:
        f"{ROOT}/logs/change/{{aoi}}.log",
    benchmark:
        str(L.job_benchmark("change", "{aoi}")),
    # one forked process per thread, as rule labels
    threads: 4
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/change.py"


ALL_TARGETS.extend(
    path
    for name, spec in AOIS.items()
    if not spec.template
    for path in (L.patches(name), L.labels_index(name), L.change_index(name))
)
