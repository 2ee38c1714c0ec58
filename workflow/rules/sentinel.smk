# Rules for the Sentinel part of the pipeline (docs/sources.md).
#
# demo_scenes     per generated AOI (local / stac source): synthetic S1/S2 scene archive of
#                 COGs + its static STAC catalogue (Earth Search / Planetary Computer layouts)
# sentinel_init   per AOI: block plan over the union of footprints + empty staging mosaic
#                 sentinel/<aoi>/staging.zarr (write-optimised: one month per chunk)
# sentinel_month  per (AOI, month): fetch the month's blocks into the staging store (resumable
#                 ledger)
# sentinel        per AOI: aggregate month summaries, consolidate the staging store into the
#                 read-optimised cube sentinel/<aoi>.zarr (chunks span all months)
# Jobs are per AOI or per AOI x month, never per patch. With source 'gee' every month job
# holds one unit of the `gee` resource, so `--resources gee=N` caps concurrent EE jobs; with
# the STAC profile 'cdse' one unit of `cdse` (CDSE's connection cap is per account).

_SENTINEL_AOIS = [name for name, spec in AOIS.items() if not spec.template]
_SENTINEL_GEE = CFG.sentinel.source == "gee"
# CDSE allows an account 4 concurrent connections: each month job on the cdse profile holds one
# unit of the `cdse` resource (the profiles set cdse=1) and keeps its reads under the cap
_SENTINEL_CDSE = CFG.sentinel.source == "stac" and CFG.sentinel.stac.profile == "cdse"
# sources that read the demo's generated scenes (the archive, or its static STAC catalogue)
_SCENE_SOURCES = ("local", "stac")


for _name, _spec in AOIS.items():
    if not (_spec.generated and _spec.sentinel_archive and CFG.sentinel.source in _SCENE_SOURCES):
        continue

    rule:
        name:
            "demo_scenes" if _name == "demo" else f"demo_scenes_{_name}"
        output:
            _demo_scenes_done(_name),
        params:
            cfg=CFG.section("demo"),
            # what the archive holds (COG band files + a static STAC catalogue): a change
            # regenerates archives written by older versions
            archive_format="cog-stac-1",
            aoi=_spec.model_dump(mode="json"),
            aoi_file=AOI_FILES[_name],
        log:
            f"{CFG.results_dir}/logs/demo_scenes/{_name}.log",
        benchmark:
            str(L.job_benchmark("demo_scenes", _name)),
        threads: 1
        resources:
            mem_mb=2000,
        conda:
            "../envs/pipeline.yaml"
        script:
            "../../stages/demo_scenes.py"


rule sentinel_init:
    input:
        grid=L.grid("{aoi}"),
        footprints=L.footprints("{aoi}"),
    output:
        marker=L.mosaic_marker("{aoi}"),
        blocks=L.sentinel_blocks("{aoi}"),
    params:
        cfg=CFG.section("sentinel"),
        months=lambda wc: AOIS[wc.aoi].months,
        aoi_file=_aoi_file,
        root=dataset_root,
    log:
        f"{ROOT}/logs/sentinel_init/{{aoi}}.log",
    benchmark:
        str(L.job_benchmark("sentinel_init", "{aoi}")),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/sentinel_init.py"


rule sentinel_month:
    input:
        marker=L.mosaic_marker("{aoi}"),
        blocks=L.sentinel_blocks("{aoi}"),
        archive=_sentinel_archive_input,
    output:
        L.month_summary("{aoi}", "{month}"),
    params:
        cfg=CFG.section("sentinel"),
        archive=lambda wc: AOIS[wc.aoi].sentinel_archive,
        aoi_file=_aoi_file,
        root=dataset_root,
    log:
        f"{ROOT}/logs/sentinel_month/{{aoi}}/{{month}}.log",
    benchmark:
        str(L.job_benchmark("sentinel_month", "{aoi}/{month}")),
    threads: 2
    resources:
        mem_mb=3000,
        **({"gee": 1} if _SENTINEL_GEE else {}),
        **({"cdse": 1} if _SENTINEL_CDSE else {}),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/sentinel_month.py"


rule sentinel:
    input:
        lambda wc: [L.month_summary(wc.aoi, m) for m in AOIS[wc.aoi].months],
    output:
        L.sentinel_summary("{aoi}"),
    params:
        months=lambda wc: AOIS[wc.aoi].months,
        aoi_file=_aoi_file,
        root=dataset_root,
        allow_empty_series=CFG.sentinel.allow_empty_series,
    log:
        f"{ROOT}/logs/sentinel/{{aoi}}.log",
    benchmark:
        str(L.job_benchmark("sentinel", "{aoi}")),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/sentinel_summary.py"


ALL_TARGETS.extend(L.sentinel_summary(name) for name in _SENTINEL_AOIS)
