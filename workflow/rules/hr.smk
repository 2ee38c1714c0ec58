# Rules for the HR part of the pipeline: tile the T1/T2 pair, then footprints on the AOI grid.
# One job per AOI (never per patch). Patch GeoTIFF folders (aois/<aoi>/hr/{t1,t2}) are written
# alongside; the index parquet is the declared output and is written last.

rule tile:
    input:
        _hr_images,
    output:
        L.patches("{aoi}"),
    params:
        cfg=CFG.section("tile"),
        aoi=_tile_aoi_params,
        aoi_file=_aoi_file,
        root=dataset_root,
    log:
        f"{ROOT}/logs/tile/{{aoi}}.log",
    benchmark:
        str(L.job_benchmark("tile", "{aoi}")),
    # patches compressed and written on the job's threads while the next strip is read
    threads: 4
    resources:
        # strip-wise reads: bounded by 64 patches x 2 dates + a 64 MiB GDAL cache, not the AOI
        mem_mb=1500,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/tile.py"


rule footprints:
    input:
        L.patches("{aoi}"),
    output:
        footprints=L.footprints("{aoi}"),
        grid=L.grid("{aoi}"),
        gpkg=L.footprints_gpkg("{aoi}"),
    params:
        cfg=CFG.section("footprints"),
        aoi_file=_aoi_file,
        root=dataset_root,
    log:
        f"{ROOT}/logs/footprints/{{aoi}}.log",
    benchmark:
        str(L.job_benchmark("footprints", "{aoi}")),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../../stages/footprints.py"


ALL_TARGETS.extend(
    path
    for name, spec in AOIS.items()
    if not spec.template
    for path in (L.footprints(name), L.grid(name), L.footprints_gpkg(name))
)
