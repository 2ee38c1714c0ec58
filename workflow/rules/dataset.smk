# Rules for the dataset part of the pipeline: merge the AOIs into the dataset index with
# leakage-free splits, then statistics, STAC metadata and the optional FUSU-layout export.
# Dataset-level jobs (one each), never per patch.

# AOIs that are built (templates are not).
_DATASET_AOIS = [name for name, spec in AOIS.items() if not spec.template]
_SPLIT_FILES = [str(p) for p in L.declared_split_files()]


_DATASET_AOI_PARAMS = [AOIS[a].model_dump(mode="json") for a in _DATASET_AOIS]
_DATASET_AOI_FILES = [AOI_FILES[a] for a in _DATASET_AOIS]


# The Sentinel mosaics are complete (every month fetched, attrs finalised) when the per-AOI
# `sentinel` rule wrote its summary. (Only declared when some rule produces it; otherwise the
# stats / export stages check the mosaics themselves and fail listing missing AOIs / months.)
_SENTINEL_DONE = [str(L.sentinel_summary(a)) for a in _DATASET_AOIS]
if _SENTINEL_DONE and not any(r.is_producer(_SENTINEL_DONE[0]) for r in workflow.rules):
    _SENTINEL_DONE = []


rule assemble:
    input:
        footprints=[L.footprints(a) for a in _DATASET_AOIS],
        labels=[L.labels_index(a) for a in _DATASET_AOIS],
        change=[L.change_index(a) for a in _DATASET_AOIS],
    output:
        index=L.index(),
        splits=_SPLIT_FILES,
    params:
        cfg=CFG.section("splits"),
        aois=_DATASET_AOI_PARAMS,
        aoi_files=_DATASET_AOI_FILES,
        root=dataset_root,
    log:
        f"{ROOT}/logs/dataset/assemble.log",
    benchmark:
        str(L.job_benchmark("assemble", "dataset")),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/assemble.py"


rule stats:
    input:
        index=L.index(),
        sentinel=_SENTINEL_DONE,
    output:
        L.stats(),
    params:
        aois=_DATASET_AOI_PARAMS,
        aoi_files=_DATASET_AOI_FILES,
        root=dataset_root,
    log:
        f"{ROOT}/logs/dataset/stats.log",
    benchmark:
        str(L.job_benchmark("stats", "dataset")),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/stats.py"


rule stac:
    input:
        index=L.index(),
    output:
        f"{L.stac_dir()}/collection.json",
    params:
        aois=_DATASET_AOI_PARAMS,
        aoi_files=_DATASET_AOI_FILES,
        root=dataset_root,
        dataset=CFG.dataset,
        class_schema=CFG.labels.class_schema,
    log:
        f"{ROOT}/logs/dataset/stac.log",
    benchmark:
        str(L.job_benchmark("stac", "dataset")),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/stac.py"


# Target: `snakemake export_fusu` (or export.fusu_layout: true to include it in `all`).
# The manifest is the declared output so Snakemake never deletes the export folder itself;
# the stage refuses a non-empty folder unless export.overwrite.
rule export_fusu:
    input:
        index=L.index(),
        sentinel=_SENTINEL_DONE,
    output:
        str(L.export_manifest()),
    params:
        cfg=CFG.section("export"),
        aois=_DATASET_AOI_PARAMS,
        aoi_files=_DATASET_AOI_FILES,
        root=dataset_root,
        class_schema=CFG.labels.class_schema,
    log:
        f"{ROOT}/logs/dataset/export_fusu.log",
    benchmark:
        str(L.job_benchmark("export_fusu", "dataset")),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/export_fusu.py"


if _DATASET_AOIS:
    ALL_TARGETS.extend([L.index(), *_SPLIT_FILES, L.stats(), f"{L.stac_dir()}/collection.json"])
    if CFG.export.fusu_layout:
        ALL_TARGETS.append(str(L.export_manifest()))
