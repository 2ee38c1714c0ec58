# Rules for the expansion paradigm (config `expand.adapter`): monthly Sentinel-1/2 series
# around the samples of another change dataset (OSCD, SpaceNet 7, GeoTIFF pairs, an index).
# Nothing is added when expand.adapter is None. Jobs: one index/plan job per dataset (a
# checkpoint: groups and months are known only after reading the dataset), one init job per
# group, one fetch job per group x month (never per sample), one stats job per dataset.
# With source 'gee' each month job holds one unit of the `gee` resource (profiles cap it).
# Outputs: the native layout rooted at <results>/<dataset>/expand/ (see docs/expansion.md).

if CFG.expand.adapter is not None:
    from pipeline.sentinel.blocks import block_side_px as _block_side_px

    _XL = L.expand_layout()
    _EXPAND_BLOCK_PX = _block_side_px(CFG.sentinel)
    # each rule gets only the expand keys it reads (no reruns for unrelated edits)
    _EXPAND_INDEX_CFG = {
        k: v
        for k, v in CFG.section("expand").items()
        if k not in ("sentinel_archive", "copy_originals")
    }
    _EXPAND_FETCH_CFG = {"sentinel_archive": CFG.expand.sentinel_archive}

    # An index file is tracked as input; folder layouts are re-read with
    # `snakemake --forcerun expand_index` after their contents change.
    _EXPAND_INPUT = (
        [CFG.expand.path]
        if CFG.expand.adapter == "index" and CFG.expand.path and Path(CFG.expand.path).is_file()
        else []
    )

    checkpoint expand_index:
        input:
            _EXPAND_INPUT,
        output:
            samples=str(L.expand_samples()),
            plan=str(L.expand_plan()),
        params:
            cfg=_EXPAND_INDEX_CFG,
            fp=CFG.section("footprints"),
            block_px=_EXPAND_BLOCK_PX,
            root=dataset_root,
            dataset=CFG.dataset,
        log:
            f"{ROOT}/logs/expand/index.log",
        benchmark:
            str(L.job_benchmark("expand_index", "dataset")),
        conda:
            "../envs/pipeline.yaml"
        script:
            "../../stages/expand_index.py"

    rule expand_sentinel_init:
        input:
            plan=str(L.expand_plan()),
        output:
            str(L.expand_mosaic_ready("{aoi}")),
        params:
            mode="init",
            root=dataset_root,
        log:
            f"{ROOT}/logs/expand/sentinel_init/{{aoi}}.log",
        benchmark:
            str(L.job_benchmark("expand_sentinel_init", "{aoi}")),
        conda:
            "../envs/pipeline.yaml"
        script:
            "../../stages/expand_sentinel.py"

    rule expand_sentinel_month:
        input:
            ready=str(L.expand_mosaic_ready("{aoi}")),
        output:
            str(_XL.month_summary("{aoi}", "{month}")),
        params:
            mode="month",
            cfg=_EXPAND_FETCH_CFG,
            sentinel=CFG.section("sentinel"),
            block_px=_EXPAND_BLOCK_PX,
            root=dataset_root,
        threads: 2
        resources:
            mem_mb=3000,
            **({"gee": 1} if CFG.sentinel.source == "gee" else {}),
        log:
            f"{ROOT}/logs/expand/sentinel/{{aoi}}/{{month}}.log",
        benchmark:
            str(L.job_benchmark("expand_sentinel_month", "{aoi}/{month}")),
        conda:
            "../envs/pipeline.yaml"
        script:
            "../../stages/expand_sentinel.py"

    rule expand_stats:
        input:
            samples=str(L.expand_samples()),
            plan=str(L.expand_plan()),
            months=_expand_month_summaries,
        output:
            stats=str(_XL.stats()),
            summary=str(L.expand_summary()),
        params:
            cfg=CFG.section("expand"),
            root=dataset_root,
            dataset=CFG.dataset,
            allow_empty_series=CFG.sentinel.allow_empty_series,
        log:
            f"{ROOT}/logs/expand/stats.log",
        benchmark:
            str(L.job_benchmark("expand_stats", "dataset")),
        conda:
            "../envs/pipeline.yaml"
        script:
            "../../stages/expand_stats.py"

    ALL_TARGETS.extend([str(L.expand_samples()), str(L.expand_plan())])
    if not CFG.expand.plan_only:
        ALL_TARGETS.extend([str(_XL.stats()), str(L.expand_summary())])
